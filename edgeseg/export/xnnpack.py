"""Rewrite a student so LiteRT's XNNPACK delegate takes its whole graph (one partition).

Every op XNNPACK cannot run ends a delegate partition, and each hand-over between the delegate
and LiteRT's own kernels costs a copy and a sync (:mod:`edgeseg.export.tflite_partitions`
finds them). Three parts of the student split the graph as written for training:

- prototype selection (ARG_MAX, GATHER_ND, LESS, SELECT_V2, L2_NORMALIZATION in every decoder
  layer) -> the "onehot" selection of :class:`PrototypeCrossAttention`, the same choice in
  delegable ops;
- the pixel decoder's transposed convs: litert-torch folds their BatchNorm into a 4-D bias that
  XNNPACK refuses, and lowers them to float even when PT2E quantized them -> BatchNorm fused
  into the conv here (``fuse_conv_bn_eval``), then the conv written in its sub-pixel form
  (:class:`SubPixelUpsample`: one 2x2 conv and a pixel shuffle), which quantizes like any conv;
- the sine position tables (POW, FLOOR_DIV, stride-2 slices computed at run time) -> frozen
  into constants for the export size.

The rewrite works on a copy: the caller's module stays the torch reference that parity compares
against.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edgeseg.modeling.pixel_decoder import UpBlock
from edgeseg.modeling.position_encoding import PositionEmbeddingSine
from edgeseg.modeling.prototype_attention import PrototypeCrossAttention


class SubPixelUpsample(nn.Module):
    """A 4x4 stride-2 padding-1 transposed conv as one 2x2 conv to 4x the channels and a pixel
    shuffle (the sub-pixel form): the same output up to summation order.

    Why: litert-torch lowers a PT2E-quantized ``conv_transpose2d`` to a *float* TRANSPOSE_CONV,
    so in a full-integer file the pixel decoder's three upsamplings (its heaviest ops) ran in
    float; a CONV_2D is quantized like every other conv. Derivation, per axis: output ``2m``
    is ``x[m-1] w[3] + x[m] w[1]`` and output ``2m+1`` is ``x[m] w[2] + x[m+1] w[0]``, i.e. two-tap
    windows of the input padded by one, starting at ``m`` (even) and ``m + 1`` (odd)."""

    def __init__(self, up: nn.ConvTranspose2d) -> None:
        super().__init__()
        if (up.kernel_size, up.stride, up.padding, up.groups, up.dilation, up.output_padding) != (
                (4, 4), (2, 2), (1, 1), 1, (1, 1), (0, 0)):
            raise ValueError(f"sub-pixel form is written for a 4x4 stride-2 padding-1 transposed conv, got {up}")
        w = up.weight.detach()  # [in, out, 4, 4]
        taps = ([3, 1], [2, 0])  # kernel rows / columns read by even / odd outputs
        phases = [w[:, :, taps[a]][:, :, :, taps[b]].transpose(0, 1) for a in (0, 1) for b in (0, 1)]
        self.out_channels = w.shape[1]
        self.conv = nn.Conv2d(w.shape[0], 4 * w.shape[1], 2, bias=up.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(torch.cat(phases))  # phase-major: [phase (a, b)][out]
            if up.bias is not None:
                self.conv.bias.copy_(up.bias.detach().repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        z = self.conv(F.pad(x, (1, 1, 1, 1)))  # [B, 4C, H+1, W+1]
        c = self.out_channels
        phases = [z[:, i * c:(i + 1) * c, a:a + h, bb:bb + w] for i, (a, bb) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1)))]
        y = torch.stack(phases, dim=2).reshape(b, 4 * c, h, w)  # channel c*4 + phase
        return F.pixel_shuffle(y, 2)


def _rewrite_upsample(block: UpBlock) -> None:
    if block.up is None or not isinstance(block.up_act[0], nn.BatchNorm2d):
        return
    block.up = SubPixelUpsample(fuse_conv_bn_eval(block.up, block.up_act[0], transpose=True))
    block.up_act[0] = nn.Identity()


def prepare_for_xnnpack(module: nn.Module, example: torch.Tensor) -> nn.Module:
    """An eval-mode copy of ``module`` (a student or its export wrapper) rewritten for XNNPACK
    at ``example``'s input size; its outputs equal the original's up to float rounding and
    similarity ties within 1e-6."""
    module = copy.deepcopy(module).eval()
    longest = max(example.shape[-2:])
    for m in module.modules():
        if isinstance(m, PrototypeCrossAttention):
            m.selection = "onehot"
        elif isinstance(m, UpBlock):
            _rewrite_upsample(m)
        elif isinstance(m, PositionEmbeddingSine):
            # every map the decoder attends to is at least 1/32 of the input: lengths up to the
            # input's longest side / 4 cover them all with room for any stride
            m.freeze(list(range(1, longest // 4 + 1)))
    return module
