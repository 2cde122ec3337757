"""PQ of a network on held-out samples: the number INT8 is held to, and what NNCF's accuracy
control ranks layers by. Runs the one pipeline (``Predictor.preprocess`` -> ``infer`` ->
``postprocess``) every runtime uses."""
from __future__ import annotations

from typing import Sequence

from edgeseg.data.coco_panoptic import PanopticSample
from edgeseg.evaluation.panoptic_quality import PQAccumulator
from edgeseg.inference.predictor import Predictor


def panoptic_quality(predictor: Predictor, samples: Sequence[PanopticSample], categories: list[dict]) -> dict:
    """``{"pq", "pq_things", "pq_stuff", "per_image"}`` in percent; ``per_image`` holds each
    image's PQ (NNCF's accuracy control ranks layers with per-sample values)."""
    total = PQAccumulator(categories)
    per_image = []
    for sample in samples:
        x, letterbox = predictor.preprocess(sample.image)
        result = predictor.postprocess(predictor.infer(x), letterbox, tasks=("panoptic",))
        one = PQAccumulator(categories)
        one.update(sample.panoptic, sample.segments, result.panoptic, result.segment_dicts(), image_id=sample.image_id)
        per_image.append(one.summary()["all"]["pq"])
        total.merge(one)
    summary = total.summary()
    return {"pq": summary["all"]["pq"], "pq_things": summary["things"]["pq"], "pq_stuff": summary["stuff"]["pq"],
            "per_image": per_image}
