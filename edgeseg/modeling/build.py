"""``build_model``: the student or the teacher from its config dataclass, and from a checkpoint."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from edgeseg.assets import resolve_weights
from edgeseg.checkpoint import load_checkpoint, load_state_into
from edgeseg.config import ModelConfig, TeacherConfig, model_config_from_dict
from edgeseg.errors import CheckpointError, ConfigError


def build_model(cfg: ModelConfig | TeacherConfig, image_size: int | None = None) -> nn.Module:
    """A PEM student for a :class:`ModelConfig`, the Mask2Former teacher for a :class:`TeacherConfig`."""
    if isinstance(cfg, TeacherConfig):
        from edgeseg.modeling.teacher import build_teacher  # imports transformers: only when asked

        return build_teacher(cfg, image_size)
    from edgeseg.modeling.pem import build_pem

    return build_pem(cfg, image_size)


def num_aux_outputs(model: nn.Module) -> int:
    """How many earlier predictions the model returns in training (deep supervision)."""
    if hasattr(model, "num_aux_outputs"):
        return int(model.num_aux_outputs)
    return int(model.cfg.dec_layers)


def config_from_checkpoint(ckpt: dict[str, Any], source: str) -> ModelConfig | TeacherConfig:
    """The model config stored in a checkpoint, with a clear error when it no longer parses."""
    try:
        return model_config_from_dict(ckpt["model_config"], f"{source}: model_config")
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {source}: bad model_config ({exc})") from exc


def model_from_checkpoint(ckpt: dict[str, Any], source: str, config: ModelConfig | TeacherConfig | None = None,
                          image_size: int | None = None) -> nn.Module:
    """The eval-mode model of an already loaded checkpoint dict.

    ``config`` lets a user check a checkpoint against a config file: a mismatch raises
    CheckpointError naming the differing keys."""
    cfg = config or config_from_checkpoint(ckpt, source)
    # the backbone weights are inside the checkpoint; the original file need not exist here
    cfg = dataclasses.replace(cfg, backbone_weights=None)  # student and teacher alike
    model = build_model(cfg, image_size)
    load_state_into(model, ckpt["model"], f"checkpoint {source}")
    return model.eval()


def load_model(path: str | Path, config: ModelConfig | TeacherConfig | None = None, image_size: int | None = None):
    """Build the student (or teacher) stored in ``path`` and load its weights (eval mode).
    Returns ``(model, checkpoint_dict)``."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, str(path), config, image_size), ckpt


def load_teacher(path: str | Path, class_names: Sequence[str], image_size: int) -> nn.Module:
    """A frozen, eval-mode KD teacher from an edgeseg checkpoint (``.pt``) or a transformers directory.

    The checkpoint is a Mask2Former teacher, or a trained PEM student used as a
    teacher-assistant (a larger student distilled into a smaller one: both return
    ``pred_logits`` / ``pred_masks`` of the same label space, which is all the KD loss reads).
    Its label space must be the data set's: an edgeseg checkpoint's class names must equal
    ``class_names``; a transformers checkpoint is mapped to them by name.
    """
    path = resolve_weights(path)  # a shipped model's name works too
    if path.is_dir():
        from edgeseg.modeling.teacher import teacher_from_hf_dir  # imports transformers: only when asked

        teacher = teacher_from_hf_dir(path, class_names, image_size)
    else:
        ckpt = load_checkpoint(path)
        theirs = list(ckpt["label_space"]["class_names"])
        if theirs != list(class_names):
            raise ConfigError(f"teacher {path} was trained on classes {theirs[:6]}... but the data set has "
                              f"{list(class_names)[:6]}...; distil on the teacher's data set")
        teacher = model_from_checkpoint(ckpt, str(path), image_size=image_size)  # Mask2Former or PEM
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def teacher_feature_dim(teacher: nn.Module) -> int:
    """Channels of the ``pixel_features`` a teacher returns (Mask2Former or PEM student)."""
    if isinstance(teacher.cfg, TeacherConfig):
        return int(teacher.hf.config.mask_feature_size)
    return int(teacher.cfg.mask_dim)
