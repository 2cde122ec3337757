"""timm backbones as a 4-level feature pyramid (strides 4, 8, 16, 32), always NCHW."""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from edgeseg.errors import CheckpointError

# timm's features_only indices for strides 4..32 (TOOLCHAIN.md): Swin has four stages
# (0..3); MobileNetV3 / ResNet have a stride-2 stem level at index 0, so they use 1..4.
_OUT_INDICES = {"swin": (0, 1, 2, 3)}
_DEFAULT_OUT_INDICES = (1, 2, 3, 4)


class Backbone(nn.Module):
    """``timm.create_model(name, features_only=True)`` returning 4 NCHW maps.

    ``weights`` is a local timm checkpoint file (``.pth``/``.safetensors``); nothing is ever
    downloaded. Swin is built for ``image_size`` (its attention masks depend on it) and its
    NHWC outputs are permuted to NCHW.
    """

    def __init__(self, name: str, image_size: int, weights: str | None = None) -> None:
        super().__init__()
        kwargs: dict = {}
        family = name.split("_")[0]
        out_indices = _OUT_INDICES.get(family, _DEFAULT_OUT_INDICES)
        if family == "swin":
            kwargs["img_size"] = image_size
        if weights is not None:
            if not Path(weights).is_file():
                raise CheckpointError(f"backbone weight file not found: {weights}")
            # timm filters the classifier and adapts the keys to the features_only wrapper.
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
        else:
            kwargs["pretrained"] = False
        self.body = timm.create_model(name, features_only=True, out_indices=out_indices, **kwargs)
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.strides: list[int] = list(self.body.feature_info.reduction())
        self.nhwc = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")
        if self.strides != [4, 8, 16, 32]:
            raise ValueError(f"backbone {name}: expected strides [4, 8, 16, 32], got {self.strides}")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.body(x)
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats
