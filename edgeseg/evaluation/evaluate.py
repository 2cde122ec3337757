"""Score a predictor on a COCO-panoptic split: PQ/SQ/RQ (panopticapi rules) and mIoU.

The predictor is the deployment path (numpy pre/post around any runtime), so the numbers are
what a device would get, not a torch-only shortcut.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.evaluation.panoptic_quality import PQAccumulator
from edgeseg.evaluation.semantic import SemanticAccumulator, panoptic_to_semantic
from edgeseg.inference.predictor import Predictor


@dataclass
class SplitScore:
    """The raw accumulators of one pass over a split: what ``evaluate`` summarises, and what a
    paired comparison of two models needs (``pq.per_image``: per image and class IoU, TP, FP, FN)."""

    pq: PQAccumulator
    semantic: SemanticAccumulator
    images: int
    seconds: float


def score_split(predictor: Predictor, dataset: CocoPanoptic, max_images: int = 0, progress: bool = True) -> SplitScore:
    """Run ``predictor`` over ``dataset`` (first ``max_images`` if > 0), accumulating PQ and mIoU."""
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in dataset.categories]
    pq = PQAccumulator(categories)
    sem = SemanticAccumulator(len(categories), class_names=[c.name for c in dataset.categories])
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="eval", unit="img", leave=False)
    start = time.perf_counter()
    for i in indices:
        sample = dataset.load_raw(i)
        result = predictor.predict(sample.image, tasks=("panoptic", "semantic"))
        pq.update(sample.panoptic, sample.segments, result.panoptic, result.segment_dicts(), image_id=sample.image_id)
        gt_sem = panoptic_to_semantic(sample.panoptic, sample.segments, dataset.cat_id_to_index)
        sem.update(gt_sem, result.semantic)
    return SplitScore(pq, sem, n, time.perf_counter() - start)


def evaluate(predictor: Predictor, dataset: CocoPanoptic, max_images: int = 0, progress: bool = True) -> dict[str, Any]:
    """Run ``predictor`` over ``dataset`` (first ``max_images`` if > 0) and return metrics (percent)."""
    return summarise(score_split(predictor, dataset, max_images, progress))


def summarise(score: SplitScore) -> dict[str, Any]:
    """The metrics dict (percent) of a ``SplitScore``."""
    summary = score.pq.summary()
    semantic = score.semantic.summary()
    n = score.images
    return {
        "images": n,
        "pq": summary["all"]["pq"], "sq": summary["all"]["sq"], "rq": summary["all"]["rq"],
        "pq_things": summary["things"]["pq"], "sq_things": summary["things"]["sq"], "rq_things": summary["things"]["rq"],
        "pq_stuff": summary["stuff"]["pq"], "sq_stuff": summary["stuff"]["sq"], "rq_stuff": summary["stuff"]["rq"],
        "miou": semantic["miou"],
        "panoptic": summary,
        # 95 % bootstrap interval over images: how far this split's PQ can move by sampling alone
        "pq_ci95": score.pq.bootstrap_ci(),
        "semantic": semantic,
        "seconds_per_image": score.seconds / max(n, 1),
    }
