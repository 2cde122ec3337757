"""edgeseg: universal image segmentation on edge devices.

The base install (numpy + OpenCV) gives inference/post-processing/metrics; training needs
the ``train`` extra (torch, timm). Heavy modules are imported lazily.
"""
from __future__ import annotations

from edgeseg.version import __version__  # noqa: F401  (re-exported)


def __getattr__(name: str):
    """Lazy top-level API: ``edgeseg.load`` and ``edgeseg.quantize`` import their runtime /
    converter only when used (the device install has no torch). Export is
    ``edgeseg.export.export`` (``edgeseg.export`` is the subpackage)."""
    if name == "load":
        from edgeseg.backends import load

        return load
    if name == "quantize":
        from edgeseg.quantization import quantize

        return quantize
    raise AttributeError(f"module 'edgeseg' has no attribute {name!r}")
