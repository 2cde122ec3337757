"""Panoptic Quality (PQ = SQ x RQ) with exactly panopticapi's definition.

Why our own code: panopticapi is not on PyPI and pulls in PIL/multiprocessing; the device
install has numpy + OpenCV only. The rules below mirror ``pq_compute_single_core`` and
``PQStat.pq_average`` so numbers are comparable with published COCO results:

* gt id 0 is VOID, pred id 0 is "unlabeled"; pixels are paired via ``gt * OFFSET + pred``.
* A (gt, pred) pair of the same category (gt not crowd) matches iff IoU > 0.5 (strict), where
  the union leaves out the pred pixels that fall on VOID.
* Unmatched non-crowd gt -> FN. Unmatched pred -> FP, unless more than half of it lies on VOID
  plus crowd gt of its own category.
* Per class: PQ = sum(IoU) / (TP + FP/2 + FN/2), SQ = sum(IoU) / TP, RQ = TP / (TP + FP/2 + FN/2);
  classes with TP + FP + FN == 0 are left out of the means.

Differences, which only show on inconsistent data (never on COCO): segment areas are counted
from the id maps (panopticapi trusts the gt JSON ``area``), gt ids missing from either the map
or ``segments_info`` raise instead of being silently skipped, and all crowd segments of a
category count as crowd (panopticapi keeps the last one; COCO has at most one per category).
Summary values are in percent.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from edgeseg.errors import DatasetError

VOID = 0
OFFSET = 256 * 256 * 256


@dataclass
class ClassStat:
    """Running counts for one category: summed IoU of matches, TP, FP, FN."""

    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: "ClassStat") -> "ClassStat":
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


def _normalize_categories(categories: Iterable[Mapping] | Mapping[int, Mapping]) -> dict[int, dict]:
    """Return ``{id: {"id", "name", "isthing"}}`` from a COCO category list or id-keyed dict."""
    items = list(categories.values()) if isinstance(categories, Mapping) else list(categories)
    if not items:
        raise DatasetError("PQ: the category list is empty; pass the COCO 'categories' of the gt JSON")
    out: dict[int, dict] = {}
    for cat in items:
        if not isinstance(cat, Mapping) or "id" not in cat:
            raise DatasetError(f"PQ: category {cat!r} is not a dict with an 'id'")
        cid = int(cat["id"])
        if cid in out:
            raise DatasetError(f"PQ: category id {cid} is listed twice")
        if "isthing" not in cat:
            raise DatasetError(f"PQ: category id {cid} has no 'isthing' field (1 = thing, 0 = stuff)")
        out[cid] = {"id": cid, "name": str(cat.get("name", cid)), "isthing": int(cat["isthing"]) == 1}
    # Per-class keys are names; disambiguate the (rare) duplicates with the id.
    counts: dict[str, int] = {}
    for info in out.values():
        counts[info["name"]] = counts.get(info["name"], 0) + 1
    for info in out.values():
        info["key"] = info["name"] if counts[info["name"]] == 1 else f"{info['name']}#{info['id']}"
    return out


def _check_id_map(arr: np.ndarray, what: str, where: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DatasetError(f"{where}: {what} id map must be HxW, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DatasetError(f"{where}: {what} id map must have an integer dtype, got {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= OFFSET):
        raise DatasetError(
            f"{where}: {what} segment ids must be in [0, 256**3), got range [{arr.min()}, {arr.max()}]"
        )
    return arr


def _index_segments(segments: Iterable[Mapping], what: str, where: str, crowd: bool) -> dict[int, tuple[int, bool]]:
    """Map segment id -> (category_id, iscrowd) and reject malformed / duplicate entries."""
    out: dict[int, tuple[int, bool]] = {}
    for seg in segments:
        if not isinstance(seg, Mapping) or "id" not in seg or "category_id" not in seg:
            raise DatasetError(f"{where}: {what} segment {seg!r} needs 'id' and 'category_id'")
        sid = int(seg["id"])
        if sid == VOID:
            raise DatasetError(f"{where}: {what} segments_info uses id 0, which is reserved for VOID/unlabeled")
        if sid in out:
            raise DatasetError(f"{where}: {what} segment id {sid} appears twice in segments_info")
        out[sid] = (int(seg["category_id"]), crowd and int(seg.get("iscrowd", 0)) == 1)
    return out


class PQAccumulator:
    """Accumulates PQ statistics image by image; ``merge`` combines per-process accumulators."""

    def __init__(self, categories: list[dict] | dict[int, dict]):
        self.categories = _normalize_categories(categories)
        self.stats: dict[int, ClassStat] = {cid: ClassStat() for cid in self.categories}
        self.num_images = 0
        # per image, per category (in ``self.categories`` order): summed IoU, TP, FP, FN; kept
        # so that ``bootstrap_ci`` can resample images (tiny: 4 numbers per class and image)
        self.per_image: list[np.ndarray] = []

    def update(
        self,
        gt_ids: np.ndarray,
        gt_segments: list[dict],
        pred_ids: np.ndarray,
        pred_segments: list[dict],
        image_id: Any = None,
    ) -> None:
        """Add one image. ``image_id`` only labels error messages."""
        where = "PQ" if image_id is None else f"PQ image {image_id!r}"
        gt = _check_id_map(gt_ids, "gt", where)
        pred = _check_id_map(pred_ids, "pred", where)
        if gt.shape != pred.shape:
            raise DatasetError(f"{where}: gt id map has shape {gt.shape} but pred id map has shape {pred.shape}")
        gt_segs = _index_segments(gt_segments, "gt", where, crowd=True)
        pred_segs = _index_segments(pred_segments, "pred", where, crowd=False)
        for what, segs in (("gt", gt_segs), ("pred", pred_segs)):
            for sid, (cat, _) in segs.items():
                if cat not in self.categories:
                    raise DatasetError(f"{where}: {what} segment id {sid} has unknown category_id {cat}")

        gt_area = self._areas(gt, gt_segs, "gt", where)
        pred_area = self._areas(pred, pred_segs, "pred", where)

        labels, counts = np.unique(gt * OFFSET + pred, return_counts=True)
        inter = {(int(l) // OFFSET, int(l) % OFFSET): int(c) for l, c in zip(labels, counts)}

        stats = {cid: ClassStat() for cid in self.categories}
        gt_matched: set[int] = set()
        pred_matched: set[int] = set()
        for (g, p), n in inter.items():
            if g == VOID or p == VOID:
                continue
            g_cat, g_crowd = gt_segs[g]
            if g_crowd or g_cat != pred_segs[p][0]:
                continue
            union = pred_area[p] + gt_area[g] - n - inter.get((VOID, p), 0)
            iou = n / union
            if iou > 0.5:  # strict: IoU == 0.5 is not a match; > 0.5 makes matches unique
                stats[g_cat].tp += 1
                stats[g_cat].iou += iou
                gt_matched.add(g)
                pred_matched.add(p)

        crowd_by_cat: dict[int, list[int]] = {}
        for g, (cat, is_crowd) in gt_segs.items():
            if is_crowd:
                crowd_by_cat.setdefault(cat, []).append(g)  # crowd: never matched, never a FN
            elif g not in gt_matched:
                stats[cat].fn += 1

        for p, (cat, _) in pred_segs.items():
            if p in pred_matched:
                continue
            ignored = inter.get((VOID, p), 0)
            ignored += sum(inter.get((g, p), 0) for g in crowd_by_cat.get(cat, ()))
            if ignored / pred_area[p] > 0.5:
                continue
            stats[cat].fp += 1

        for cid, s in stats.items():
            self.stats[cid] += s
        self.num_images += 1
        self.per_image.append(np.array([[stats[c].iou, stats[c].tp, stats[c].fp, stats[c].fn] for c in self.categories]))

    @staticmethod
    def _areas(ids: np.ndarray, segs: dict[int, tuple[int, bool]], what: str, where: str) -> dict[int, int]:
        labels, counts = np.unique(ids, return_counts=True)
        areas = {int(l): int(c) for l, c in zip(labels, counts) if l != VOID}
        unknown = sorted(set(areas) - set(segs))
        if unknown:
            raise DatasetError(
                f"{where}: {what} segment id(s) {unknown} are in the id map but not in segments_info"
            )
        missing = sorted(set(segs) - set(areas))
        if missing:
            raise DatasetError(
                f"{where}: {what} segments_info id(s) {missing} do not appear in the id map"
            )
        return areas

    def merge(self, other: "PQAccumulator") -> None:
        """Add another accumulator's counts (same categories), e.g. from a worker process."""
        if not isinstance(other, PQAccumulator):
            raise TypeError(f"PQAccumulator.merge expects a PQAccumulator, got {type(other).__name__}")
        if set(other.categories) != set(self.categories):
            raise DatasetError("PQAccumulator.merge: the two accumulators have different category ids")
        for cid, s in other.stats.items():
            self.stats[cid] += s
        self.num_images += other.num_images
        order = [list(other.categories).index(cid) for cid in self.categories]
        self.per_image += [a[order] for a in other.per_image]

    def bootstrap_ci(self, samples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
        """Percentile bootstrap interval of PQ (all / things / stuff), resampling whole images.

        Tells whether two PQs measured on the same small val split differ by more than the
        split's own sampling noise (e.g. a 1-point gap on 200 images usually does not). Each
        resample recomputes PQ with the same rules as ``summary`` (classes with TP + FP + FN = 0
        in that resample are left out of its mean).
        """
        if not self.per_image:
            raise DatasetError("PQAccumulator.bootstrap_ci: no images were added")
        if not 0 < level < 1 or samples < 1:
            raise ValueError(f"bootstrap_ci: need 0 < level < 1 and samples >= 1, got {level}, {samples}")
        per_image = np.stack(self.per_image)  # (images, classes, 4)
        counts = bootstrap_counts(len(per_image), samples, seed)
        means = resampled_pq(per_image, self.isthing, counts)
        tail = 100 * (1 - level) / 2
        out: dict[str, Any] = {"level": level, "samples": samples, "images": len(per_image)}
        for key, values in means.items():
            ok = ~np.isnan(values)
            lo, hi = np.percentile(values[ok], [tail, 100 - tail]) if ok.any() else (0.0, 0.0)
            out[key] = [round(float(lo), 2), round(float(hi), 2)]
        return out

    @property
    def isthing(self) -> np.ndarray:
        """Per category (in ``categories`` order): is it a thing class."""
        return np.array([bool(info["isthing"]) for info in self.categories.values()])

    def _average(self, isthing: bool | None) -> dict:
        pq = sq = rq = 0.0
        n = 0
        for cid, info in self.categories.items():
            if isthing is not None and info["isthing"] != isthing:
                continue
            s = self.stats[cid]
            if s.tp + s.fp + s.fn == 0:
                continue
            n += 1
            denom = s.tp + 0.5 * s.fp + 0.5 * s.fn
            pq += s.iou / denom
            sq += s.iou / s.tp if s.tp else 0.0
            rq += s.tp / denom
        if n == 0:
            return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
        return {"pq": 100 * pq / n, "sq": 100 * sq / n, "rq": 100 * rq / n, "n": n}

    def summary(self) -> dict:
        """PQ/SQ/RQ in percent for all/things/stuff plus per-class values and counts.

        Classes never seen (TP + FP + FN == 0) are reported with zeros but are not in the means.
        """
        per_class = {}
        for cid, info in self.categories.items():
            s = self.stats[cid]
            denom = s.tp + 0.5 * s.fp + 0.5 * s.fn
            per_class[info["key"]] = {
                "pq": 100 * s.iou / denom if denom else 0.0,
                "sq": 100 * s.iou / s.tp if s.tp else 0.0,
                "rq": 100 * s.tp / denom if denom else 0.0,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
                "isthing": info["isthing"],
            }
        return {
            "all": self._average(None),
            "things": self._average(True),
            "stuff": self._average(False),
            "per_class": per_class,
        }


def bootstrap_counts(images: int, samples: int, seed: int = 0) -> np.ndarray:
    """(samples, images) multiplicities of a whole-image bootstrap: row k says how often resample
    k draws each image. Shared by every arm of a paired comparison, so all see the same draws."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, images, images), minlength=images) for _ in range(samples)])


def resampled_pq(per_image: np.ndarray, isthing: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """PQ (percent) of every bootstrap resample: ``per_image`` (images, classes, 4: IoU, TP, FP, FN)
    weighted by ``counts`` (samples, images). Same rules as ``PQAccumulator.summary``: a class with
    TP + FP + FN = 0 in a resample is left out of that resample's mean (NaN when no class is left)."""
    n, c = per_image.shape[:2]
    sums = (counts @ per_image.reshape(n, c * 4)).reshape(len(counts), c, 4)
    iou, tp, fp, fn = np.moveaxis(sums, -1, 0)
    seen = (tp + fp + fn) > 0
    pq = np.divide(iou, tp + 0.5 * fp + 0.5 * fn, out=np.zeros_like(iou, dtype=float), where=seen)
    out = {}
    for key, group in (("all", np.ones(c, bool)), ("things", isthing), ("stuff", ~isthing)):
        k = (seen & group).sum(axis=1)
        with np.errstate(invalid="ignore"):
            out[key] = np.where(k > 0, 100 * (pq * (seen & group)).sum(axis=1) / np.maximum(k, 1), np.nan)
    return out


def paired_bootstrap(arm_a: list[np.ndarray], arm_b: list[np.ndarray], isthing: np.ndarray,
                     samples: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of PQ(b) - PQ(a) over the *same* val images.

    Each arm is a list of per-image statistics (one ``PQAccumulator.per_image`` stack per seed,
    all on the same images in the same order). Every resample draws one set of images, scores
    every run of both arms on it, and takes the difference of the two arms' seed means; the
    interval is the percentile interval of those differences. Pairing removes the split's own
    image-to-image variance, so a gap smaller than an unpaired interval can still be real.
    """
    runs = [*arm_a, *arm_b]
    if not arm_a or not arm_b:
        raise ValueError("paired_bootstrap: each arm needs at least one run")
    shapes = {r.shape for r in runs}
    if len(shapes) != 1:
        raise DatasetError(f"paired_bootstrap: runs were scored on different images / classes: shapes {sorted(shapes)}")
    counts = bootstrap_counts(runs[0].shape[0], samples, seed)
    full = np.ones((1, runs[0].shape[0]), dtype=counts.dtype)
    tail = 100 * (1 - level) / 2
    out: dict[str, Any] = {"level": level, "samples": samples, "images": runs[0].shape[0],
                           "runs_a": len(arm_a), "runs_b": len(arm_b)}

    def arm_mean(arm: list[np.ndarray], weights: np.ndarray) -> dict[str, np.ndarray]:
        per_run = [resampled_pq(r, isthing, weights) for r in arm]
        return {k: np.mean([p[k] for p in per_run], axis=0) for k in ("all", "things", "stuff")}

    a_boot, b_boot, a_full, b_full = arm_mean(arm_a, counts), arm_mean(arm_b, counts), arm_mean(arm_a, full), arm_mean(arm_b, full)
    for key in ("all", "things", "stuff"):
        diff = b_boot[key] - a_boot[key]
        point = float((b_full[key] - a_full[key])[0])
        ok = ~np.isnan(diff)
        lo, hi = np.percentile(diff[ok], [tail, 100 - tail]) if ok.any() else (float("nan"), float("nan"))
        out[key] = {"diff": round(point, 2), "ci": [round(float(lo), 2), round(float(hi), 2)]}
    return out


# ----------------------------------------------------------------------------- file contract


def rgb_to_id(color: np.ndarray) -> np.ndarray:
    """COCO-panoptic colour -> segment id: ``R + 256 * G + 256**2 * B`` (RGB channel order)."""
    color = np.asarray(color)
    if color.ndim == 3 and color.shape[2] >= 3:
        c = color.astype(np.int64)
        return c[..., 0] + 256 * c[..., 1] + 256 * 256 * c[..., 2]
    return color.astype(np.int64)


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment id map -> HxWx3 uint8 RGB colour image (inverse of :func:`rgb_to_id`)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def read_panoptic_png(path: str | os.PathLike) -> np.ndarray:
    """Read a COCO-panoptic PNG and return its HxW int64 segment-id map."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: panoptic PNG not found")
    data = np.fromfile(str(path), dtype=np.uint8)  # imdecode also handles non-ASCII paths
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DatasetError(f"{path}: cannot decode as an image (corrupt or not a PNG?)")
    if img.ndim == 3:
        if img.shape[2] < 3:
            raise DatasetError(f"{path}: expected an RGB panoptic PNG, got {img.shape[2]} channels")
        img = img[..., 2::-1]  # OpenCV gives BGR(A); keep RGB
    return rgb_to_id(img)


_DRIVE = re.compile(r"^[A-Za-z]:")


def _safe_join(folder: Path, name: Any, where: str) -> Path:
    """Join ``name`` under ``folder``, refusing absolute paths and ``..`` that climb out of it."""
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{where}: file_name must be a non-empty string, got {name!r}")
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or "\x00" in name:
        raise DatasetError(f"{where}: file_name {name!r} must be relative to its folder {folder}")
    depth = 0
    for part in re.split(r"[\\/]+", name):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise DatasetError(f"{where}: file_name {name!r} escapes its folder {folder}")
        elif part not in ("", "."):
            depth += 1
    return folder / name


def _load_json(obj: str | os.PathLike | Mapping, what: str) -> tuple[dict, str]:
    if isinstance(obj, Mapping):
        return dict(obj), f"{what} JSON"
    path = Path(obj)
    if not path.is_file():
        raise DatasetError(f"{path}: {what} JSON not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: {what} JSON is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: {what} JSON must be an object, got {type(data).__name__}")
    return data, str(path)


def _annotations(data: dict, name: str) -> list[dict]:
    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise DatasetError(f"{name}: missing 'annotations' list")
    for ann in anns:
        if not isinstance(ann, Mapping) or not {"image_id", "file_name", "segments_info"} <= set(ann):
            raise DatasetError(f"{name}: annotation {str(ann)[:80]} needs image_id, file_name, segments_info")
    return anns


def pq_compute(
    gt_json: str | os.PathLike | Mapping,
    gt_folder: str | os.PathLike | None,
    pred_json: str | os.PathLike | Mapping,
    pred_folder: str | os.PathLike | None,
) -> dict:
    """PQ over a COCO-panoptic gt/pred pair of JSON files + PNG folders (panopticapi's contract).

    Categories come from the gt JSON; predictions are matched to gt by ``image_id`` (extra
    predictions are ignored, a gt image without one is an error). A folder of ``None`` means
    the JSON path without its extension, as in panopticapi. Returns :meth:`PQAccumulator.summary`.
    """
    gt_data, gt_name = _load_json(gt_json, "gt")
    pred_data, pred_name = _load_json(pred_json, "pred")
    gt_dir = _folder(gt_folder, gt_json, "gt")
    pred_dir = _folder(pred_folder, pred_json, "pred")
    if "categories" not in gt_data:
        raise DatasetError(f"{gt_name}: missing 'categories'")
    acc = PQAccumulator(gt_data["categories"])
    pred_by_image = {ann["image_id"]: ann for ann in _annotations(pred_data, pred_name)}
    for gt_ann in _annotations(gt_data, gt_name):
        image_id = gt_ann["image_id"]
        pred_ann = pred_by_image.get(image_id)
        if pred_ann is None:
            raise DatasetError(f"{pred_name}: no prediction for the image with id: {image_id}")
        gt_ids = read_panoptic_png(_safe_join(gt_dir, gt_ann["file_name"], gt_name))
        pred_ids = read_panoptic_png(_safe_join(pred_dir, pred_ann["file_name"], pred_name))
        acc.update(gt_ids, gt_ann["segments_info"], pred_ids, pred_ann["segments_info"], image_id=image_id)
    return acc.summary()


def _folder(folder: str | os.PathLike | None, json_src: Any, what: str) -> Path:
    if folder is not None:
        path = Path(folder)
    elif isinstance(json_src, (str, os.PathLike)):
        path = Path(json_src).with_suffix("")
    else:
        raise DatasetError(f"pq_compute: {what}_folder is required when {what}_json is a dict")
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} PNG folder not found")
    return path


