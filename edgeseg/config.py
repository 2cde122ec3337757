"""Dataclass configs for the student model and its training, serialisable to YAML.

A YAML file under ``models/`` holds ``model:`` and (optionally) ``train:`` sections whose keys
are exactly the dataclass fields below; unknown keys are an error, missing keys take the
defaults. No hidden registry: a config *is* the model description.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeseg.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture of a PEM student (DESIGN.md section 2)."""

    name: str = "pem_mnv3l_512"
    backbone: str = "mobilenetv3_large_100"
    backbone_weights: str | None = None  # local timm weight file; never downloaded
    num_classes: int = 13  # K, without the no-object class; set from the data set
    image_size: int = 512  # S, the fixed export / inference input size
    pixel_dim: int = 128  # pixel-decoder channels (PEM R50: 128)
    hidden_dim: int = 256  # query / transformer width (PEM R50: 256)
    mask_dim: int = 256  # mask-feature channels (PEM R50: 256)
    num_queries: int = 100
    dec_layers: int = 6
    nheads: int = 8
    ffn_dim: int = 2048
    deformable: bool = False  # PEM's DCNv2 3x3 convs; torch only (no TFLite/ONNX route)
    # edgeseg additions (measured, see README "Training recipes"):
    mask_pooled_class: bool = True  # class head also sees mask-pooled pixel features
    semantic_aux: bool = True  # per-pixel semantic head on mask features (training loss only)
    mask_coords: bool = True  # learned projection of a sine position code added to mask features
    mask_shape_class: bool = True  # class logits from scale-normalised final-mask silhouettes (shape_head.py)


@dataclass
class TeacherConfig:
    """The Mask2Former teacher (DESIGN.md section 3): HF ``Mask2FormerForUniversalSegmentation``.

    Defaults are the full Swin-T model (47.4M params): MSDeformAttn pixel decoder with 6 encoder
    layers, ``decoder_layers=10`` (HF's count, i.e. 9 masked-attention layers), 100 queries.
    A YAML selects it with ``model: {arch: mask2former, ...}``.
    """

    arch: str = "mask2former"
    name: str = "teacher_swint"
    num_classes: int = 13
    image_size: int = 512
    embed_dim: int = 96
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list[int] = field(default_factory=lambda: [3, 6, 12, 24])
    window_size: int = 7
    encoder_layers: int = 6
    decoder_layers: int = 10
    hidden_dim: int = 256
    num_queries: int = 100
    # A full HF config dict (``config.json`` of an official checkpoint); when set it replaces
    # the architecture fields above, so an imported checkpoint rebuilds without its directory.
    hf_config: dict[str, Any] | None = None
    # For an imported checkpoint: index of each data-set class in the checkpoint's own label
    # space (matched by name), so logits come out in the data set's order.
    class_index: list[int] | None = None


