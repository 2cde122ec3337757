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
        # axis length -> table computed ahead (see ``freeze``); empty: computed in forward
        self.frozen: dict[int, torch.Tensor] = {}

    def freeze(self, lengths: list[int]) -> None:
        """Compute the tables for these axis lengths now, so a traced forward holds them as
        constants. Why: litert-torch leaves the table arithmetic (POW, FLOOR_DIV, stride-2
        slices) in the .tflite, where XNNPACK takes none of it; ONNX and OpenVINO fold it."""
        with torch.no_grad():
            self.frozen = {n: self._axis(n, torch.device("cpu")) for n in lengths}

    def _axis(self, n: int, device: torch.device) -> torch.Tensor:
        """``[F, n]`` code of positions 1..n along one axis (sin/cos interleaved per frequency)."""
        if n in self.frozen:
            return self.frozen[n].to(device)
        eps, scale = 1e-6, 2 * math.pi
        t = torch.arange(1, n + 1, dtype=torch.float32, device=device) / (n + eps) * scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)
        pos = t[:, None] / dim_t
        return torch.stack((pos[:, 0::2].sin(), pos[:, 1::2].cos()), dim=2).flatten(1).t()

    def axis_tables(self, h: int, w: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos_y [F, H], pos_x [F, W])``: the full code is ``pos_y`` on channels ``0..F-1``
        (constant along x) and ``pos_x`` on ``F..2F-1`` (constant along y).

        Why: the full ``[2F, H, W]`` map is a constant that exporters fold into the model file
        (8 MB at 1/4 of a 512 input, a fifth of the FP32 student and more than half of its INT8
        file). Added through these two tables by broadcasting it costs ``F x (H + W)`` values."""
        return self._axis(h, device), self._axis(w, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The full ``[B, 2F, H, W]`` code (reference; the model adds it through ``axis_tables``)."""
        b, _, h, w = x.shape
        pos_y, pos_x = self.axis_tables(h, w, x.device)
        pos = torch.cat((pos_y[:, :, None].expand(-1, -1, w), pos_x[:, None, :].expand(-1, h, -1)), dim=0)
        return pos.unsqueeze(0).expand(b, -1, -1, -1).to(x.dtype)


def add_position_channels_last(x: torch.Tensor, pos_y: torch.Tensor, pos_x: torch.Tensor) -> torch.Tensor:
    """``x [B, H, W, 2F] + sine code``: channels ``:F`` get ``pos_y`` per row, ``F:`` get
    ``pos_x`` per column (exact). Written as two adds on the two channel halves: no zero-padded
    tables (their ConstantOfShape stayed float32 in the FP16 ONNX conversion) and no
    Add-after-Add that OpenVINO would fuse into a broadcast ``[H, W, 2F]`` constant."""
    f = pos_y.shape[0]
    rows = x[..., :f] + pos_y.t()[:, None, :].to(x.dtype)  # [H, 1, F]
    cols = x[..., f:] + pos_x.t()[None, :, :].to(x.dtype)  # [1, W, F]
    return torch.cat((rows, cols), dim=-1)


def add_projected_position(x: torch.Tensor, pos_y: torch.Tensor, pos_x: torch.Tensor, proj: nn.Conv2d) -> torch.Tensor:
    """``x [B, C, H, W] + proj(sine code)`` for a 1x1 ``proj``, without the ``[C, H, W]`` constant:
    the projection of a separable code is ``W_y pos_y (per row) + W_x pos_x (per column) + b``."""
    f = pos_y.shape[0]
    weight = proj.weight.flatten(1)  # [C, 2F]
    rows = weight[:, :f] @ pos_y  # [C, H]
    cols = weight[:, f:] @ pos_x  # [C, W]
    if proj.bias is not None:
        rows = rows + proj.bias[:, None]
    # H and W swapped for the second add, for the reason in add_position_channels_last.
    y = (x + rows[None, :, :, None].to(x.dtype)).transpose(2, 3)
    return (y + cols[None, :, :, None].to(x.dtype)).transpose(2, 3)