# ----------------------------------------------------------------------------- printing


def format_pq_table(summary: dict, per_class: bool = True) -> str:
    """Aligned text table of a PQ summary: All/Things/Stuff rows, then one row per class."""
    head = f"{'':10s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'N':>5s}"
    lines = [head, "-" * len(head)]
    for label, key in (("All", "all"), ("Things", "things"), ("Stuff", "stuff")):
        r = summary[key]
        lines.append(f"{label:10s}| {r['pq']:6.1f} {r['sq']:6.1f} {r['rq']:6.1f} {r['n']:5d}")
    classes = summary.get("per_class", {})
    if per_class and classes:
        width = max(10, max(len(name) for name in classes) + 1)
        head = f"{'':{width}s}| {'PQ':>6s} {'SQ':>6s} {'RQ':>6s} {'TP':>6s} {'FP':>6s} {'FN':>6s}  kind"
        lines += ["", head, "-" * len(head)]
        for name, r in classes.items():
            kind = "thing" if r["isthing"] else "stuff"
            lines.append(
                f"{name:{width}s}| {r['pq']:6.1f} {r['sq']:6.1f} {r['rq']:6.1f} "
                f"{r['tp']:6d} {r['fp']:6d} {r['fn']:6d}  {kind}"
            )
    return "\n".join(lines)
