"""Frozen dataclass configs for the student model and its training, serialisable to YAML.

A YAML file under ``models/`` holds ``model:`` and (optionally) ``train:`` sections whose keys
are exactly the dataclass fields below; unknown keys are an error, missing keys take the
defaults. Values are checked against each field's type by :func:`from_dict` (the YAML file,
``--set`` overrides and a checkpoint's stored config all go through it): ``1e-3`` is a float
(YAML 1.1 reads it as a string), ``steps: 1.5`` is an error naming ``train.steps`` and ``int``.
No hidden registry: a config *is* the model description.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from edgeseg.errors import ConfigError
from edgeseg.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD


UPSAMPLE_MODES = ("transposed", "bilinear")  # model.upsample
MASK_STRIDES = (4, 8)  # model.mask_stride


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a PEM student (docs/architecture.md)."""

    name: str = "pem_mnv3l_512"
    backbone: str = "mobilenetv3_large_100"
    # ImageNet weights (edgeseg/modeling/pretrained.py): a local timm state-dict file, "pip:efficientnet-lite0"
    # (the pretrained extra) or "timm" (timm's hub, online only); None: random init
    backbone_weights: str | None = None
    # extra timm.create_model arguments the weights were made with (e.g. {pad_type: same, bn_eps: 0.001})
    backbone_kwargs: dict[str, Any] | None = None
    # blocks kept per stage of a timm EfficientNet / MobileNet backbone (its ``blocks`` stages),
    # the first ones of each stage, after the ImageNet weights are loaded: a depth-pruned
    # pretrained backbone (e.g. EfficientNet-Lite0 [1, 2, 2, 1, 1, 1, 1] of [1, 2, 2, 3, 3, 4, 1]);
    # None keeps every block
    backbone_blocks: list[int] | None = None
    # Input normalisation on the 0-255 scale, owned by the backbone's weights (ImageNet statistics
    # for timm's PyTorch-trained models; TF-origin weights want 127.5 / 127.5). It travels with
    # the checkpoint into every export's metadata, so preprocessing always matches training.
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
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
    # x2 step of the pixel decoder's top-down path: "transposed" (PEM's 4x4 stride-2 transposed
    # conv, bilinear-initialised) or "bilinear" (a fixed bilinear resize, no weights: the
    # transposed convs were half the decoder's time in every runtime, benchmarks/results/profile.md)
    upsample: str = "transposed"
    # stride of the mask features (4: PEM's; 8: the pixel decoder stops at 1/8 and the mask
    # logits are resized x2 to the stride-4 contract, dropping the decoder's costliest level)
    mask_stride: int = 4
    # edgeseg's own additions, off by default (PEM as published). They were tuned on the built-in
    # synthetic data, where a thing's class is its shape alone (one seed, 600 steps, random init;
    # docs/architecture.md); models/pem_mnv3l_additions_512.yaml (the earlier demo student) turns all four on.
    mask_pooled_class: bool = False  # class head also sees mask-pooled pixel features
    semantic_aux: bool = False  # per-pixel semantic head on mask features (training loss only)
    mask_coords: bool = False  # learned projection of a sine position code added to mask features
    mask_shape_class: bool = False  # class logits from scale-normalised final-mask silhouettes (shape_head.py)

    def __post_init__(self) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"model.upsample: {self.upsample!r} is not one of {UPSAMPLE_MODES}")
        if self.mask_stride not in MASK_STRIDES:
            raise ConfigError(f"model.mask_stride: {self.mask_stride} is not one of {MASK_STRIDES}")
        if self.mask_stride != 4 and self.mask_shape_class:
            raise ConfigError("model.mask_shape_class needs model.mask_stride 4 (the silhouette head reads stride-4 masks)")


@dataclass(frozen=True)
class TeacherConfig:
    """The Mask2Former teacher: HF ``Mask2FormerForUniversalSegmentation``.

    Defaults are the full Swin-T model (47.4M params): MSDeformAttn pixel decoder with 6 encoder
    layers, ``decoder_layers=10`` (HF's count, i.e. 9 masked-attention layers), 100 queries.
    ``backbone`` swaps Swin for a timm model (e.g. ``tf_efficientnet_lite2``, 24.0M params with
    the rest unchanged), optionally with ImageNet ``backbone_weights``; the Swin fields are then unused.
    A YAML selects it with ``model: {arch: mask2former, ...}``.
    """

    arch: str = "mask2former"
    name: str = "teacher_swint"
    num_classes: int = 13
    image_size: int = 512
    # "swin" (HF's Swin, from the fields below) or a timm model name, e.g. "tf_efficientnet_lite2"
    backbone: str = "swin"
    # ImageNet weights of a timm backbone, the student's specs (edgeseg/modeling/pretrained.py):
    # a local timm state-dict file, "pip:efficientnet-lite2" or "timm"; None: random init
    backbone_weights: str | None = None
    # Input normalisation on the 0-255 scale, as the student's: ImageNet statistics, or
    # 127.5 / 127.5 for TF-origin weights (EfficientNet-Lite); it travels with the checkpoint.
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD
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

    def __post_init__(self) -> None:
        if not self.backbone:
            raise ConfigError("model.backbone: expected 'swin' or a timm model name, got an empty string")
        if self.backbone_weights is not None and self.backbone == "swin":
            raise ConfigError(f"model.backbone_weights {self.backbone_weights!r} need a timm model.backbone; "
                              f"the Swin teacher has no ImageNet weights to load (import a checkpoint instead)")
        if self.hf_config is not None and self.backbone != "swin":
            raise ConfigError(f"model.backbone {self.backbone!r} with model.hf_config: the HF config gives its "
                              f"own backbone; leave model.backbone at 'swin'")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class DistillConfig:
    """Teacher -> student distillation; off while ``teacher`` is None.

    Student queries are Hungarian-matched to the teacher's *object* queries (p(no-object) <
    ``object_threshold``), with the ground-truth matcher's costs and the teacher's argmax class
    and mask probabilities as targets. On matched pairs: class KD (KL at ``temperature``, x T^2)
    and mask KD (BCE + dice against the teacher's probabilities on importance-sampled points);
    optional feature KD (MSE through a 1x1 adapter on the stride-4 pixel features).
    """

    teacher: str | None = None  # edgeseg checkpoint (.pt, or a shipped model name) or a transformers checkpoint directory
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    feature_weight: float = 0.0
    temperature: float = 2.0
    object_threshold: float = 0.5
    num_points: int = 12544


