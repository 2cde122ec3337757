"""Image -> network input: letterbox resize, ImageNet normalisation, NCHW float32.

Shared by every runtime (torch, ONNX Runtime, OpenVINO, LiteRT), so it is numpy + OpenCV only.
The longest image side is resized to ``S`` (aspect kept) and the image is padded at the
bottom/right to ``S x S``. Padding is the channel mean, i.e. exactly 0 after normalisation,
which is what Mask2Former's zero-padded batches see during training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from edgeseg.errors import EdgesegError, ImageError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Letterbox",
    "check_rgb_image",
    "normalisation_of",
    "preprocess",
    "preprocess_batch",
]

IMAGENET_MEAN: tuple[float, float, float] = (123.675, 116.28, 103.53)
IMAGENET_STD: tuple[float, float, float] = (58.395, 57.12, 57.375)

_INTERPOLATIONS = ("auto", "linear", "area")


def normalisation_of(model_config: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(mean, std)`` a stored model config asks for; configs written before the normalisation
    was a config field (and teachers) were trained on ImageNet statistics."""
    return (tuple(float(v) for v in model_config.get("pixel_mean", IMAGENET_MEAN)),
            tuple(float(v) for v in model_config.get("pixel_std", IMAGENET_STD)))


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterboxed image.

    ``orig_hw`` is the input image size, ``resized_hw`` the size after resizing the longest side
    to ``input_size`` (the valid, un-padded top-left region of the ``S x S`` network input) and
    ``scale`` the nominal factor ``S / max(orig_hw)``. Coordinate mapping uses the exact per-axis
    factors ``resized / orig`` (rounding makes them differ from ``scale`` by < 1 px).
    Coordinates are continuous pixel coordinates (x, y) with the image's top-left corner at 0.
    """

    scale: float
    input_size: int
    resized_hw: tuple[int, int]
    orig_hw: tuple[int, int]

    @classmethod
    def for_image(cls, height: int, width: int, size: int) -> "Letterbox":
        """Geometry for an ``height x width`` image letterboxed into ``size x size``."""
        if int(size) < 1:
            raise EdgesegError(f"input size must be a positive int, got {size!r}")
        if int(height) < 1 or int(width) < 1:
            raise ImageError(f"image must be non-empty, got height={height}, width={width}")
        size, height, width = int(size), int(height), int(width)
        scale = size / max(height, width)
        rh = min(size, max(1, int(round(height * scale))))
        rw = min(size, max(1, int(round(width * scale))))
        return cls(scale=scale, input_size=size, resized_hw=(rh, rw), orig_hw=(height, width))

    @property
    def pad_hw(self) -> tuple[int, int]:
        """Rows padded at the bottom and columns padded at the right."""
        return self.input_size - self.resized_hw[0], self.input_size - self.resized_hw[1]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Exact (x, y) factors from original to network-input coordinates."""
        return self.resized_hw[1] / self.orig_hw[1], self.resized_hw[0] / self.orig_hw[0]

    def to_input(self, points: np.ndarray | Sequence) -> np.ndarray:
        """Map ``[..., 2]`` (x, y) points from original-image to network-input coordinates."""
        pts = _as_points(points)
        return pts * np.asarray(self.scale_xy, dtype=np.float64)

    def to_original(self, points: np.ndarray | Sequence) -> np.ndarray:
        """Map ``[..., 2]`` (x, y) points from network-input to original-image coordinates."""
        pts = _as_points(points)
        return pts / np.asarray(self.scale_xy, dtype=np.float64)

    def crop_valid(self, array: np.ndarray) -> np.ndarray:
        """Crop the un-padded region of an array whose last two axes are ``S x S`` (input frame)."""
        if array.ndim < 2 or array.shape[-2:] != (self.input_size, self.input_size):
            raise EdgesegError(
                f"crop_valid expects [..., {self.input_size}, {self.input_size}], got shape {array.shape}"
            )
        return array[..., : self.resized_hw[0], : self.resized_hw[1]]


def _as_points(points: np.ndarray | Sequence) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 1 or pts.shape[-1] != 2:
        raise EdgesegError(f"points must have shape [..., 2] (x, y), got shape {pts.shape}")
    return pts


