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
        elif key == "scale_range":
            value = tuple(float(v) for v in value)
        kwargs[key] = value
    return cls(**kwargs)


def model_config_from_dict(data: dict[str, Any], where: str = "model") -> ModelConfig:
    return _from_dict(ModelConfig, data, where)


def train_config_from_dict(data: dict[str, Any], where: str = "train") -> TrainConfig:
    return _from_dict(TrainConfig, data, where)


def load_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
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


def config_to_dict(model: ModelConfig, train: TrainConfig | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": dataclasses.asdict(model)}
    if train is not None:
        t = dataclasses.asdict(train)
        t["scale_range"] = list(t["scale_range"])
        out["train"] = t
    return out


def save_config(path: str | Path, model: ModelConfig, train: TrainConfig | None = None) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(model, train), sort_keys=False))
