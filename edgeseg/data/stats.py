"""Data set statistics for any COCO-panoptic directory.

Why: to see at a glance how hard a data set is (object sizes, crowding, touching instances,
occlusion, VOID) and to check that the synthetic set stays as hard as intended. Only the
PNG id maps and JSON are read (no image decoding), so it runs fast on real COCO too.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Optional, Union

import numpy as np

from edgeseg.data.coco_panoptic import CocoPanoptic

SMALL_COCO = 32 * 32
TINY = 16 * 16


def _adjacent_pairs(pan: np.ndarray, allowed: set[int]) -> set[tuple[int, int]]:
    """Unordered id pairs (a < b) that are 4-adjacent somewhere, restricted to ``allowed`` ids."""
    pairs: set[tuple[int, int]] = set()
    for a, b in ((pan[:, :-1], pan[:, 1:]), (pan[:-1, :], pan[1:, :])):
        diff = a != b
        if not diff.any():
            continue
        pa, pb = a[diff].astype(np.int64), b[diff].astype(np.int64)
        lo, hi = np.minimum(pa, pb), np.maximum(pa, pb)
        for key in np.unique(lo * (1 << 24) + hi).tolist():
            x, y = key >> 24, key & ((1 << 24) - 1)
            if x in allowed and y in allowed:
                pairs.add((x, y))
    return pairs


def dataset_stats(root: Optional[Union[str, os.PathLike]], split: str = "val", **paths: Any) -> dict:
    """Compute size/difficulty statistics of a COCO-panoptic split (``paths`` as in ``CocoPanoptic``)."""
    ds = CocoPanoptic(root, split, **paths)
    cat_thing = {c.id: c.isthing for c in ds.categories}
    sizes: Counter = Counter()
    per_image, areas, touching, same_touching = [], [], [], []
    occ_known = occ_true = crowd = 0
    void_px = total_px = 0
    for i in range(len(ds)):
        pan, segs = ds.load_panoptic(i)
        sizes[pan.shape] += 1
        void_px += int((pan == 0).sum())
        total_px += pan.size
        inst = {s["id"]: s for s in segs if cat_thing[s["category_id"]] and not s.get("iscrowd", 0)}
        crowd += sum(1 for s in segs if s.get("iscrowd", 0))
        per_image.append(len(inst))
        ids, counts = np.unique(pan, return_counts=True)
        area_of = dict(zip(ids.tolist(), counts.tolist()))
        areas.extend(area_of.get(sid, 0) for sid in inst)
        for s in inst.values():
            if "occluded" in s:
                occ_known += 1
                occ_true += bool(s["occluded"])
        pairs = _adjacent_pairs(pan, set(inst))
        touching.append(len(pairs))
        same_touching.append(sum(1 for a, b in pairs if inst[a]["category_id"] == inst[b]["category_id"]))
    n = len(ds)
    areas_arr = np.asarray(areas, np.int64)
    things = sum(1 for c in ds.categories if c.isthing)
    return {
        "json": str(ds.json_path),
        "images": n,
        "image_sizes": {f"{w}x{h}": c for (h, w), c in sorted(sizes.items(), key=lambda kv: -kv[1])[:5]},
        "categories": len(ds.categories),
        "things": things,
        "stuff": len(ds.categories) - things,
        "instances": int(areas_arr.size),
        "instances_per_image": {
            "mean": float(np.mean(per_image)) if n else 0.0,
            "min": int(min(per_image)) if n else 0,
            "max": int(max(per_image)) if n else 0,
        },
        "small_share_32": float((areas_arr < SMALL_COCO).mean()) if areas_arr.size else 0.0,
        "small_share_16": float((areas_arr < TINY).mean()) if areas_arr.size else 0.0,
        "touching_pairs_per_image": float(np.mean(touching)) if n else 0.0,
        "same_class_touching_pairs_per_image": float(np.mean(same_touching)) if n else 0.0,
        "occluded_share": (occ_true / occ_known) if occ_known else None,
        "void_pixel_share": void_px / total_px if total_px else 0.0,
        "crowd_segments": crowd,
    }


def format_stats(stats: dict) -> str:
    """Human-readable multi-line summary of ``dataset_stats`` output."""
    ipi = stats["instances_per_image"]
    occ = stats["occluded_share"]
    sizes = ", ".join(f"{k} ({v})" for k, v in stats["image_sizes"].items())
    lines = [
        f"data set: {stats['json']}",
        f"images: {stats['images']}   sizes: {sizes}",
        f"categories: {stats['categories']} ({stats['things']} things, {stats['stuff']} stuff)",
        f"thing instances: {stats['instances']}   per image mean {ipi['mean']:.2f}, min {ipi['min']}, max {ipi['max']}",
        f"small instances: {100 * stats['small_share_32']:.1f}% < 32^2 px, {100 * stats['small_share_16']:.1f}% < 16^2 px",
        f"touching instance pairs per image: {stats['touching_pairs_per_image']:.2f} "
        f"(same class: {stats['same_class_touching_pairs_per_image']:.2f})",
        f"occluded instances (<90% visible): {'n/a' if occ is None else f'{100 * occ:.1f}%'}",
        f"VOID pixels: {100 * stats['void_pixel_share']:.2f}%",
        f"crowd segments: {stats['crowd_segments']}",
    ]
    return "\n".join(lines)