AMP_MODES = ("off", "bf16", "fp16")  # train.amp


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule and data for ``edgeseg train``."""

    data: str = "data/synth"
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = 256  # training crop size
    scale_range: tuple[float, float] = (0.75, 1.5)
    batch_size: int = 8  # images per optimizer step, over all processes
    # micro-batches per step, run one after another with their gradients summed: the batch a
    # device cannot hold at once. Each micro-batch has its own BatchNorm statistics, exactly as
    # each process of a DDP run has (tests/test_ddp.py checks the two give the same weights).
    accumulate: int = 1
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
    # mixed precision: "off" (float32), "bf16" (autocast, no loss scaling) or "fp16" (autocast +
    # GradScaler); losses stay float32 either way (edgeseg/training/amp.py)
    amp: str = "off"
    # start from another edgeseg checkpoint's weights (a file or a shipped model's name) wherever a
    # tensor has the same name and shape (a smaller student cut from a trained one: fewer decoder
    # layers or backbone blocks, another mask stride), then train; the rest starts as built.
    init_from: str | None = None
    # a folder of images without labels (edgeseg/training/pseudo_labels.py): the KD teacher labels
    # them once (its panoptic output, cached in the run directory) and they join the labelled
    # split, so the student learns from ground truth where it exists and the teacher elsewhere.
    # ``unlabelled_fraction``: the share of training images drawn from them (labelled or
    # unlabelled images are repeated to reach it); 0 mixes the two pools at their sizes.
    unlabelled: str | None = None
    unlabelled_fraction: float = 0.5
    loss: LossConfig = field(default_factory=LossConfig)
    kd: DistillConfig = field(default_factory=DistillConfig)

    def __post_init__(self) -> None:
        if self.amp not in AMP_MODES:
            raise ConfigError(f"train.amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if not 0.0 <= self.unlabelled_fraction < 1.0:
            raise ConfigError(f"train.unlabelled_fraction must be in [0, 1), got {self.unlabelled_fraction}")


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build the (frozen) dataclass ``cls`` from a mapping, checking every value against its
    field's type. Unknown keys are refused (a typo must not pass silently); missing keys take the
    defaults. Errors name the key (``where.key``), the expected type and the value found."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc




def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (bool, int, float, str, Optional / unions, tuple, list, dict,
    nested dataclasses), or a ConfigError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, (list, tuple)):
            if origin is tuple and args and args[-1] is not Ellipsis:
                if len(value) != len(args):
                    raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
                items = [_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
            else:
                inner = args[0] if args else Any
                items = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if (origin or tp) is tuple else items
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            vt = args[1] if args else Any
            return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    else:
        raise ConfigError(f"{where}: fields of type {_type_name(tp)} are not supported by the config loader")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def to_plain(obj: Any) -> Any:
    """A config (or any nesting of dataclasses, tuples, lists, dicts) as YAML-safe plain values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def model_config_from_dict(data: dict[str, Any], where: str = "model") -> ModelConfig | TeacherConfig:
    """A student config, or a teacher config when ``arch: mask2former``."""
    if isinstance(data, dict) and data.get("arch", "pem") != "pem":
        if data["arch"] != "mask2former":
            raise ConfigError(f"{where}: arch must be 'pem' or 'mask2former', got {data['arch']!r}")
        return from_dict(TeacherConfig, data, where)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "arch"}
    return from_dict(ModelConfig, data, where)


def train_config_from_dict(data: dict[str, Any], where: str = "train") -> TrainConfig:
    return from_dict(TrainConfig, data, where)


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
    out: dict[str, Any] = {"model": to_plain(model)}
    if train is not None:
        out["train"] = to_plain(train)
    return out


def apply_overrides(model: ModelConfig | TeacherConfig, train: TrainConfig,
                    overrides: list[str]) -> tuple[ModelConfig | TeacherConfig, TrainConfig]:
    """``["train.steps=300", "model.num_queries=50", "train.loss.mask_weight=2"]``: each value is
    read as a YAML scalar, then the whole config is rebuilt through :func:`from_dict`, so an
    override is type-checked exactly like the YAML file."""
    data = config_to_dict(model, train)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or parts[0] not in data or len(parts) < 2:
            raise ConfigError(f"--set expects model.KEY=VALUE or train.KEY=VALUE, got {item!r}")
        node = data[parts[0]]
        for p in parts[1:-1]:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section of {parts[0]}")
            node = node[p]
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({exc})") from exc
    return model_config_from_dict(data["model"]), train_config_from_dict(data["train"])


def save_config(path: str | Path, model: ModelConfig | TeacherConfig, train: TrainConfig | None = None) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(model, train), sort_keys=False))
