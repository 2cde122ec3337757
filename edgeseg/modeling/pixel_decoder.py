"""PEM's light multi-scale pixel decoder (``pem_pixel_decoder.py`` in PEM's code).

Lateral 1x1 ConvBNReLU to ``pixel_dim`` on res2..res5, a global-context term at 1/32,
context-based self-modulation (CSM) on every level, and a top-down path whose "up" blocks are a
3x3 conv (deformable behind a switch) + a bilinear-initialised 4x4 stride-2 transposed conv,
or (``upsample="bilinear"``) + a fixed bilinear x2 resize: the transposed convs cost half the
decoder's time in OpenVINO and 60 % in ONNX Runtime for a weight that starts as that resize.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from edgeseg.modeling.position_encoding import (
    PositionEmbeddingSine,
    add_projected_position,
)


def conv_bn_relu(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ContextSelfModulation(nn.Module):
    """``CSM(x) = x + x * sigmoid(MLP(GAP(x)))``; the MLP is 1x1 C->C/2, norm, ReLU, 1x1 C/2->C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, dim // 2, 1, bias=False),
            nn.BatchNorm2d(dim // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // 2, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x * torch.sigmoid(self.mlp(x.mean(dim=(2, 3), keepdim=True)))


class DeformConv3x3(nn.Module):
    """Modulated deformable 3x3 conv (DCNv2) via torchvision; offsets start at zero (= plain conv)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.offset_mask = nn.Conv2d(cin, 27, 3, padding=1)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        self.conv = DeformConv2d(cin, cout, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset_mask(x)
        offset, mask = om[:, :18], torch.sigmoid(om[:, 18:])
        return self.conv(x, offset, mask)


def _bilinear_upsample_kernel(channels: int, k: int = 4) -> torch.Tensor:
    """Weights that make a depthwise 4x4 stride-2 transposed conv a bilinear x2 upsample."""
    factor = (k + 1) // 2
    center = factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, k, k)
    weight[range(channels), range(channels)] = kernel
    return weight


class UpBlock(nn.Module):
    """3x3 conv + BN/ReLU, then x2: a 4x4 stride-2 transposed conv (bilinear init) + BN/ReLU
    (PEM's), or a bilinear resize (``learned=False``; the conv's ReLU output stays >= 0, as
    PEM's block's does)."""

    def __init__(self, dim: int, deformable: bool, learned: bool = True) -> None:
        super().__init__()
        conv = DeformConv3x3(dim, dim) if deformable else nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.conv = nn.Sequential(conv, nn.BatchNorm2d(dim), nn.ReLU(inplace=True))
        self.up: nn.Module | None = None
        if learned:
            self.up = nn.ConvTranspose2d(dim, dim, 4, stride=2, padding=1, bias=False)
            with torch.no_grad():
                self.up.weight.copy_(_bilinear_upsample_kernel(dim))
            self.up_act = nn.Sequential(nn.BatchNorm2d(dim), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.up is None:
            return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.up_act(self.up(x))


class PEMPixelDecoder(nn.Module):
    """Backbone pyramid -> ([x32, x16, x8] at ``pixel_dim``, mask features at ``mask_stride``).

    ``mask_stride=8`` stops the top-down path at 1/8 (no stride-4 lateral, CSM or up block; the
    stride-4 backbone level is left unused): the mask features come from ``x8``.
    """

    def __init__(
        self, in_channels: list[int], pixel_dim: int = 128, mask_dim: int = 256, deformable: bool = False,
        mask_coords: bool = False, upsample: str = "transposed", mask_stride: int = 4,
    ) -> None:
        super().__init__()
        levels = len(in_channels) if mask_stride == 4 else len(in_channels) - 1
        self.mask_stride = mask_stride
        # index 0 is the finest level used: res2 (stride 4) or, at mask stride 8, res3
        self.lateral = nn.ModuleList(conv_bn_relu(c, pixel_dim, 1) for c in in_channels)
        self.csm = nn.ModuleList(ContextSelfModulation(pixel_dim) for _ in in_channels)
        if levels < len(in_channels):  # no stride-4 level: its lateral and CSM are not built (kept as
            # placeholders so the other levels' weights keep the names of a stride-4 decoder's)
            self.lateral[0], self.csm[0] = nn.Identity(), nn.Identity()
        self.context = conv_bn_relu(in_channels[-1], pixel_dim, 1)
        # up[0]: 1/32 -> 1/16, up[1]: 1/16 -> 1/8, up[2]: 1/8 -> 1/4 (absent at mask stride 8)
        self.up = nn.ModuleList(UpBlock(pixel_dim, deformable, upsample == "transposed") for _ in range(levels - 1))
        self.mask_features = conv_bn_relu(pixel_dim, mask_dim, 1)
        # edgeseg addition: a learned projection of a fixed sine position code added to the
        # mask features, so a query can localise "its" instance among look-alikes (CoordConv /
        # SOLO idea). Added through per-row and per-column tables (position_encoding.py).
        self.mask_pe = PositionEmbeddingSine(mask_dim // 2) if mask_coords else None
        self.mask_pe_proj = nn.Conv2d(mask_dim, mask_dim, 1) if mask_coords else None

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        res2, res3, res4, res5 = feats
        ctx = self.context(res5.mean(dim=(2, 3), keepdim=True))
        x32 = self.csm[3](self.lateral[3](res5)) + ctx
        x16 = self.csm[2](self.lateral[2](res4)) + self.up[0](x32)
        x8 = self.csm[1](self.lateral[1](res3)) + self.up[1](x16)
        if self.mask_stride == 4:
            mask_features = self.mask_features(self.csm[0](self.lateral[0](res2)) + self.up[2](x8))
        else:
            mask_features = self.mask_features(x8)
        if self.mask_pe is not None:
            pos_y, pos_x = self.mask_pe.axis_tables(*mask_features.shape[-2:], mask_features.device)
            mask_features = add_projected_position(mask_features, pos_y, pos_x, self.mask_pe_proj)
        return [x32, x16, x8], mask_features
