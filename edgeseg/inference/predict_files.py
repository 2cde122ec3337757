"""``edgeseg predict``: per image, an overlay PNG, a panoptic PNG and one COCO-panoptic JSON."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgeseg.data.image_io import atomic_write_bytes, read_image, write_png
from edgeseg.inference.predictor import Predictor
from edgeseg.inference.result import LabelSpace, Result
from edgeseg.inference.sources import IMAGE_SUFFIXES


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; directories expanded to their images (sorted)."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES))
        else:
            paths.append(p)
    return paths


class CocoPanopticWriter:
    """Writes results as a COCO-panoptic prediction set: ``panoptic/<stem>.png`` per image (atomic)
    and, on :meth:`close`, ``panoptic.json`` (``images``, ``annotations``, ``categories``), the
    files ``edgeseg pq`` and panopticapi score."""

    def __init__(self, out_dir: str | Path, labels: LabelSpace) -> None:
        self.out = Path(out_dir)
        (self.out / "panoptic").mkdir(parents=True, exist_ok=True)
        self.labels = labels
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add(self, name: str, result: Result) -> Path:
        """Record ``result`` for the image file ``name``; returns the panoptic PNG written."""
        stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
        # COCO convention: 000000000139.jpg is image 139, so predictions score against COCO-style
        # ground truth with `edgeseg pq`; other names keep their stem as id.
        image_id = int(stem) if stem.isdigit() else stem
        png, ann = result.to_coco_panoptic(image_id, f"{stem}.png")
        h, w = result.image_hw
        self.annotations.append(ann)
        self.images.append({"id": image_id, "file_name": Path(name).name, "height": h, "width": w})
        return write_png(self.out / "panoptic" / f"{stem}.png", png)

    def close(self) -> Path:
        """Write ``panoptic.json`` (atomically) and return its path."""
        doc = {"images": self.images, "annotations": self.annotations, "categories": self.labels.to_coco_categories()}
        path = self.out / "panoptic.json"
        atomic_write_bytes(path, json.dumps(doc, indent=1).encode())
        return path


def predict_files(predictor: Predictor, inputs: Sequence[str | Path], out_dir: str | Path) -> Iterator[Path]:
    """Predict each image and write ``<stem>_overlay.png``, ``panoptic/<stem>.png`` and, at the
    end, ``panoptic.json`` (COCO-panoptic ``annotations`` + ``categories``). Yields written paths.

    Every file is written atomically; a bad image raises ImageError naming it before anything
    for that image is written.
    """
    writer = CocoPanopticWriter(out_dir, predictor.labels)
    for path in expand_inputs(inputs):
        image = read_image(path)
        result = predictor.predict(image, tasks=("panoptic",))  # all that is written: instance and semantic
        yield write_png(writer.out / f"{path.stem}_overlay.png", result.overlay(image))
        yield writer.add(path.name, result)
    yield writer.close()
