"""Input check shared by every adapter: a clear error instead of a runtime's cryptic one."""
from __future__ import annotations

import numpy as np

from edgeseg.errors import EdgesegError


def check_input(x: np.ndarray, size: int) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != (1, 3, size, size):
        got = f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
        raise EdgesegError(f"forward expects float32 [1, 3, {size}, {size}] (preprocessed), got {got}")
