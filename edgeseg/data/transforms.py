"""Joint (image, panoptic) augmentations in numpy/OpenCV.

Why: image and id map must be warped identically (bilinear for the image, nearest for the
ids, never interpolating ids) and reproducibly from a given ``np.random.Generator``.
Transforms only touch arrays; segments whose ids vanish (e.g. cropped away) are dropped by
``CocoPanoptic.__getitem__``, which also recomputes area/bbox.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from edgeseg.errors import ImageError

IMAGENET_MEAN_RGB = (124, 116, 104)


def _check_pair(image: np.ndarray, panoptic: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"transform: image must be HxWx3 uint8, got shape {image.shape} dtype {image.dtype}")
    if panoptic.ndim != 2 or panoptic.shape != image.shape[:2]:
        raise ImageError(f"transform: panoptic shape {panoptic.shape} does not match image shape {image.shape[:2]}")


def resize_pair(image: np.ndarray, panoptic: np.ndarray, new_h: int, new_w: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize image bilinearly and ids by nearest pixel centre (same geometry as cv2 bilinear)."""
    h, w = panoptic.shape
    if (new_h, new_w) == (h, w):
        return image, panoptic
    img = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    rows = np.minimum(((np.arange(new_h) + 0.5) * (h / new_h)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * (w / new_w)).astype(np.int64), w - 1)
    return img, panoptic[rows[:, None], cols[None, :]]


def pad_pair(image: np.ndarray, panoptic: np.ndarray, out_h: int, out_w: int,
             pad_value: tuple[int, int, int] = IMAGENET_MEAN_RGB) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to (out_h, out_w): image with ``pad_value``, ids with 0 (VOID)."""
    h, w = panoptic.shape
    if (h, w) == (out_h, out_w):
        return image, panoptic
    img = np.empty((out_h, out_w, 3), np.uint8)
    img[:] = np.asarray(pad_value, np.uint8)
    img[:h, :w] = image
    pan = np.zeros((out_h, out_w), panoptic.dtype)
    pan[:h, :w] = panoptic
    return img, pan


@dataclass(frozen=True)
class TrainAugment:
    """Scale jitter of the longest side around ``out_size``, random crop, pad, horizontal flip.

    Output is always ``out_size x out_size``. Random draws happen in a fixed order (scale,
    crop y, crop x, flip) so a given generator state always gives the same result.
    """

    out_size: int = 256
    scale_range: tuple[float, float] = (0.5, 1.5)
    hflip: bool = True
    pad_value: tuple[int, int, int] = IMAGENET_MEAN_RGB

    def __post_init__(self) -> None:
        if self.out_size < 1 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"TrainAugment: bad out_size {self.out_size} or scale_range {self.scale_range}")

    def __call__(self, image: np.ndarray, panoptic: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, panoptic)
        rng = rng if rng is not None else np.random.default_rng()
        S = self.out_size
        h, w = panoptic.shape
        scale = S / max(h, w) * float(rng.uniform(*self.scale_range))
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        image, panoptic = resize_pair(image, panoptic, nh, nw)
        y0 = int(rng.integers(0, max(nh - S, 0) + 1))
        x0 = int(rng.integers(0, max(nw - S, 0) + 1))
        flip = bool(rng.random() < 0.5) and self.hflip
        image, panoptic = image[y0:y0 + S, x0:x0 + S], panoptic[y0:y0 + S, x0:x0 + S]
        image, panoptic = pad_pair(image, panoptic, S, S, self.pad_value)
        if flip:
            image, panoptic = image[:, ::-1], panoptic[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(panoptic)


@dataclass(frozen=True)
class EvalResize:
    """Deterministic: resize the longest side to ``out_size`` and pad to a square (bottom/right)."""

    out_size: int = 256
    pad_value: tuple[int, int, int] = IMAGENET_MEAN_RGB

    def __call__(self, image: np.ndarray, panoptic: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, panoptic)
        h, w = panoptic.shape
        scale = self.out_size / max(h, w)
        nh, nw = min(self.out_size, max(1, round(h * scale))), min(self.out_size, max(1, round(w * scale)))
        image, panoptic = resize_pair(image, panoptic, nh, nw)
        return pad_pair(image, panoptic, self.out_size, self.out_size, self.pad_value)
