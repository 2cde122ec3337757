"""Reader for any COCO-panoptic directory (real COCO 2017 or the built-in synthetic set).

Why: one validated loader for training, evaluation and stats. Everything that can be checked
cheaply (JSON structure, unsafe file names, missing files, unknown categories) is checked at
construction; PNG-vs-JSON consistency is checked when a sample is loaded. Every error is a
``DatasetError`` naming the offending file.
"""
from __future__ import annotations

import json
import ntpath
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from edgeseg.data.image_io import read_id_png, read_image
from edgeseg.errors import DatasetError, ImageError

PathLike = Union[str, "os.PathLike[str]"]
Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple]


@dataclass(frozen=True)
class Category:
    """One COCO category; ``isthing`` separates countable things from amorphous stuff."""

    id: int
    name: str
    isthing: bool
    color: Optional[tuple[int, int, int]] = None


@dataclass
class PanopticSample:
    """An image with its panoptic id map and COCO ``segments_info`` dicts."""

    image: np.ndarray  # HxWx3 uint8 RGB
    panoptic: np.ndarray  # HxW int32 segment ids, 0 = VOID
    segments: list[dict] = field(default_factory=list)
    image_id: Union[int, str] = 0
    file_name: str = ""


def segment_area_bbox(panoptic: np.ndarray, ids: Optional[list[int]] = None) -> dict[int, tuple[int, list[int]]]:
    """Area and COCO bbox ``[x, y, w, h]`` of each nonzero id (or of ``ids``) present in ``panoptic``."""
    out: dict[int, tuple[int, list[int]]] = {}
    uniq, counts = np.unique(panoptic, return_counts=True)
    present = dict(zip(uniq.tolist(), counts.tolist()))
    wanted = [i for i in (ids if ids is not None else present) if i != 0 and i in present]
    for sid in wanted:
        m = panoptic == sid
        rows = np.flatnonzero(m.any(axis=1))
        cols = np.flatnonzero(m.any(axis=0))
        out[int(sid)] = (int(present[sid]), [int(cols[0]), int(rows[0]),
                                              int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)])
    return out


def _safe_join(base: Path, name: Any, source: Path, what: str) -> Path:
    """Join a JSON-provided file name under ``base``, refusing absolute or escaping names."""
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{source}: {what} file_name must be a non-empty string, got {name!r}")
    parts = name.replace("\\", "/").split("/")
    if os.path.isabs(name) or ntpath.isabs(name) or ntpath.splitdrive(name)[0] or name.startswith(("/", "\\")):
        raise DatasetError(f"{source}: {what} file_name {name!r} is an absolute path (must be relative)")
    if ".." in parts:
        raise DatasetError(f"{source}: {what} file_name {name!r} escapes its directory ('..')")
    full = os.path.normpath(os.path.join(os.path.abspath(base), name))
    if os.path.commonpath([full, os.path.abspath(base)]) != os.path.abspath(base):
        raise DatasetError(f"{source}: {what} file_name {name!r} resolves outside {base}")
    return Path(full)


def _resolve(root: Optional[PathLike], split: str, image_dir, json_path, png_dir) -> tuple[Path, Path, Path]:
    """Find json / png dir / image dir, accepting both ``{split}`` and ``{split}2017`` naming."""
    if root is None and None in (image_dir, json_path, png_dir):
        raise DatasetError("CocoPanoptic: give root, or all of image_dir, json_path and png_dir")
    r = Path(root) if root is not None else Path(".")
    if json_path is None:
        cands = [r / "annotations" / f"panoptic_{split}.json", r / "annotations" / f"panoptic_{split}2017.json"]
        json_path = next((c for c in cands if c.is_file()), None)
        if json_path is None:
            raise DatasetError(f"{cands[0]}: annotation JSON not found (also tried {cands[1].name})")
    json_path = Path(json_path)
    if png_dir is None:
        png_dir = json_path.with_suffix("")
    if image_dir is None:
        cands = [r / split, r / f"{split}2017"]
        image_dir = next((c for c in cands if c.is_dir()), cands[0])
    return Path(image_dir), json_path, Path(png_dir)


