"""Error types raised for bad user input.

Every message names the offending file / shape / dtype and the problem, so a user can fix it
without reading the code. They subclass ValueError so callers catching ValueError still work.
"""
from __future__ import annotations


class EdgesegError(ValueError):
    """Base class for clear, user-facing edgeseg errors."""


class ImageError(EdgesegError):
    """An input image is missing, unreadable, or has an unsupported layout."""


class DatasetError(EdgesegError):
    """A COCO-panoptic data set is inconsistent (JSON vs PNGs, unsafe paths, unknown ids)."""


class CheckpointError(EdgesegError):
    """A checkpoint is truncated, foreign, unsafe, or does not match the config."""


class ConfigError(EdgesegError):
    """A config file or field is invalid."""


class CheckFailedError(EdgesegError):
    """A model converted, but failed its accuracy check (parity with torch, or the INT8 PQ
    budget); nothing was written. ``report`` holds the measured figures."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = dict(report or {})