@dataclass
class LossConfig:
    """Mask2Former's loss weights and point sampling."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    semantic_weight: float = 1.0  # per-pixel auxiliary CE (0 disables)
    shape_weight: float = 1.0  # silhouette head's CE on ground-truth masks (0 disables)
    num_points: int = 12544  # 112 x 112 as Mask2Former
    # When a predicted mask has no more pixels than num_points (small training crops), use every
    # pixel against the area-downsampled target instead of sampling: exact and cheaper.
    dense_when_small: bool = True
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75


@dataclass
class DistillConfig:
    """Teacher -> student distillation (DESIGN.md section 3); off while ``teacher`` is None.

    Student queries are Hungarian-matched to the teacher's *object* queries (p(no-object) <
    ``object_threshold``), with the ground-truth matcher's costs and the teacher's argmax class
    and mask probabilities as targets. On matched pairs: class KD (KL at ``temperature``, x T^2)
    and mask KD (BCE + dice against the teacher's probabilities on importance-sampled points);
    optional feature KD (MSE through a 1x1 adapter on the stride-4 pixel features).
    """

    teacher: str | None = None  # edgeseg teacher checkpoint (.pt) or a transformers checkpoint directory
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    feature_weight: float = 0.0
    temperature: float = 2.0
    object_threshold: float = 0.5
    num_points: int = 12544


@dataclass
class TrainConfig:
    """Optimisation schedule and data for ``edgeseg train``."""

    data: str = "data/synth"
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = 256  # training crop size
    scale_range: tuple[float, float] = (0.75, 1.5)
    batch_size: int = 8
    steps: int = 1000
    lr: float = 4e-4
    backbone_lr_mult: float = 1.0  # 1.0: from-scratch backbone; 0.1 with pretrained weights
    weight_decay: float = 0.05
    warmup_steps: int = 100
    schedule: str = "poly"  # "poly" (power 0.9) or "cosine"
    clip_grad_norm: float = 1.0
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 100
    eval_every: int = 0  # 0: only at the end
    eval_images: int = 0  # 0: the whole val split
    # Steps of batch 256 that train the silhouette shape head alone on ground-truth masks before
    # the main loop (edgeseg/training/shape_pretrain.py); 0 disables. Counted in train time.
    shape_pretrain_steps: int = 0
    shape_pretrain_images: int = 400
    loss: LossConfig = field(default_factory=LossConfig)
    kd: DistillConfig = field(default_factory=DistillConfig)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a dataclass from a dict, refusing unknown keys (typos must not pass silently)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    kwargs = {}
    for key, value in data.items():
        if key == "loss" and cls is TrainConfig:
            value = _from_dict(LossConfig, value, f"{where}.loss")
        elif key == "kd" and cls is TrainConfig:
            value = _from_dict(DistillConfig, value, f"{where}.kd")
        elif key == "scale_range":
            value = tuple(float(v) for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def model_config_from_dict(data: dict[str, Any], where: str = "model") -> ModelConfig | TeacherConfig:
    """A student config, or a teacher config when ``arch: mask2former``."""
    if isinstance(data, dict) and data.get("arch", "pem") != "pem":
        if data["arch"] != "mask2former":
            raise ConfigError(f"{where}: arch must be 'pem' or 'mask2former', got {data['arch']!r}")
        return _from_dict(TeacherConfig, data, where)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "arch"}
    return _from_dict(ModelConfig, data, where)


def train_config_from_dict(data: dict[str, Any], where: str = "train") -> TrainConfig:
    return _from_dict(TrainConfig, data, where)


MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


def resolve_config(name_or_path: str | Path) -> Path:
    """A YAML path as given, or a config name under ``models/`` (``teacher-swint`` ->
    ``models/teacher_swint.yaml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = MODELS_DIR / f"{str(name_or_path).replace('-', '_')}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem.replace("_", "-") for p in MODELS_DIR.glob("*.yaml")) if MODELS_DIR.is_dir() else []
    raise ConfigError(f"no config file {path} and no model named {str(name_or_path)!r} in {MODELS_DIR} (known: {known})")


def resolve_weights(name_or_path: str | Path) -> Path:
    """A checkpoint path as given, or the name of a shipped model under ``models/``
    (``pem_mnv3l_512`` or ``pem-mnv3l-512`` -> ``models/pem_mnv3l_512.pt``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix:
        return path
    candidate = MODELS_DIR / f"{str(name_or_path).replace('-', '_')}.pt"
    if candidate.is_file():
        return candidate
    shipped = sorted(p.stem for p in MODELS_DIR.glob("*.pt")) if MODELS_DIR.is_dir() else []
    raise ConfigError(f"no file {path} and no shipped model named {str(name_or_path)!r} in {MODELS_DIR} "
                          f"(shipped: {shipped})")


def load_config(path: str | Path) -> tuple[ModelConfig | TeacherConfig, TrainConfig]:
    """Read a YAML with ``model:`` and optional ``train:`` sections."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict) or "model" not in raw:
        raise ConfigError(f"{path}: expected a mapping with a 'model:' section")
    unknown = sorted(set(raw) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; expected 'model' and 'train'")
    model = model_config_from_dict(raw["model"], f"{path}: model")
    train = train_config_from_dict(raw.get("train") or {}, f"{path}: train")
    return model, train


def config_to_dict(model: ModelConfig | TeacherConfig, train: TrainConfig | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": dataclasses.asdict(model)}
    if train is not None:
        t = dataclasses.asdict(train)
        t["scale_range"] = list(t["scale_range"])
        out["train"] = t
    return out


def save_config(path: str | Path, model: ModelConfig | TeacherConfig, train: TrainConfig | None = None) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(model, train), sort_keys=False))
