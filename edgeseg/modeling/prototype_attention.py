"""PEM's prototype-based masked cross-attention (class ``PEM_CA`` in PEM's code).

Instead of a softmax-weighted sum over all pixels, every query picks, per head, the single most
similar pixel inside its (previous-layer) mask: the "prototype". Cost is O(N x HW) similarities
and one ``argmax`` + ``gather``, both supported by ONNX, OpenVINO and TFLite.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.modeling.position_encoding import add_position_channels_last

# Excluded pixels get this added to their similarity (which lies in [-1, 1] after L2
# normalisation). PEM's code uses -inf; int8 / fp16 runtimes mishandle infinities, and a finite
# large negative gives the same argmax whenever any pixel is allowed.
EXCLUDED_SIMILARITY = -1e4
# Gain of the ramps that stand in for comparisons in the "onehot" selection: a mask logit below
# -1e-6 counts as excluded, a similarity more than 1e-6 below the best gets weight 0 (float32
# similarities near 1 are 6e-8 apart, so only near-exact ties share the weight).
STEP_GAIN = 1e6
# How a query picks its per-head prototype:
#   argmax: argmax + gather (PEM's form; training, ONNX, OpenVINO)
#   onehot: the same choice written with ops XNNPACK delegates (max, ramps, batch matmul): one
#           LiteRT delegate partition instead of a split around every ArgMax / Gather / Less /
#           Select (set by the TFLite exporter, edgeseg/export/xnnpack.py)
#   soft:   softmax at a high temperature, an earlier export experiment that failed parity
#           (benchmarks/tflite_select.py)
SELECTIONS = ("argmax", "onehot", "soft")


def unit_ramp(x: torch.Tensor) -> torch.Tensor:
    """``clamp(x, 0, 1)`` as ``1 - relu(1 - relu(x))``: LiteRT fuses ``clamp`` into RELU_0_TO_1,
    which XNNPACK does not take; this form is RELU and SUB only, exactly 0 / 1 outside (0, 1)
    at any magnitude (within float rounding inside)."""
    return 1.0 - torch.relu(1.0 - torch.relu(x))


def l2_normalize(x: torch.Tensor, delegable: bool = False) -> torch.Tensor:
    """``F.normalize(x, dim=-1)``; ``delegable``: the same as ``x * rsqrt(max(|x|^2, 1e-24))``
    (LiteRT's L2_NORMALIZATION is not an XNNPACK op)."""
    if not delegable:
        return F.normalize(x, dim=-1)
    return x * torch.rsqrt(torch.clamp((x * x).sum(dim=-1, keepdim=True), min=1e-24))


class PrototypeCrossAttention(nn.Module):
    """Query update from per-head prototypes selected by argmax over masked pixels.

    Pixel features: BN -> depthwise 3x3 -> Linear. Queries: LayerNorm -> Linear. Positional
    embeddings are added, both are L2-normalised over channels and split into heads.
    ``out = normalize(Linear(prototype * query)) * alpha + prototype -> Linear``, added to the
    query (residual) and LayerNorm'ed (Mask2Former's post-norm).
    """

    def __init__(self, dim: int, nheads: int = 8) -> None:
        super().__init__()
        if dim % nheads:
            raise ValueError(f"hidden dim {dim} is not divisible by {nheads} heads")
        self.nheads = nheads
        self.pixel_proj = nn.Sequential(
            nn.BatchNorm2d(dim), nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        )
        self.pixel_linear = nn.Linear(dim, dim)
        self.query_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.update = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.ones(dim))
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.selection = "argmax"  # one of SELECTIONS; exporters may switch it (a Python attribute)
        self.select_temperature = 1e4  # the "soft" selection's temperature

    def _normalized_heads(self, query, query_pos, memory, memory_pos, delegable: bool):
        """Projected, position-coded, L2-normalised pixels per head ``[B,h,HW,dh]``, queries
        ``[B,N,D]`` and queries per head ``[B,h,N,dh]`` (shared by every selection)."""
        b, n, d = query.shape
        h = self.nheads
        hh, ww = memory.shape[-2:]
        pixels = self.pixel_linear(self.pixel_proj(memory).permute(0, 2, 3, 1))  # B,H,W,D
        pixels = add_position_channels_last(pixels, *memory_pos).reshape(b, hh * ww, d)
        pixels = l2_normalize(pixels, delegable)
        q = l2_normalize(self.query_proj(query) + query_pos, delegable)
        pix_h = pixels.reshape(b, -1, h, d // h).transpose(1, 2)  # B,h,HW,dh
        q_h = q.reshape(b, n, h, d // h).transpose(1, 2)  # B,h,N,dh
        return pix_h, q, q_h

    def select(
        self,
        query: torch.Tensor,  # [B, N, D]
        query_pos: torch.Tensor,  # [B, N, D]
        memory: torch.Tensor,  # [B, D, H, W]
        memory_pos: tuple[torch.Tensor, torch.Tensor],  # sine code axis tables ([D/2, H], [D/2, W])
        mask_logits: torch.Tensor,  # [B, N, H, W], previous layer's masks at this resolution
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised per-head pixels ``[B,h,HW,dh]``, queries ``[B,N,D]`` and the chosen pixel
        index per head and query ``[B,h,N]``."""
        pix_h, q, q_h = self._normalized_heads(query, query_pos, memory, memory_pos, delegable=False)
        sim = torch.matmul(pix_h, q_h.transpose(2, 3))  # B,h,HW,N

        # A pixel is excluded when the previous mask logit is < 0. A query whose mask is empty
        # is reset to "all pixels allowed" *per query* (Mask2Former's rule); PEM's code resets
        # only when every query is empty and otherwise silently picks pixel 0.
        # Written with ``where`` on float constants rather than bool->float casts: FP16 ONNX
        # converters retype the graph but leave a Cast's target type at float32 (ONNX Runtime
        # then refuses the model).
        excluded = torch.where(mask_logits.detach().flatten(2) < 0, 1.0, 0.0).to(sim.dtype)  # B,N,HW
        has_pixels = torch.where(excluded.amin(dim=2, keepdim=True) < 0.5, 1.0, 0.0).to(sim.dtype)  # B,N,1
        excluded = (excluded * has_pixels).transpose(1, 2).unsqueeze(1)  # B,1,HW,N
        sim = sim + excluded * EXCLUDED_SIMILARITY
        return pix_h, q, sim.argmax(dim=2)

    def soft_prototypes(self, query, query_pos, memory, memory_pos, mask_logits):
        """Prototypes as ``softmax(T * sim) @ pixels``: at a high temperature the weights are one-hot
        on the most similar allowed pixel, i.e. argmax + gather, written with ops XNNPACK
        delegates (MUL, clamp, MEAN, SOFTMAX, BATCH_MATMUL) instead of ArgMax / Gather / Less /
        Select / ReduceMin, which split a TFLite graph into partitions. An experiment for the
        TFLite export that failed parity (benchmarks/tflite_select.py); kept to re-run it."""
        hh, ww = memory.shape[-2:]
        pix_h, q, q_h = self._normalized_heads(query, query_pos, memory, memory_pos, delegable=False)
        sim = torch.matmul(q_h, pix_h.transpose(2, 3))  # B,h,N,HW
        # excluded = 1 where the logit is < 0 (a step written as a steep clamp); a query with no
        # allowed pixel gets every pixel back: mean(excluded) == 1 <=> (1 - mean) * HW < 1
        excluded = torch.clamp(mask_logits.detach().flatten(2) * -1e6, 0.0, 1.0)  # B,N,HW
        has_pixels = torch.clamp((1.0 - excluded.mean(dim=2, keepdim=True)) * (hh * ww), 0.0, 1.0)
        sim = sim + (excluded * has_pixels).unsqueeze(1) * EXCLUDED_SIMILARITY
        weights = torch.softmax(sim * self.select_temperature, dim=-1)
        return pix_h, q, torch.matmul(weights, pix_h)  # B,h,N,dh

    def onehot_prototypes(self, query, query_pos, memory, memory_pos, mask_logits):
        """argmax + gather written as ``onehot(sim == max) @ pixels / count``, every op one that
        XNNPACK delegates (REDUCE_MAX, MEAN, SUM, MUL, SUB, RELU, RSQRT, DIV, BATCH_MATMUL). The
        same choice as :meth:`select` up to similarities within 1e-6 of the best, which share
        the weight instead of the first one winning."""
        hh, ww = memory.shape[-2:]
        pix_h, q, q_h = self._normalized_heads(query, query_pos, memory, memory_pos, delegable=True)
        sim = torch.matmul(q_h, pix_h.transpose(2, 3))  # B,h,N,HW
        excluded = unit_ramp(mask_logits.detach().flatten(2) * -STEP_GAIN)  # B,N,HW: 1 where logit < 0
        # 1 when some pixel is allowed (mean < 1 by at least 1/HW), else 0: then every pixel is
        has_pixels = unit_ramp((1.0 - excluded.mean(dim=2, keepdim=True)) * (hh * ww))  # B,N,1
        sim = sim + (excluded * has_pixels).unsqueeze(1) * EXCLUDED_SIMILARITY
        best = sim.amax(dim=-1, keepdim=True)
        onehot = unit_ramp(1.0 - (best - sim) * STEP_GAIN)  # 1 at the best allowed pixel, else 0
        proto = torch.matmul(onehot, pix_h) / onehot.sum(dim=-1, keepdim=True)  # B,h,N,dh
        return pix_h, q, proto

    def forward(
        self,
        query: torch.Tensor,
        query_pos: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: tuple[torch.Tensor, torch.Tensor],
        mask_logits: torch.Tensor,
    ) -> torch.Tensor:
        b, n, d = query.shape
        if self.selection not in SELECTIONS:
            raise ValueError(f"prototype selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.selection == "onehot":
            pix_h, q, proto = self.onehot_prototypes(query, query_pos, memory, memory_pos, mask_logits)
        elif self.selection == "soft":
            pix_h, q, proto = self.soft_prototypes(query, query_pos, memory, memory_pos, mask_logits)
        else:
            pix_h, q, index = self.select(query, query_pos, memory, memory_pos, mask_logits)
            dh = d // self.nheads
            proto = torch.gather(pix_h, 2, index.unsqueeze(-1).expand(-1, -1, -1, dh))  # B,h,N,dh
        proto = proto.transpose(1, 2).reshape(b, n, d)
        # PEM normalises this over the query axis (dim=1 of BxQxD), probably unintended; we
        # normalise over channels so a query's update does not depend on the other queries.
        upd = l2_normalize(self.update(proto * q), self.selection == "onehot") * self.alpha + proto
        return self.norm(query + self.out(upd))
