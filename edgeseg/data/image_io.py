"""Image and panoptic-PNG reading/writing with clear errors (numpy + OpenCV only).

Why: real data sets contain grayscale / RGBA / 16-bit / truncated files. We convert the
harmless cases (with a warning naming the file) and refuse the rest with an ``ImageError``
that names the file, instead of letting a bad array crash training much later.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from edgeseg.errors import ImageError

PathLike = Union[str, "os.PathLike[str]"]

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"


class ImageConversionWarning(UserWarning):
    """An image was converted (gray -> RGB, alpha dropped, 16 -> 8 bit) while loading."""


def _read_bytes(path: Path) -> np.ndarray:
    """Read a file's raw bytes; missing / empty / truncated files raise ImageError."""
    if not path.exists():
        raise ImageError(f"{path}: image file not found")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read file ({exc})") from exc
    if data.size == 0:
        raise ImageError(f"{path}: file is empty")
    raw = data[:8].tobytes()
    tail = data[-256:].tobytes()
    if raw.startswith(_PNG_SIG) and b"IEND" not in tail:
        raise ImageError(f"{path}: truncated PNG (no IEND chunk at end of file)")
    if raw.startswith(_JPEG_SOI) and b"\xff\xd9" not in tail:
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker FFD9)")
    return data


def _decode(path: Path) -> np.ndarray:
    """Decode a file unchanged (OpenCV channel order: BGR / BGRA)."""
    data = _read_bytes(path)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f"{path}: cannot decode image (corrupt file or unsupported format)")
    return img


def _to_rgb_uint8(image: np.ndarray, name: str, bgr: bool) -> np.ndarray:
    """Shared conversion rules for decoded files (``bgr=True``) and in-memory RGB arrays."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"{name}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError(f"{name}: empty image with shape {image.shape}")
    if image.dtype == np.uint16:
        warnings.warn(f"{name}: 16-bit image converted to 8-bit (x / 257)", ImageConversionWarning, stacklevel=3)
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageError(
            f"{name}: unsupported dtype {image.dtype} with shape {image.shape} (expected uint8 or uint16)"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        warnings.warn(f"{name}: grayscale image replicated to 3 channels", ImageConversionWarning, stacklevel=3)
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ImageError(f"{name}: unsupported image shape {image.shape} (expected HxW, HxWx3 or HxWx4)")
    if image.shape[2] == 4:
        warnings.warn(f"{name}: alpha channel dropped", ImageConversionWarning, stacklevel=3)
        image = image[:, :, :3]
    if bgr:
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB.

    Grayscale, RGBA and 16-bit files are converted with an ``ImageConversionWarning``;
    missing, empty, truncated, corrupt or otherwise unsupported files raise ``ImageError``.
    """
    p = Path(path)
    return _to_rgb_uint8(_decode(p), str(p), bgr=True)


def as_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Validate/convert an in-memory RGB(A) array to HxWx3 uint8 (same rules as ``read_image``)."""
    return _to_rgb_uint8(image, name, bgr=False)


def read_id_png(path: PathLike) -> np.ndarray:
    """Read a COCO-panoptic PNG and return HxW int32 segment ids (R + 256 G + 256^2 B)."""
    p = Path(path)
    img = _decode(p)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ImageError(
            f"{p}: panoptic PNG must be 8-bit RGB, got shape {img.shape} dtype {img.dtype}"
        )
    return rgb2id(img[:, :, 2::-1])


def rgb2id(png_rgb: np.ndarray) -> np.ndarray:
    """Convert an HxWx3 RGB panoptic PNG array to int32 ids = R + 256 G + 256^2 B."""
    arr = np.asarray(png_rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(f"rgb2id: expected HxWx3 array, got shape {arr.shape}")
    arr = arr.astype(np.int32)
    return arr[:, :, 0] + 256 * arr[:, :, 1] + 65536 * arr[:, :, 2]


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Convert integer segment ids (0 .. 2^24-1) to an HxWx3 uint8 RGB panoptic array."""
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ImageError(f"id2rgb: ids must be integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << 24):
        raise ImageError(f"id2rgb: ids must lie in [0, 2^24), got range [{arr.min()}, {arr.max()}]")
    arr = arr.astype(np.int64)
    out = np.empty(arr.shape + (3,), dtype=np.uint8)
    out[..., 0] = arr & 255
    out[..., 1] = (arr >> 8) & 255
    out[..., 2] = (arr >> 16) & 255
    return out


def write_png(path: PathLike, array: np.ndarray, compression: int = 1) -> Path:
    """Atomically write an HxWx3 RGB (or HxW gray) uint8 array as PNG (temp file + os.replace)."""
    p = Path(path)
    arr = np.asarray(array)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ImageError(f"{p}: write_png needs uint8 HxW or HxWx3, got shape {arr.shape} dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = arr[:, :, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ImageError(f"{p}: PNG encoding failed")
    atomic_write_bytes(p, buf.tobytes())
    return p


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write bytes to ``path`` via a temp file in the same directory and ``os.replace``."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
