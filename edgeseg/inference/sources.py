"""Lazy image sources for ``Predictor.predict``: one image, a list, a directory or a video file.

Frames are read one at a time (a video is never loaded whole), so ``predict`` over a stream
uses constant memory. Each item is ``(name, RGB uint8 image)``; video frames are named
``<stem>:<frame index>``.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from edgeseg.data.image_io import as_rgb_uint8, read_image
from edgeseg.errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

Source = Union[str, Path, np.ndarray, Sequence[Union[str, Path, np.ndarray]]]


def is_single_image(source: Source) -> bool:
    """True for one in-memory image or one image file (``predict`` then returns one Result)."""
    if isinstance(source, np.ndarray):
        return True
    if isinstance(source, (str, Path)):
        p = Path(source)
        return not p.is_dir() and p.suffix.lower() not in VIDEO_SUFFIXES
    return False


def iter_video(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ImageError(f"{path}: cannot open as a video (missing, corrupt or unsupported codec)")
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{path.stem}:{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
        if index == 0:
            raise ImageError(f"{path}: the video has no readable frames")
    finally:
        cap.release()


def iter_images(source: Source) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, image)`` lazily for every image / frame in ``source``: the file name for an
    image file (``dog.jpg``), ``<stem>:<frame>`` for a video frame, ``array<k>`` for an array."""
    items = [source] if isinstance(source, (str, Path, np.ndarray)) else list(source)
    for k, item in enumerate(items):
        if isinstance(item, np.ndarray):
            yield f"array{k}", as_rgb_uint8(item, f"array {k}")
            continue
        p = Path(item)
        if p.is_dir():
            files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not files:
                raise ImageError(f"{p}: directory holds no images ({', '.join(IMAGE_SUFFIXES)}) or videos")
            for q in files:
                yield from iter_images(q)
        elif p.suffix.lower() in VIDEO_SUFFIXES:
            yield from iter_video(p)
        else:
            yield p.name, read_image(p)