def check_rgb_image(image: object, name: str = "image") -> np.ndarray:
    """Validate an ``H x W x 3`` uint8 RGB array and return it; raise ImageError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name} must be a numpy array (H x W x 3 uint8 RGB), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(
            f"{name} must have shape H x W x 3 (RGB), got shape {image.shape}; "
            "convert gray/RGBA images to RGB first"
        )
    if image.dtype != np.uint8:
        raise ImageError(f"{name} must have dtype uint8, got dtype {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"{name} is empty, got shape {image.shape}")
    return image


def _check_stats(values: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    if arr.shape != (3,):
        raise EdgesegError(f"{name} must have 3 values (R, G, B), got {len(arr)}")
    if name == "std" and np.any(arr == 0):
        raise EdgesegError(f"std must be non-zero, got {tuple(arr.tolist())}")
    return arr


def preprocess(
    image: np.ndarray,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "auto",
) -> tuple[np.ndarray, Letterbox]:
    """Turn one ``H x W x 3`` uint8 RGB image into a network input ``x [1, 3, S, S]`` float32.

    The longest side is resized to ``size`` keeping aspect, values are normalised with
    ``(v - mean) / std`` (0-255 scale) and the bottom/right padding is 0 (= the mean colour).
    ``interpolation``: ``"auto"`` uses ``cv2.INTER_AREA`` when shrinking (less aliasing) and
    bilinear when enlarging; ``"linear"``/``"area"`` force one. Bilinear is
    ``cv2.INTER_LINEAR_EXACT``, the same bytes on x86 and ARM.
    Returns ``(x, letterbox)``; keep the letterbox to map outputs back to the image.
    """
    check_rgb_image(image)
    if interpolation not in _INTERPOLATIONS:
        raise EdgesegError(f"interpolation must be one of {_INTERPOLATIONS}, got {interpolation!r}")
    mean_a, std_a = _check_stats(mean, "mean"), _check_stats(std, "std")
    lb = Letterbox.for_image(image.shape[0], image.shape[1], size)
    rh, rw = lb.resized_hw

    if (rh, rw) == lb.orig_hw:
        resized = image
    else:
        shrinking = rh < lb.orig_hw[0] or rw < lb.orig_hw[1]
        if interpolation == "area" or (interpolation == "auto" and shrinking):
            flag = cv2.INTER_AREA
        else:
            # bit-exact: OpenCV's INTER_LINEAR rounds its fixed-point uint8 path differently per SIMD
            # back-end. Measured on the built-in val images enlarged to 512, aarch64 (NEON) against
            # x86 (AVX2): 31 % of pixels one level apart, and the shipped student's panoptic output
            # agreed on only 97.7 % of pixels (benchmarks/aarch64.py); INTER_LINEAR_EXACT gives the
            # same bytes on both. INTER_AREA differed on 0.005 % of pixels and stays.
            flag = cv2.INTER_LINEAR_EXACT
        resized = cv2.resize(np.ascontiguousarray(image), (rw, rh), interpolation=flag)

    canvas = np.zeros((lb.input_size, lb.input_size, 3), dtype=np.float32)
    canvas[:rh, :rw] = (resized.astype(np.float32) - mean_a) / std_a
    x = np.ascontiguousarray(canvas.transpose(2, 0, 1)[None])
    return x, lb


def preprocess_batch(
    images: Sequence[np.ndarray],
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    interpolation: str = "auto",
) -> tuple[np.ndarray, list[Letterbox]]:
    """Preprocess several images into ``x [B, 3, S, S]`` float32 plus one Letterbox per image."""
    if len(images) == 0:
        raise ImageError("preprocess_batch needs at least one image, got an empty sequence")
    xs, boxes = [], []
    for i, img in enumerate(images):
        try:
            x, lb = preprocess(img, size, mean, std, interpolation)
        except ImageError as exc:
            raise ImageError(f"images[{i}]: {exc}") from exc
        xs.append(x)
        boxes.append(lb)
    return np.ascontiguousarray(np.concatenate(xs, axis=0)), boxes
