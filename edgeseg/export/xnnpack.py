"""Rewrite a student so LiteRT's XNNPACK delegate takes its whole graph (one partition).

Every op XNNPACK cannot run ends a delegate partition, and each hand-over between the delegate
and LiteRT's own kernels costs a copy and a sync (:mod:`edgeseg.export.tflite_partitions`
finds them). Three parts of the student split the graph as written for training:

- prototype selection (ARG_MAX, GATHER_ND, LESS, SELECT_V2, L2_NORMALIZATION in every decoder
  layer) -> the "onehot" selection of :class:`PrototypeCrossAttention`, the same choice in
  delegable ops;
- the pixel decoder's transposed convs, whose BatchNorm litert-torch folds into a 4-D bias that
  XNNPACK refuses -> BatchNorm fused into the conv here (``fuse_conv_bn_eval``), a 1-D bias;
- the sine position tables (POW, FLOOR_DIV, stride-2 slices computed at run time) -> frozen
  into constants for the export size.

The rewrite works on a copy: the caller's module stays the torch reference that parity compares
against.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edgeseg.modeling.pixel_decoder import UpBlock
from edgeseg.modeling.position_encoding import PositionEmbeddingSine
from edgeseg.modeling.prototype_attention import PrototypeCrossAttention


def _fuse_upsample_norm(block: UpBlock) -> None:
    if block.up is None or not isinstance(block.up_act[0], nn.BatchNorm2d):
        return
    block.up = fuse_conv_bn_eval(block.up, block.up_act[0], transpose=True)
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
            _fuse_upsample_norm(m)
        elif isinstance(m, PositionEmbeddingSine):
            # every map the decoder attends to is at least 1/32 of the input: lengths up to the
            # input's longest side / 4 cover them all with room for any stride
            m.freeze(list(range(1, longest // 4 + 1)))
    return module
