"""Drawing helpers: panoptic overlays and side-by-side comparisons (RGB uint8 in, RGB uint8 out).

Colours are deterministic so the same result always renders the same way, which makes
runtime-vs-runtime comparisons (``side_by_side``) readable.
"""
from __future__ import annotations

import colorsys
from typing import Any, Protocol, Sequence

import cv2
import numpy as np

from edgeseg.errors import EdgesegError, ImageError
from edgeseg.inference.preprocess import check_rgb_image



class PanopticLike(Protocol):
    """What drawing reads of a :class:`~edgeseg.inference.result.Result` (structural, so this
    module does not import the result module, which imports it for ``Result.overlay``)."""

    image_hw: tuple[int, int]
    panoptic: np.ndarray
    segments: list[Any]
    labels: Any

__all__ = ["color_palette", "draw_panoptic", "draw_semantic", "side_by_side"]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GOLDEN = 0.618033988749895


def color_palette(n: int, offset: int = 0) -> np.ndarray:
    """``n`` well-separated RGB colours, ``[n, 3]`` uint8, identical on every call.

    Hues step by the golden ratio; saturation/value cycle so neighbours stay distinct.
    ``offset`` starts further along the same sequence (used for instance colours).
    """
    if int(n) < 0:
        raise EdgesegError(f"color_palette needs n >= 0, got {n}")
    out = np.zeros((int(n), 3), dtype=np.uint8)
    for i in range(int(n)):
        j = i + int(offset)
        hue = (0.11 + j * _GOLDEN) % 1.0
        sat = (0.85, 0.6, 1.0)[j % 3]
        val = (0.95, 0.75, 0.85)[(j // 3) % 3]
        out[i] = np.round(np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255)
    return out


def _blend(image: np.ndarray, colors: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    out = image.copy()
    out[mask] = np.round(image[mask] * (1.0 - alpha) + colors[mask] * alpha).astype(np.uint8)
    return out


def _contrast(color: np.ndarray) -> tuple[int, int, int]:
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luma > 150 else (255, 255, 255)


def _put_label(canvas: np.ndarray, text: str, center: tuple[int, int], scale: float) -> None:
    """Text with a dark box behind it, centred on ``center`` and kept inside the image."""
    thickness = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    h, w = canvas.shape[:2]
    x0 = int(np.clip(center[0] - tw // 2, 0, max(0, w - tw - 2)))
    y0 = int(np.clip(center[1] - th // 2, 0, max(0, h - th - base - 2)))
    cv2.rectangle(canvas, (x0, y0), (x0 + tw + 2, y0 + th + base + 2), (20, 20, 20), thickness=-1)
    cv2.putText(canvas, text, (x0 + 1, y0 + th + 1), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def _interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel deepest inside ``mask`` (max of the distance transform)."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    return int(x), int(y)


def draw_panoptic(
    image: np.ndarray,
    result: PanopticLike,
    alpha: float = 0.5,
    draw_labels: bool = True,
    min_label_area: float = 0.002,
) -> np.ndarray:
    """Blend ``result``'s panoptic segments over ``image`` (``H x W x 3`` uint8 RGB).

    Stuff segments take their class colour, thing segments a per-instance colour; each segment
    gets a contour (white or black for contrast) and, if its area is at least
    ``min_label_area`` of the image, a "label score" tag at its most interior point. Pixels
    outside all segments are unchanged (labels aside). Returns a new RGB uint8 image.
    """
    check_rgb_image(image)
    if image.shape[:2] != tuple(result.image_hw):
        raise ImageError(f"image is {image.shape[:2]} but the result is for an image of {result.image_hw}")
    if not 0.0 <= alpha <= 1.0:
        raise EdgesegError(f"alpha must be in [0, 1], got {alpha}")
    pan = result.panoptic
    class_colors = color_palette(result.labels.num_classes)
    seg_colors = {}
    for s in result.segments:
        seg_colors[s.id] = (
            color_palette(1, offset=result.labels.num_classes + 7 * s.id)[0] if s.is_thing else class_colors[s.class_index]
        )

    color_map = np.zeros_like(image)
    for sid, c in seg_colors.items():
        color_map[pan == sid] = c
    covered = np.isin(pan, list(seg_colors)) if seg_colors else np.zeros(pan.shape, bool)
    out = _blend(image, color_map, covered, alpha)

    h, w = pan.shape
    for s in result.segments:
        m = (pan == s.id).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, _contrast(seg_colors[s.id]), thickness=1)
    if draw_labels:
        scale = max(0.35, min(h, w) / 900.0)
        for s in result.segments:
            m = pan == s.id
            if m.sum() < max(1.0, min_label_area * h * w):
                continue
            _put_label(out, f"{s.label} {s.score:.2f}", _interior_point(m), scale)
    return out


def draw_semantic(image: np.ndarray, semantic: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend an ``H x W`` class-index map (255 = ignore, left unchanged) over an RGB image."""
    check_rgb_image(image)
    if semantic.shape != image.shape[:2]:
        raise ImageError(f"semantic map {semantic.shape} does not match image {image.shape[:2]}")
    colors = color_palette(num_classes)
    valid = (semantic >= 0) & (semantic < num_classes)
    color_map = np.zeros_like(image)
    color_map[valid] = colors[semantic[valid]]
    return _blend(image, color_map, valid, alpha)


def side_by_side(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    height: int | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Concatenate RGB uint8 images horizontally at a common ``height`` with a title bar each.

    ``height`` defaults to the first image's height. Used to compare runtimes' outputs.
    """
    if len(images) == 0:
        raise ImageError("side_by_side needs at least one image, got none")
    if titles is not None and len(titles) != len(images):
        raise EdgesegError(f"got {len(titles)} titles for {len(images)} images")
    for i, img in enumerate(images):
        check_rgb_image(img, name=f"images[{i}]")
    height = int(height or images[0].shape[0])
    bar = 0
    scale = max(0.4, height / 700.0)
    if titles is not None:
        (_, th), base = cv2.getTextSize("Ag", _FONT, scale, 1)
        bar = th + base + 8
    tiles = []
    for i, img in enumerate(images):
        w = max(1, int(round(img.shape[1] * height / img.shape[0])))
        tile = np.full((height + bar, w, 3), 255, dtype=np.uint8)
        tile[bar:] = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR)
        if titles is not None:
            cv2.putText(tile, str(titles[i]), (4, bar - base - 4), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
        if i < len(images) - 1 and gap > 0:
            tiles.append(np.full((height + bar, gap, 3), 255, dtype=np.uint8))
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))
