"""How alike two panoptic outputs are: one pair of id maps, or two COCO-panoptic prediction sets.

Used by the export parity check (torch against an artifact) and to compare one device's output
with another's (an aarch64 device against the x86 workstation, ``benchmarks/aarch64.py``).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgeseg.errors import DatasetError
from edgeseg.evaluation.panoptic_quality import _annotations, _load_json, _safe_join, read_panoptic_png


def panoptic_agreement(pan_a: np.ndarray, cats_a: dict[int, int], pan_b: np.ndarray, cats_b: dict[int, int]) -> float:
    """Share of pixels labelled alike, in percent: each segment of ``a`` corresponds to the ``b``
    segment it overlaps most; a pixel agrees when its ``b`` segment is that one and the classes
    match (segment ids are arbitrary per run, so they cannot be compared directly). VOID (0)
    agrees with VOID."""
    if pan_a.shape != pan_b.shape:
        raise ValueError(f"panoptic maps differ in shape: {pan_a.shape} vs {pan_b.shape}")
    a, b = pan_a.ravel().astype(np.int64), pan_b.ravel().astype(np.int64)
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    best: dict[int, tuple[int, int]] = {}
    for (sa, sb), c in zip(pairs.T.tolist(), counts.tolist()):
        if sa not in best or c > best[sa][1]:
            best[sa] = (sb, c)
    agree = 0
    for sa, (sb, c) in best.items():
        if (sa == 0 and sb == 0) or (sa and sb and cats_a.get(sa) == cats_b.get(sb)):
            agree += c
    return 100.0 * agree / max(a.size, 1)


def compare_prediction_sets(a_json: str | os.PathLike, b_json: str | os.PathLike) -> dict:
    """Compare two COCO-panoptic prediction sets of the same images (``panoptic.json`` with its
    PNG folder beside it, as ``edgeseg predict`` and ``runtimes/predict.py --coco`` write them).

    Images are matched by ``image_id``; an image in ``a`` without a prediction in ``b`` is an
    error. Returns per-image pixel agreement and segment counts, and their summary: mean and
    minimum agreement, images with equal segment counts, total segments of each set."""
    a_data, a_name = _load_json(a_json, "prediction")
    b_data, b_name = _load_json(b_json, "prediction")
    a_dir, b_dir = Path(a_json).with_suffix(""), Path(b_json).with_suffix("")
    b_by_id = {ann["image_id"]: ann for ann in _annotations(b_data, b_name)}
    per_image = []
    for ann in _annotations(a_data, a_name):
        other = b_by_id.get(ann["image_id"])
        if other is None:
            raise DatasetError(f"{b_name}: no prediction for the image with id {ann['image_id']!r} (present in {a_name})")
        pa = read_panoptic_png(_safe_join(a_dir, ann["file_name"], a_name))
        pb = read_panoptic_png(_safe_join(b_dir, other["file_name"], b_name))
        if pa.shape != pb.shape:
            raise DatasetError(f"image {ann['image_id']!r}: {a_name} is {pa.shape}, {b_name} is {pb.shape}")
        cats_a = {s["id"]: s["category_id"] for s in ann["segments_info"]}
        cats_b = {s["id"]: s["category_id"] for s in other["segments_info"]}
        per_image.append({"image_id": ann["image_id"], "agreement_pct": round(panoptic_agreement(pa, cats_a, pb, cats_b), 4),
                          "segments_a": len(cats_a), "segments_b": len(cats_b)})
    if not per_image:
        raise DatasetError(f"{a_name}: no annotations to compare")
    agreement = np.array([r["agreement_pct"] for r in per_image])
    return {
        "images": len(per_image),
        "mean_agreement_pct": round(float(agreement.mean()), 4),
        "min_agreement_pct": round(float(agreement.min()), 4),
        "equal_segment_counts": sum(r["segments_a"] == r["segments_b"] for r in per_image),
        "segments_a": sum(r["segments_a"] for r in per_image),
        "segments_b": sum(r["segments_b"] for r in per_image),
        "per_image": per_image,
    }
