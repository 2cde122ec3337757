"""PQ of any ``forward(x) -> (class_logits, mask_logits)`` on held-out samples: the number INT8 is
held to. Uses the same numpy pre/post-processing as every runtime."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from edgeseg.data.coco_panoptic import PanopticSample
from edgeseg.evaluation.panoptic_quality import PQAccumulator
from edgeseg.inference.postprocess import postprocess
from edgeseg.inference.predictor import Thresholds
from edgeseg.inference.preprocess import preprocess
from edgeseg.inference.result import LabelSpace

Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def panoptic_quality(forward: Forward, samples: Sequence[PanopticSample], categories: list[dict], labels: LabelSpace,
                     thresholds: Thresholds, size: int, mean, std) -> dict:
    """``{"pq", "pq_things", "pq_stuff", "per_image"}`` in percent; ``per_image`` holds each
    image's PQ (NNCF's accuracy control ranks layers with per-sample values)."""
    total = PQAccumulator(categories)
    per_image = []
    for sample in samples:
        x, letterbox = preprocess(sample.image, size, mean, std)
        cls, masks = forward(x)
        result = postprocess(np.asarray(cls, np.float32), np.asarray(masks, np.float32), letterbox, labels,
                             tasks=("panoptic",), object_mask_threshold=thresholds.object_mask_threshold,
                             overlap_threshold=thresholds.overlap_threshold, mask_threshold=thresholds.mask_threshold)
        segs = [{"id": s.id, "category_id": s.category_id} for s in result.segments]
        one = PQAccumulator(categories)
        one.update(sample.panoptic, sample.segments, result.panoptic, segs, image_id=sample.image_id)
        per_image.append(one.summary()["all"]["pq"])
        total.merge(one)
    summary = total.summary()
    return {"pq": summary["all"]["pq"], "pq_things": summary["things"]["pq"], "pq_stuff": summary["stuff"]["pq"],
            "per_image": per_image}
