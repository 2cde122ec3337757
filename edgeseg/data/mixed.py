"""Several COCO-panoptic pools seen as one training set, each repeated to a chosen share.

Why: a user's few labelled images and many teacher-labelled frames train together, and the
share of each in the stream should not be set by their counts alone (500 labelled beside 2,000
unlabelled would leave ground truth in one image of five). Repetition keeps the training stream
a plain index permutation, so exact resume is unchanged (``training/data_stream.py``).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeseg.data.coco_panoptic import CocoPanoptic, PanopticSample
from edgeseg.errors import DatasetError


def repeats_for_share(n_first: int, n_second: int, second_share: float) -> tuple[int, int]:
    """Whole repeat counts ``(r1, r2)`` so that ``r2 * n_second / (r1 * n_first + r2 * n_second)``
    is nearest ``second_share``; ``second_share == 0`` keeps both at their sizes (1, 1)."""
    if n_first <= 0 or n_second <= 0:
        raise ValueError(f"both pools need images, got {n_first} and {n_second}")
    if second_share <= 0:
        return 1, 1
    # the repeated pool is the one that would otherwise be under its share
    wanted = second_share / (1 - second_share) * n_first / n_second  # r2 / r1
    if wanted >= 1:
        return 1, max(1, round(wanted))
    return max(1, round(1 / wanted)), 1


class MixedPanoptic:
    """Concatenation of ``(dataset, repeats)`` pools with one label space: index ``i`` maps to an
    image of one pool. Provides what the training stream reads of a :class:`CocoPanoptic`."""

    def __init__(self, pools: Sequence[tuple[CocoPanoptic, int]]) -> None:
        if not pools:
            raise ValueError("MixedPanoptic needs at least one pool")
        first = pools[0][0]
        for ds, repeats in pools:
            if (ds.class_names, ds.isthing, ds.category_ids) != (first.class_names, first.isthing, first.category_ids):
                raise DatasetError(f"{ds.json_path}: categories differ from {first.json_path}'s; pools must share "
                                   f"one label space")
            if repeats < 1 or len(ds) == 0:
                raise DatasetError(f"{ds.json_path}: a pool needs images and repeats >= 1 (got {len(ds)}, {repeats})")
        self.pools = [ds for ds, _ in pools]
        self.repeats = [int(r) for _, r in pools]
        self._ends = np.cumsum([len(ds) * r for ds, r in pools])
        self.class_names, self.isthing, self.category_ids = first.class_names, first.isthing, first.category_ids
        self.cat_id_to_index = first.cat_id_to_index

    def __len__(self) -> int:
        return int(self._ends[-1])

    def shares(self) -> list[float]:
        """Fraction of the stream each pool makes up."""
        sizes = np.diff(np.concatenate([[0], self._ends]))
        return [float(s / self._ends[-1]) for s in sizes]

    def _locate(self, i: int) -> tuple[CocoPanoptic, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        k = int(np.searchsorted(self._ends, i, side="right"))
        start = int(self._ends[k - 1]) if k else 0
        ds = self.pools[k]
        return ds, (i - start) % len(ds)

    def load_raw(self, i: int) -> PanopticSample:
        ds, j = self._locate(i)
        return ds.load_raw(j)

    def targets(self, sample: PanopticSample):
        return self.pools[0].targets(sample)  # one label space: any pool maps category ids alike

    def semantic_target(self, sample: PanopticSample, ignore_index: int = 255) -> np.ndarray:
        return self.pools[0].semantic_target(sample, ignore_index)
