"""Data: the built-in synthetic panoptic set, the COCO-panoptic reader, augmentations, stats."""
from __future__ import annotations

from edgeseg.data.coco_panoptic import Category, CocoPanoptic, PanopticSample
from edgeseg.data.image_io import read_image
from edgeseg.data.synth import SynthConfig, generate_synthetic

__all__ = ["Category", "CocoPanoptic", "PanopticSample", "SynthConfig", "generate_synthetic", "read_image"]
