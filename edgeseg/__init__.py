"""edgeseg: universal image segmentation on edge devices.

The base install (numpy + OpenCV) gives inference/post-processing/metrics; training needs
the ``train`` extra (torch, timm). Heavy modules are imported lazily.
"""
from __future__ import annotations

__version__ = "0.1.0"
