"""Silhouette shape head: scale-normalised crops, export-safe ops, warm start on ground truth."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.modeling.shape_head import SilhouetteShapeHead, silhouette_crops
from edgeseg.training.data_stream import TrainStream
from edgeseg.training.shape_pretrain import dihedral_views, pretrain_shape_head, silhouette_bank


def _square(size: int, cy: int, cx: int, half: int) -> torch.Tensor:
    m = torch.zeros(size, size)
    m[cy - half:cy + half, cx - half:cx + half] = 1.0
    return m


def test_crops_are_invariant_to_position_and_scale():
    small = silhouette_crops(_square(32, 10, 12, 4)[None], 24)
    large = silhouette_crops(_square(64, 40, 22, 16)[None], 24)
    assert small.shape == (1, 1, 24, 24)
    # the same square seen at 4x the scale, elsewhere, gives almost the same crop
    assert (small - large).abs().mean() < 0.05  # only the 8 px square's blurrier edge differs
    # and a different shape does not
    disc = torch.zeros(64, 64)
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    disc[((yy - 32) ** 2 + (xx - 32) ** 2) < 15 ** 2] = 1.0
    assert (silhouette_crops(disc[None], 24) - large).abs().mean() > 0.08


def test_empty_mask_gives_a_finite_zero_crop():
    crop = silhouette_crops(torch.zeros(2, 16, 16), 8)
    assert torch.isfinite(crop).all() and crop.abs().max() == 0


def test_head_starts_neutral_and_reads_masks_detached():
    head = SilhouetteShapeHead(5)
    logits = torch.randn(2, 3, 16, 16, requires_grad=True)
    out = head(logits)
    assert out.shape == (2, 3, 5) and out.abs().max() == 0  # zero-initialised last layer
    out.sum().backward()
    assert logits.grad is None  # the head never bends the masks


def test_dihedral_views_keep_the_crop_set():
    x = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    v = dihedral_views(x)
    assert v.shape == (16, 1, 3, 3)
    assert torch.equal(v[:2], x)
    # every view is a permutation of its source crop's pixels, and the 8 views of one crop differ
    assert all(torch.equal(v[i].flatten().sort()[0], x[i % 2].flatten().sort()[0]) for i in range(16))
    assert len({tuple(v[i].flatten().tolist()) for i in range(0, 16, 2)}) == 8


def test_warm_start_lowers_the_loss_on_ground_truth_silhouettes(tiny_data):
    torch.manual_seed(0)
    stream = TrainStream(CocoPanoptic(tiny_data, "train"), 64, (1.0, 1.0), seed=0)
    head = SilhouetteShapeHead(14)
    crops, labels = silhouette_bank(stream, 8, (16, 16), head)
    assert crops.shape[0] == labels.shape[0] > 0
    head.fc.reset_parameters()  # start from a non-trivial guess so "lower" is meaningful
    before = F.cross_entropy(head.classify_crops(crops), labels).item()
    info = pretrain_shape_head(head, stream, (16, 16), steps=120, images=8, batch_size=32, lr=1e-2)
    after = F.cross_entropy(head.classify_crops(crops), labels).item()
    assert info["silhouettes"] == labels.numel()
    assert after < 0.7 * before
