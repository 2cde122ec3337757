"""Sine positional encoding for 2-D feature maps (DETR / Mask2Former)."""
from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Fixed sin/cos embedding of (y, x), ``num_pos_feats`` per axis, normalised to [0, 2pi].

    Depends only on the map's (static) size, so exporters fold it into a constant.
    """

    def __init__(self, num_pos_feats: int, temperature: float = 10000.0) -> None:
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        eps, scale = 1e-6, 2 * math.pi
        y = torch.arange(1, h + 1, dtype=torch.float32, device=x.device)[:, None].expand(h, w)
        xx = torch.arange(1, w + 1, dtype=torch.float32, device=x.device)[None, :].expand(h, w)
        y = y / (h + eps) * scale
        xx = xx / (w + eps) * scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos_x = xx[:, :, None] / dim_t
        pos_y = y[:, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, 0::2].sin(), pos_x[:, :, 1::2].cos()), dim=3).flatten(2)
        pos_y = torch.stack((pos_y[:, :, 0::2].sin(), pos_y[:, :, 1::2].cos()), dim=3).flatten(2)
        pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
        return pos.unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)
