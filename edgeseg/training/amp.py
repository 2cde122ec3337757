"""Mixed-precision training (``train.amp``): torch autocast for the forward pass, float32 losses.

``bf16`` autocasts the forward pass to bfloat16 (GPUs from Ampere on, and recent CPUs); its
exponent range is float32's, so no loss scaling is needed. ``fp16`` autocasts to float16 and
scales the loss with ``torch.amp.GradScaler`` so that small gradients do not flush to zero;
a step whose gradients overflow is skipped and the scale lowered, as torch does. ``off`` is
plain float32.

The criterion always runs in float32 on float32 copies of the outputs, as Mask2Former's
trainer does: the Hungarian matcher hands its costs to scipy, and the sigmoid-BCE / dice sums
over thousands of points lose digits in 16 bits.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from edgeseg.config import AMP_MODES
from edgeseg.errors import ConfigError
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast context and gradient scaling for one ``train.amp`` mode on one device."""

    def __init__(self, mode: str, device: torch.device):
        if mode not in AMP_MODES:
            raise ConfigError(f"train.amp must be one of {list(AMP_MODES)}, got {mode!r}")
        self.mode = mode
        self.device = device
        # float16 needs loss scaling; bfloat16 (float32's exponent range) and float32 do not
        self.scaler = torch.amp.GradScaler(device.type, enabled=mode == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.mode == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.mode])

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, params, clip_grad_norm: float) -> None:
        """Unscale (fp16), clip, step; a step with non-finite fp16 gradients is skipped by the scaler."""
        if clip_grad_norm > 0:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)


def to_float32(obj: Any) -> Any:
    """``obj`` (tensors in nested dicts / lists) with every floating tensor cast to float32."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float32(v) for v in obj)
    return obj
