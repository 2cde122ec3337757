"""Containers for one image's segmentation output and its label space.

All maps are in the ORIGINAL image frame (``H x W``), not the letterboxed network input.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from edgeseg.errors import EdgesegError

__all__ = ["LabelSpace", "Segment", "Result", "id_to_rgb", "rgb_to_id"]

IGNORE_INDEX = 255


@dataclass(frozen=True)
class LabelSpace:
    """The ``K`` classes a model predicts, in contiguous index order ``0..K-1``.

    ``category_ids`` are the data set's ids for each contiguous index (e.g. COCO panoptic
    category ids); they default to ``1..K``. ``isthing`` marks countable classes.
    """

    class_names: list[str]
    isthing: list[bool]
    category_ids: list[int] | None = None

    def __post_init__(self) -> None:
        names = [str(n) for n in self.class_names]
        things = [bool(t) for t in self.isthing]
        if len(names) == 0:
            raise EdgesegError("LabelSpace needs at least one class, got 0 class_names")
        if len(things) != len(names):
            raise EdgesegError(
                f"LabelSpace: isthing has {len(things)} entries but class_names has {len(names)}"
            )
        ids = list(range(1, len(names) + 1)) if self.category_ids is None else [int(c) for c in self.category_ids]
        if len(ids) != len(names):
            raise EdgesegError(
                f"LabelSpace: category_ids has {len(ids)} entries but class_names has {len(names)}"
            )
        if len(set(ids)) != len(ids):
            raise EdgesegError("LabelSpace: category_ids must be unique")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "isthing", things)
        object.__setattr__(self, "category_ids", ids)

    @property
    def num_classes(self) -> int:
        """``K``, the number of real classes (no-object excluded)."""
        return len(self.class_names)

    @classmethod
    def from_coco_categories(cls, categories: Sequence[Mapping[str, Any]]) -> "LabelSpace":
        """Build from COCO-panoptic ``categories`` (dicts with id, name, isthing), in list order."""
        try:
            return cls(
                class_names=[c["name"] for c in categories],
                isthing=[bool(c["isthing"]) for c in categories],
                category_ids=[int(c["id"]) for c in categories],
            )
        except KeyError as exc:
            raise EdgesegError(f"COCO category is missing key {exc}; need id, name, isthing") from exc

    def to_coco_categories(self) -> list[dict[str, Any]]:
        """COCO-panoptic ``categories`` (id, name, isthing), the inverse of :meth:`from_coco_categories`."""
        return [{"id": cid, "name": name, "isthing": int(thing)}
                for cid, name, thing in zip(self.category_ids, self.class_names, self.isthing)]


@dataclass
class Segment:
    """One panoptic segment. ``bbox`` is (x, y, w, h) in original-image pixels."""

    id: int
    class_index: int
    category_id: int
    label: str
    score: float
    is_thing: bool
    area: int
    bbox: tuple[int, int, int, int]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encode an ``H x W`` id map as COCO-panoptic RGB (``id = R + 256 G + 256^2 B``), uint8."""
    ids = np.asarray(ids).astype(np.int64)
    if ids.ndim != 2:
        raise EdgesegError(f"id map must be H x W, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise EdgesegError(f"ids must be in [0, 256^3), got range [{ids.min()}, {ids.max()}]")
    return np.stack([ids % 256, (ids // 256) % 256, ids // 256**2], axis=-1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Decode a COCO-panoptic ``H x W x 3`` RGB PNG array into an ``H x W`` int32 id map."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise EdgesegError(f"panoptic PNG must be H x W x 3 RGB, got shape {rgb.shape}")
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]).astype(np.int32)


def _empty_instances(hw: tuple[int, int]) -> np.ndarray:
    return np.zeros((0, hw[0], hw[1]), dtype=bool)


@dataclass
class Result:
    """Segmentation of one image, in the original ``H x W`` frame.

    - ``panoptic``: ``H x W`` int32 segment ids (0 = no segment), described by ``segments``.
    - ``semantic``: ``H x W`` int32 contiguous class index, ``255`` where nothing was predicted.
    - ``instance_masks [M, H, W]`` bool, ``instance_classes [M]`` int64 (contiguous index),
      ``instance_scores [M]`` float32, sorted by score (descending).
    Tasks not run (see ``tasks``) hold empty values: zeros / [] / 255 / ``M = 0``.
    """

    image_hw: tuple[int, int]
    labels: LabelSpace
    panoptic: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    semantic: np.ndarray | None = None
    instance_masks: np.ndarray | None = None
    instance_classes: np.ndarray | None = None
    instance_scores: np.ndarray | None = None
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_hw)
        self.image_hw = (h, w)
        if self.panoptic.shape != (h, w):
            raise EdgesegError(f"panoptic map must be {h} x {w}, got shape {self.panoptic.shape}")
        if self.semantic is None:
            self.semantic = np.full((h, w), IGNORE_INDEX, dtype=np.int32)
        elif self.semantic.shape != (h, w):
            raise EdgesegError(f"semantic map must be {h} x {w}, got shape {self.semantic.shape}")
        if self.instance_masks is None:
            self.instance_masks = _empty_instances((h, w))
        if self.instance_classes is None:
            self.instance_classes = np.zeros((0,), dtype=np.int64)
        if self.instance_scores is None:
            self.instance_scores = np.zeros((0,), dtype=np.float32)
        m = self.instance_masks.shape[0]
        if (
            self.instance_masks.ndim != 3
            or self.instance_masks.shape[1:] != (h, w)
            or self.instance_classes.shape != (m,)
            or self.instance_scores.shape != (m,)
        ):
            raise EdgesegError(
                f"instances must be masks [M, {h}, {w}], classes [M], scores [M]; got "
                f"{self.instance_masks.shape}, {self.instance_classes.shape}, {self.instance_scores.shape}"
            )

    @classmethod
    def empty(cls, image_hw: tuple[int, int], labels: LabelSpace) -> "Result":
        """A result with nothing detected, e.g. for an image that was skipped."""
        return cls(image_hw=image_hw, labels=labels, panoptic=np.zeros(image_hw, dtype=np.int32))

    def segment(self, segment_id: int) -> Segment:
        """The Segment with ``id == segment_id``."""
        for seg in self.segments:
            if seg.id == segment_id:
                return seg
        raise KeyError(f"no segment with id {segment_id}; ids are {[s.id for s in self.segments]}")

    def segment_dicts(self) -> list[dict]:
        """``[{"id", "category_id"}]`` per segment: what PQ scoring reads of a prediction."""
        return [{"id": int(s.id), "category_id": int(s.category_id)} for s in self.segments]

    def to_coco_panoptic(self, image_id: int | str, file_name: str) -> tuple[np.ndarray, dict]:
        """COCO-panoptic output: (``H x W x 3`` uint8 RGB id PNG, annotation dict).

        The PNG array is RGB: convert with ``cv2.cvtColor(png, cv2.COLOR_RGB2BGR)`` before
        ``cv2.imwrite``. ``segments_info`` carries the category id, area, bbox and a ``score``.
        """
        png = id_to_rgb(self.panoptic)
        info = [
            {
                "id": int(s.id),
                "category_id": int(s.category_id),
                "iscrowd": 0,
                "area": int(s.area),
                "bbox": [int(v) for v in s.bbox],
                "score": float(s.score),
            }
            for s in self.segments
        ]
        return png, {"image_id": image_id, "file_name": file_name, "segments_info": info}

    def overlay(self, image: np.ndarray, alpha: float = 0.5, draw_labels: bool = True) -> np.ndarray:
        """Draw the panoptic segments over ``image`` (``H x W x 3`` uint8 RGB); returns RGB uint8."""
        from edgeseg.inference.visualize import draw_panoptic

        return draw_panoptic(image, self, alpha=alpha, draw_labels=draw_labels)

    def summary(self) -> str:
        """Short human-readable description."""
        h, w = self.image_hw
        things = sum(s.is_thing for s in self.segments)
        top = sorted(self.segments, key=lambda s: -s.score)[:8]
        parts = [
            f"{h}x{w} image: {len(self.segments)} segments ({things} things, "
            f"{len(self.segments) - things} stuff)"
        ]
        if top:
            more = ", ..." if len(self.segments) > len(top) else ""
            parts.append("  " + ", ".join(f"{s.label} {s.score:.2f}" for s in top) + more)
        parts.append(f"  {len(self.instance_scores)} instances")
        sem = np.unique(self.semantic)
        sem = sem[sem != IGNORE_INDEX]
        parts.append(f"  semantic: {len(sem)} classes present")
        return "\n".join(parts)
