"""Choose the object-score threshold of panoptic inference on *training* images.

Why: Mask2Former's 0.8 is tuned for its COCO models. A small student trained for minutes is
less confident: on the quick recipe's model, 0.8 keeps so few thing queries that things PQ
is 3.6 on val, while its masks and classes would support more. The threshold is a property of
the model, so edgeseg picks it per checkpoint, on training images (never the val split the
recipe is scored on), and stores it in the checkpoint, from where every export inherits it.
Scores on training images are, if anything, over-confident, so the choice errs high.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.evaluation.panoptic_quality import PQAccumulator
from edgeseg.inference.predictor import Predictor

DEFAULT_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def calibrate_object_threshold(predictor: Predictor, dataset: CocoPanoptic, images: int = 100,
                               grid: Sequence[float] = DEFAULT_GRID) -> dict:
    """PQ on the first ``images`` images of ``dataset`` for each threshold in ``grid``; returns
    ``{"object_mask_threshold": best, "pq_by_threshold": {...}, "images": n}`` (ties: the higher)."""
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in dataset.categories]
    accs = {t: PQAccumulator(categories) for t in grid}
    n = min(images, len(dataset))
    for i in range(n):
        sample = dataset.load_raw(i)
        x, letterbox = predictor.preprocess(sample.image)
        outputs = predictor.infer(x)  # one network run, every threshold
        for t, acc in accs.items():
            res = predictor.postprocess(outputs, letterbox, tasks=("panoptic",), thresholds={"object_mask_threshold": t})
            acc.update(sample.panoptic, sample.segments, res.panoptic, res.segment_dicts(), image_id=sample.image_id)
    pq = {t: acc.summary()["all"]["pq"] for t, acc in accs.items()}
    best = max(sorted(pq, reverse=True), key=lambda t: pq[t])
    return {"object_mask_threshold": best, "pq_by_threshold": {str(t): round(v, 2) for t, v in pq.items()},
            "images": n, "split": dataset.split}


def calibrate_checkpoint(weights: str, data: str, split: str = "train", images: int = 100) -> dict:
    """Calibrate a ``.pt`` checkpoint in place (atomic rewrite); returns the calibration record."""
    from edgeseg.backends import load
    from edgeseg.checkpoint import load_checkpoint, save_checkpoint
    from edgeseg.inference.predictor import Thresholds

    predictor = load(weights)
    record = calibrate_object_threshold(predictor, CocoPanoptic(data, split), images)
    ckpt = load_checkpoint(weights)
    thresholds = dataclasses.asdict(Thresholds(**ckpt.get("thresholds", {})))
    thresholds["object_mask_threshold"] = record["object_mask_threshold"]
    ckpt["thresholds"] = thresholds
    ckpt["calibration"] = record
    for key in ("format", "edgeseg_version"):
        ckpt.pop(key, None)
    save_checkpoint(weights, ckpt)
    return record
