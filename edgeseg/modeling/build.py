"""``build_model``: the student or the teacher from its config dataclass (no registry)."""
from __future__ import annotations

from torch import nn

from edgeseg.config import ModelConfig, TeacherConfig


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
