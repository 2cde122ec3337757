"""One predictor for every runtime: ``preprocess`` -> ``infer`` -> ``postprocess``.

The three steps are public so that every consumer (evaluation, threshold calibration, export
parity, INT8 validation, the benchmark) runs exactly the path ``predict`` runs, never its own
copy of it. Pre- and post-processing are numpy; only ``infer`` touches a runtime.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from edgeseg.data.image_io import as_rgb_uint8, read_image
from edgeseg.errors import EdgesegError
from edgeseg.inference.postprocess import postprocess
from edgeseg.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, preprocess
from edgeseg.inference.result import LabelSpace, Result
from edgeseg.inference.sources import Source, is_single_image, iter_images


class Adapter(Protocol):
    """What the predictor needs of a runtime (:class:`edgeseg.backends.base.Adapter` provides it)."""

    input_size: int

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``x [1,3,S,S]`` float32 -> ``{"class_logits": [1,N,K+1], "mask_logits": [1,N,S/4,S/4]}``."""
        ...


@dataclass(frozen=True)
class Thresholds:
    """Mask2Former's inference thresholds (its COCO panoptic defaults). A trained model stores
    its own (``edgeseg calibrate`` chooses ``object_mask_threshold`` on training images).
    ``instance_score_threshold`` drops instance results scored below it (class probability x
    mean mask probability); 0 keeps Mask2Former's top 100, each a full-frame mask."""

    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    mask_threshold: float = 0.5
    instance_score_threshold: float = 0.0

    def merged(self, overrides: "Thresholds | Mapping[str, float | None] | None") -> "Thresholds":
        """These thresholds with ``overrides`` applied: a complete :class:`Thresholds` replaces
        them; in a mapping, ``None`` (or a missing key) keeps the stored value."""
        if overrides is None:
            return self
        if isinstance(overrides, Thresholds):
            return overrides
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise EdgesegError(f"unknown threshold(s) {unknown}; valid: {sorted(known)}")
        changes = {k: float(v) for k, v in overrides.items() if v is not None}
        for key, value in changes.items():
            if not 0.0 <= value <= 1.0:
                raise EdgesegError(f"threshold {key} must be in [0, 1], got {value}")
        return dataclasses.replace(self, **changes)


class Predictor:
    """``predict(image) -> Result`` for an RGB uint8 image (HxWx3) or an image path.

    The network input is the image letterboxed to ``input_size`` (longest side resized, padded
    bottom/right); all outputs are mapped back to the original image size. ``tasks`` is the
    default set of tasks ``predict`` runs ("all": panoptic, instance, semantic).
    ``last_timing`` holds the milliseconds of the last ``predict`` call per step.
    """

    def __init__(
        self,
        adapter: Adapter,
        labels: LabelSpace,
        input_size: int,
        thresholds: Thresholds | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        tasks: str | Sequence[str] = "all",
    ) -> None:
        if int(getattr(adapter, "input_size", input_size)) != int(input_size):
            raise EdgesegError(f"adapter runs at {adapter.input_size} but the predictor was given {input_size}")
        self.adapter = adapter
        self.labels = labels
        self.input_size = int(input_size)
        self.thresholds = thresholds or Thresholds()
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.tasks = tasks
        self.last_timing: dict[str, float] = {}

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """RGB uint8 ``H x W x 3`` -> ``(x [1,3,S,S] float32, letterbox)``."""
        return preprocess(image, self.input_size, self.mean, self.std)

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The network alone, through the runtime: named outputs (see :class:`Adapter`)."""
        return self.adapter.infer(x)

    def postprocess(self, outputs: Mapping[str, np.ndarray], letterbox: Letterbox,
                    tasks: str | Sequence[str] | None = None,
                    thresholds: Thresholds | Mapping[str, float | None] | None = None) -> Result:
        """Network outputs -> :class:`Result` in the original image frame. ``tasks`` / ``thresholds``
        default to the predictor's; a mapping of thresholds overrides only the keys it sets."""
        t = self.thresholds.merged(thresholds)
        return postprocess(outputs["class_logits"], outputs["mask_logits"], letterbox, self.labels,
                           tasks=self.tasks if tasks is None else tasks,
                           object_mask_threshold=t.object_mask_threshold, overlap_threshold=t.overlap_threshold,
                           mask_threshold=t.mask_threshold, score_threshold=t.instance_score_threshold)

    def predict(self, source: Source, tasks: str | Sequence[str] | None = None) -> Result | Iterator[Result]:
        """One image (RGB uint8 array or file) -> its :class:`Result`. A list, a directory or a
        video -> a lazy iterator of Results, one per image / frame, in order."""
        if not is_single_image(source):
            return (self._predict_one(image, tasks) for _, image in iter_images(source))
        return self._predict_one(source, tasks)

    def _predict_one(self, image: np.ndarray | str | Path, tasks: str | Sequence[str] | None) -> Result:
        image = read_image(image) if isinstance(image, (str, Path)) else as_rgb_uint8(image)
        t0 = time.perf_counter()
        x, letterbox = self.preprocess(image)
        t1 = time.perf_counter()
        outputs = self.infer(x)
        t2 = time.perf_counter()
        result = self.postprocess(outputs, letterbox, tasks)
        t3 = time.perf_counter()
        self.last_timing = {"preprocess": 1e3 * (t1 - t0), "infer": 1e3 * (t2 - t1), "postprocess": 1e3 * (t3 - t2),
                            "total": 1e3 * (t3 - t0)}
        return result

    __call__ = predict

    def __repr__(self) -> str:
        return f"Predictor({self.adapter!r}, {self.labels.num_classes} classes, input {self.input_size})"
