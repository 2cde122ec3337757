"""Semantic segmentation metrics (mIoU, pixel accuracy) from a running confusion matrix.

Why a confusion matrix: it is exact, cheap to accumulate with ``np.bincount`` and trivially
mergeable across processes. Pixels whose gt is ``ignore_index`` are skipped; a prediction
outside ``[0, num_classes)`` (e.g. an "unlabeled" 255) counts as a miss for the gt class.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from edgeseg.errors import DatasetError


class SemanticAccumulator:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows = gt, cols = pred)."""

    def __init__(self, num_classes: int, ignore_index: int = 255, class_names: Sequence[str] | None = None):
        if int(num_classes) < 1:
            raise ValueError(f"SemanticAccumulator: num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        if class_names is None:
            class_names = [str(i) for i in range(self.num_classes)]
        if len(class_names) != self.num_classes:
            raise ValueError(
                f"SemanticAccumulator: {len(class_names)} class_names for {self.num_classes} classes"
            )
        self.class_names = [str(n) for n in class_names]
        # Extra last column: valid-gt pixels whose prediction is out of range (a miss).
        self.confusion = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one HxW gt / prediction pair of class indices."""
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise DatasetError(f"mIoU: gt shape {gt.shape} != pred shape {pred.shape}")
        for what, arr in (("gt", gt), ("pred", pred)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise DatasetError(f"mIoU: {what} must hold integer class indices, got dtype {arr.dtype}")
        gt = gt.astype(np.int64, copy=False).ravel()
        pred = pred.astype(np.int64, copy=False).ravel()
        keep = gt != self.ignore_index
        gt, pred = gt[keep], pred[keep]
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
            bad = np.unique(gt[(gt < 0) | (gt >= self.num_classes)])[:5].tolist()
            raise DatasetError(
                f"mIoU: gt has class values {bad} outside [0, {self.num_classes}) "
                f"that are not the ignore_index {self.ignore_index}"
            )
        pred = np.where((pred < 0) | (pred >= self.num_classes), self.num_classes, pred)
        k = self.num_classes + 1
        self.confusion += np.bincount(gt * k + pred, minlength=self.num_classes * k).reshape(
            self.num_classes, k
        )

    def merge(self, other: "SemanticAccumulator") -> None:
        """Add another accumulator's confusion matrix (same number of classes)."""
        if other.confusion.shape != self.confusion.shape:
            raise ValueError(
                f"SemanticAccumulator.merge: {other.num_classes} classes vs {self.num_classes}"
            )
        self.confusion += other.confusion

    def summary(self) -> dict:
        """mIoU and pixel accuracy in percent, plus per-class IoU.

        Classes absent from both gt and prediction get NaN IoU and are left out of the mean
        (``n`` says how many classes were averaged); with nothing to average, mIoU is 0.
        """
        conf = self.confusion
        tp = np.diag(conf[:, : self.num_classes]).astype(np.float64)
        gt_area = conf.sum(axis=1).astype(np.float64)
        pred_area = conf[:, : self.num_classes].sum(axis=0).astype(np.float64)
        union = gt_area + pred_area - tp
        per_class = {}
        ious = []
        for name, t, u in zip(self.class_names, tp, union):
            if u > 0:
                per_class[name] = 100.0 * t / u
                ious.append(per_class[name])
            else:
                per_class[name] = math.nan
        total = gt_area.sum()
        return {
            "miou": float(np.mean(ious)) if ious else 0.0,
            "pixel_acc": 100.0 * float(tp.sum() / total) if total else 0.0,
            "per_class_iou": per_class,
            "n": len(ious),
        }


def panoptic_to_semantic(
    ids: np.ndarray,
    segments: Sequence[Mapping],
    cat_id_to_index: Mapping[int, int],
    ignore_index: int = 255,
) -> np.ndarray:
    """Panoptic id map + segments_info -> HxW int32 class-index map.

    VOID (id 0) becomes ``ignore_index``; crowd segments keep their class (semantic eval has no
    notion of crowd). Ids in the map without a segment, or unknown categories, raise.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise DatasetError(f"panoptic_to_semantic: ids must be an HxW integer map, got {ids.shape} {ids.dtype}")
    seg_class: dict[int, int] = {}
    for seg in segments:
        if not isinstance(seg, Mapping) or "id" not in seg or "category_id" not in seg:
            raise DatasetError(f"panoptic_to_semantic: segment {seg!r} needs 'id' and 'category_id'")
        sid, cat = int(seg["id"]), int(seg["category_id"])
        if cat not in cat_id_to_index:
            raise DatasetError(f"panoptic_to_semantic: segment id {sid} has unknown category_id {cat}")
        seg_class[sid] = int(cat_id_to_index[cat])
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.empty(len(uniq), dtype=np.int32)
    for i, sid in enumerate(uniq.tolist()):
        if sid == 0:
            lut[i] = ignore_index
        elif sid in seg_class:
            lut[i] = seg_class[sid]
        else:
            raise DatasetError(f"panoptic_to_semantic: segment id {sid} is in the map but not in segments_info")
    return lut[inverse.reshape(ids.shape)]
