"""Evaluation metrics: panoptic quality (panopticapi-exact) and semantic mIoU. numpy only."""
from __future__ import annotations

from edgeseg.evaluation.panoptic_quality import (
    OFFSET,
    VOID,
    PQAccumulator,
    format_pq_table,
    id_to_rgb,
    pq_compute,
    read_panoptic_png,
    rgb_to_id,
)
from edgeseg.evaluation.semantic import SemanticAccumulator, panoptic_to_semantic

__all__ = [
    "OFFSET",
    "VOID",
    "PQAccumulator",
    "SemanticAccumulator",
    "format_pq_table",
    "id_to_rgb",
    "panoptic_to_semantic",
    "pq_compute",
    "read_panoptic_png",
    "rgb_to_id",
]
