"""Parity of an exported artifact against torch: same images, same numpy pre/post-processing.

Reported per export: max abs difference of both outputs, mask agreement (share of pixels whose
panoptic segment corresponds, class included) and PQ of both on the images. Tolerances: FP32
agreement >= 99.5 % and PQ within 0.3; FP16 >= 99 % and PQ within 1.0; INT8 PQ within 1.0.

FP16 shares INT8's PQ budget because PQ on a handful of parity images cannot resolve 0.5: on
the Lite0 student's 8 parity images one flipped segment moves it by 0.5-0.6 (ONNX FP16 at 128 px
+0.51 with 99.84 % of pixels agreeing, the OpenVINO FP16 IR at 512 +0.59 with 99.16 %). The
pixel agreement is the strict FP16 check; the PQ bound catches a broken model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.errors import EdgesegError
from edgeseg.evaluation.agreement import panoptic_agreement  # noqa: F401 - re-exported for callers of the parity check
from edgeseg.evaluation.panoptic_quality import PQAccumulator
from edgeseg.inference.predictor import Predictor

# precision -> (minimum mask agreement in %, maximum |PQ difference| in points)
TOLERANCES: dict[str, tuple[float, float]] = {"fp32": (99.5, 0.3), "fp16": (99.0, 1.0), "int8": (0.0, 1.0)}


@dataclass
class ParityReport:
    precision: str
    images: int
    max_abs_class_logits: float
    max_abs_mask_logits: float
    mask_agreement: float  # percent of pixels
    pq_reference: float
    pq_artifact: float
    min_agreement: float
    max_pq_diff: float
    passed: bool
    segments_reference: int = 0  # segments found over all images: a comparison of two empty outputs says nothing
    segments_artifact: int = 0

    def summary(self) -> str:
        return (f"parity ({self.precision}, {self.images} images): max|d class| {self.max_abs_class_logits:.2e}  "
                f"max|d mask| {self.max_abs_mask_logits:.2e}  agreement {self.mask_agreement:.2f}% (>= {self.min_agreement})  "
                f"PQ torch {self.pq_reference:.2f} vs artifact {self.pq_artifact:.2f} "
                f"({'drop' if self.precision == 'int8' else '|d|'} <= {self.max_pq_diff})  "
                f"-> {'ok' if self.passed else 'FAILED'}")

    def to_dict(self) -> dict:
        return asdict(self)


def check_parity(reference: Predictor, artifact: Predictor, dataset: CocoPanoptic, precision: str,
                 images: int = 8, max_pq_drop: float | None = None) -> ParityReport:
    """Run both predictors on the first ``images`` images of ``dataset`` and compare.

    FP32/FP16 must stay within ``|PQ difference|``; INT8 is held to a PQ *drop* (``max_pq_drop``,
    default the INT8 tolerance): an INT8 model scoring higher than torch is not a failure."""
    if (reference.input_size, reference.mean, reference.std) != (artifact.input_size, artifact.mean, artifact.std):
        raise EdgesegError(f"parity needs the same input: torch runs at {reference.input_size} "
                           f"(mean {reference.mean}, std {reference.std}), the artifact at {artifact.input_size} "
                           f"(mean {artifact.mean}, std {artifact.std})")
    categories = [{"id": c.id, "name": c.name, "isthing": int(c.isthing)} for c in dataset.categories]
    pq_ref, pq_art = PQAccumulator(categories), PQAccumulator(categories)
    d_cls = d_mask = 0.0
    agreements = []
    segments = [0, 0]
    n = min(images, len(dataset))
    for i in range(n):
        sample = dataset.load_raw(i)
        x, letterbox = reference.preprocess(sample.image)  # one input for both: parity is the network's
        outs = []
        for pred in (reference, artifact):
            raw = pred.infer(x)
            outs.append((raw, pred.postprocess(raw, letterbox, tasks=("panoptic",))))
        (o0, r0), (o1, r1) = outs
        d_cls = max(d_cls, float(np.abs(o0["class_logits"] - o1["class_logits"]).max()))
        d_mask = max(d_mask, float(np.abs(o0["mask_logits"] - o1["mask_logits"]).max()))
        segments[0] += len(r0.segments)
        segments[1] += len(r1.segments)
        cats0 = {s.id: s.category_id for s in r0.segments}
        cats1 = {s.id: s.category_id for s in r1.segments}
        agreements.append(panoptic_agreement(r0.panoptic, cats0, r1.panoptic, cats1))
        for acc, res in ((pq_ref, r0), (pq_art, r1)):
            acc.update(sample.panoptic, sample.segments, res.panoptic, res.segment_dicts(), image_id=sample.image_id)
    min_agree, max_pq = TOLERANCES[precision]
    if precision == "int8" and max_pq_drop is not None:
        max_pq = float(max_pq_drop)
    agreement = float(np.mean(agreements)) if agreements else 100.0
    pq0, pq1 = pq_ref.summary()["all"]["pq"], pq_art.summary()["all"]["pq"]
    pq_diff = pq0 - pq1 if precision == "int8" else abs(pq0 - pq1)
    passed = agreement >= min_agree and pq_diff <= max_pq
    return ParityReport(precision, n, d_cls, d_mask, agreement, pq0, pq1, min_agree, max_pq, passed,
                        segments_reference=segments[0], segments_artifact=segments[1])