class CocoPanoptic:
    """COCO-panoptic data set: ``ds[i]`` -> ``PanopticSample`` (transformed if ``transform``).

    ``transform(image, panoptic, rng) -> (image, panoptic)`` receives a generator seeded from
    ``(seed, epoch, index)`` so augmentation is reproducible (exact training resume). After a
    transform, segments whose id no longer occurs are dropped and area/bbox are recomputed.
    """

    def __init__(self, root: Optional[PathLike], split: str = "train", transform: Optional[Transform] = None, *,
                 image_dir: Optional[PathLike] = None, json_path: Optional[PathLike] = None,
                 png_dir: Optional[PathLike] = None, seed: int = 0) -> None:
        self.image_dir, self.json_path, self.png_dir = _resolve(root, split, image_dir, json_path, png_dir)
        self.split = split
        self.transform = transform
        self.seed = int(seed)
        self._epoch = 0
        doc = self._load_json()
        self.categories = self._parse_categories(doc["categories"])
        self.category_ids = [c.id for c in self.categories]
        self.class_names = [c.name for c in self.categories]
        self.isthing = [c.isthing for c in self.categories]
        self.cat_id_to_index = {c.id: i for i, c in enumerate(self.categories)}
        self._entries = self._parse_entries(doc["images"], doc["annotations"])

    # ------------------------------------------------------------------ construction checks
    def _load_json(self) -> dict:
        jp = self.json_path
        if not jp.is_file():
            raise DatasetError(f"{jp}: annotation JSON not found")
        try:
            with open(jp, "rb") as fh:
                doc = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{jp}: malformed JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise DatasetError(f"{jp}: top level must be a JSON object, got {type(doc).__name__}")
        for key in ("images", "annotations", "categories"):
            if not isinstance(doc.get(key), list):
                raise DatasetError(f"{jp}: missing or non-list key {key!r}")
        return doc

    def _parse_categories(self, raw: list) -> list[Category]:
        cats: dict[int, Category] = {}
        for c in raw:
            if not isinstance(c, dict) or not all(k in c for k in ("id", "name", "isthing")):
                raise DatasetError(f"{self.json_path}: category entry needs id, name, isthing: {c!r}")
            cid = int(c["id"])
            if cid in cats:
                raise DatasetError(f"{self.json_path}: duplicate category id {cid}")
            color = c.get("color")
            cats[cid] = Category(cid, str(c["name"]), bool(c["isthing"]),
                                 tuple(int(v) for v in color) if color is not None else None)
        if not cats:
            raise DatasetError(f"{self.json_path}: no categories")
        return [cats[k] for k in sorted(cats)]

    def _parse_entries(self, images: list, annotations: list) -> list[dict]:
        jp = self.json_path
        by_id: dict[Any, dict] = {}
        for im in images:
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise DatasetError(f"{jp}: image entry needs id and file_name: {im!r}")
            if im["id"] in by_id:
                raise DatasetError(f"{jp}: duplicate image id {im['id']!r}")
            by_id[im["id"]] = im
        entries = []
        seen: set = set()
        for ann in annotations:
            if not isinstance(ann, dict) or not all(k in ann for k in ("image_id", "file_name", "segments_info")):
                raise DatasetError(f"{jp}: annotation needs image_id, file_name, segments_info: {str(ann)[:200]}")
            iid = ann["image_id"]
            if iid not in by_id:
                raise DatasetError(f"{jp}: annotation for image_id {iid!r} has no entry in 'images'")
            if iid in seen:
                raise DatasetError(f"{jp}: more than one annotation for image_id {iid!r}")
            seen.add(iid)
            img_path = _safe_join(self.image_dir, by_id[iid]["file_name"], jp, "image")
            png_path = _safe_join(self.png_dir, ann["file_name"], jp, "annotation")
            if not img_path.is_file():
                raise DatasetError(f"{img_path}: image listed in {jp.name} (image_id {iid!r}) not found on disk")
            if not png_path.is_file():
                raise DatasetError(f"{png_path}: panoptic PNG listed in {jp.name} (image_id {iid!r}) not found on disk")
            seg_ids = set()
            for s in ann["segments_info"]:
                if not isinstance(s, dict) or "id" not in s or "category_id" not in s:
                    raise DatasetError(f"{jp}: segment of image_id {iid!r} needs id and category_id: {s!r}")
                if s["category_id"] not in self.cat_id_to_index:
                    raise DatasetError(
                        f"{jp}: image_id {iid!r} segment {s['id']} has unknown category_id {s['category_id']!r}")
                if s["id"] in seg_ids or s["id"] == 0:
                    raise DatasetError(f"{jp}: image_id {iid!r} has duplicate or zero segment id {s['id']}")
                seg_ids.add(s["id"])
            entries.append({"image_id": iid, "image_path": img_path, "png_path": png_path,
                            "file_name": by_id[iid]["file_name"], "segments": ann["segments_info"]})
        return entries

    # ------------------------------------------------------------------ access
    @property
    def epoch(self) -> int:
        """Epoch mixed into the augmentation seed; set it at the start of each epoch."""
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        if int(value) < 0:
            raise ValueError(f"epoch must be >= 0, got {value}")
        self._epoch = int(value)

    def set_epoch(self, epoch: int) -> None:
        """Same as ``ds.epoch = epoch`` (DistributedSampler-style)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, i: int) -> dict:
        n = len(self._entries)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        return self._entries[i % n]

    def load_panoptic(self, i: int) -> tuple[np.ndarray, list[dict]]:
        """Only the id map and segments of sample ``i`` (no image decode; for stats/eval)."""
        e = self._entry(i)
        try:
            pan = read_id_png(e["png_path"])
        except ImageError as exc:
            raise DatasetError(str(exc)) from exc
        self._check_ids(pan, e)
        return pan, [dict(s) for s in e["segments"]]

    def _check_ids(self, pan: np.ndarray, e: dict) -> None:
        present = set(np.unique(pan).tolist()) - {0}
        listed = {s["id"] for s in e["segments"]}
        missing = sorted(listed - present)
        extra = sorted(present - listed)
        if missing:
            raise DatasetError(f"{e['png_path']}: segment ids {missing[:10]} from segments_info are absent from the PNG")
        if extra:
            raise DatasetError(f"{e['png_path']}: PNG contains ids {extra[:10]} not listed in segments_info")

    def load_raw(self, i: int) -> PanopticSample:
        """Sample ``i`` exactly as stored (validated, no transform)."""
        e = self._entry(i)
        image = read_image(e["image_path"])
        pan, segments = self.load_panoptic(i)
        if pan.shape != image.shape[:2]:
            raise DatasetError(
                f"{e['png_path']}: PNG size {pan.shape[1]}x{pan.shape[0]} != image size "
                f"{image.shape[1]}x{image.shape[0]} of {e['image_path']}")
        return PanopticSample(image, pan, segments, e["image_id"], e["file_name"])

    def rng_for(self, i: int) -> np.random.Generator:
        """The augmentation generator for index ``i`` at the current (seed, epoch)."""
        return np.random.default_rng([self.seed, self._epoch, i % max(len(self), 1)])

    def __getitem__(self, i: int) -> PanopticSample:
        sample = self.load_raw(i)
        if self.transform is None:
            return sample
        image, pan = self.transform(sample.image, sample.panoptic, self.rng_for(i))
        stats = segment_area_bbox(pan, [s["id"] for s in sample.segments])
        segments = []
        for s in sample.segments:
            if s["id"] in stats:
                segments.append({**s, "area": stats[s["id"]][0], "bbox": stats[s["id"]][1]})
        return PanopticSample(image, pan, segments, sample.image_id, sample.file_name)

    # ------------------------------------------------------------------ training targets
    def targets(self, sample: PanopticSample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mask-classification targets: masks [M,H,W] bool, labels [M] int64, ignore [H,W] bool.

        Non-crowd segments only (Mask2Former rule); segments with no pixels are skipped.
        ``ignore`` = VOID pixels, crowd pixels, and pixels whose id is not in ``segments``.
        """
        pan = sample.panoptic
        masks, labels = [], []
        known = np.zeros(pan.shape, bool)
        crowd = np.zeros(pan.shape, bool)
        for s in sample.segments:
            m = pan == s["id"]
            known |= m
            if s.get("iscrowd", 0):
                crowd |= m
                continue
            if m.any():
                masks.append(m)
                labels.append(self.cat_id_to_index[s["category_id"]])
        ignore = ~known | crowd
        h, w = pan.shape
        mask_arr = np.stack(masks) if masks else np.zeros((0, h, w), bool)
        return mask_arr, np.asarray(labels, np.int64), ignore

    def semantic_target(self, sample: PanopticSample, ignore_index: int = 255) -> np.ndarray:
        """HxW class-index map; VOID (and unknown ids) = ``ignore_index``; crowd keeps its class."""
        k = len(self.categories)
        if 0 <= ignore_index < k:
            raise ValueError(f"ignore_index {ignore_index} collides with a class index (0..{k - 1})")
        dtype = np.uint8 if k <= 255 and 0 <= ignore_index <= 255 else np.int32
        out = np.full(sample.panoptic.shape, ignore_index, dtype)
        for s in sample.segments:
            out[sample.panoptic == s["id"]] = self.cat_id_to_index[s["category_id"]]
        return out
