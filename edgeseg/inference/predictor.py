"""One predictor for every runtime: numpy preprocess -> adapter.forward -> numpy postprocess."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeseg.data.image_io import as_rgb_uint8, read_image
from edgeseg.inference.postprocess import postprocess
from edgeseg.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess
from edgeseg.inference.result import LabelSpace, Result
from edgeseg.inference.sources import Source, is_single_image, iter_images


class Adapter(Protocol):
    """What a runtime adapter provides: the raw network on a preprocessed batch of one."""

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x [1,3,S,S]`` float32 -> ``class_logits [1,N,K+1]``, ``mask_logits [1,N,S/4,S/4]``."""
        ...


@dataclass
class Thresholds:
    """Mask2Former's inference thresholds (COCO panoptic defaults)."""

    object_mask_threshold: float = 0.8
    overlap_threshold: float = 0.8
    mask_threshold: float = 0.5


class Predictor:
    """``predict(image) -> Result`` for an RGB uint8 image (HxWx3) or an image path.

    The network input is the image letterboxed to ``input_size`` (longest side resized, padded
    bottom/right); all outputs are mapped back to the original image size.
    """

    def __init__(
        self,
        adapter: Adapter,
        labels: LabelSpace,
        input_size: int,
        thresholds: Thresholds | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.adapter = adapter
        self.labels = labels
        self.input_size = input_size
        self.thresholds = thresholds or Thresholds()
        self.mean, self.std = mean, std

    def predict(self, source: Source, tasks: str = "all") -> Result | Iterator[Result]:
        """One image (RGB uint8 array or file) -> its :class:`Result`. A list, a directory or a
        video -> a lazy iterator of Results, one per image / frame, in order."""
        if not is_single_image(source):
            return (self._predict_one(image, tasks) for _, image in iter_images(source))
        return self._predict_one(source, tasks)

    def _predict_one(self, image: np.ndarray | str | Path, tasks: str) -> Result:
        if isinstance(image, (str, Path)):
            image = read_image(image)
        else:
            image = as_rgb_uint8(image)
        x, letterbox = preprocess(image, self.input_size, self.mean, self.std)
        class_logits, mask_logits = self.adapter.forward(x)
        t = self.thresholds
        return postprocess(
            class_logits, mask_logits, letterbox, self.labels, tasks=tasks,
            object_mask_threshold=t.object_mask_threshold, overlap_threshold=t.overlap_threshold,
            mask_threshold=t.mask_threshold,
        )

    __call__ = predict
