"""``edgeseg predict``: per image, an overlay PNG, a panoptic PNG and one COCO-panoptic JSON."""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from edgeseg.data.image_io import atomic_write_bytes, read_image, write_png
from edgeseg.inference.predictor import Predictor
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


def predict_files(predictor: Predictor, inputs: Sequence[str | Path], out_dir: str | Path) -> Iterator[Path]:
    """Predict each image and write ``<stem>_overlay.png``, ``panoptic/<stem>.png`` and, at the
    end, ``panoptic.json`` (COCO-panoptic ``annotations`` + ``categories``). Yields written paths.

    Every file is written atomically; a bad image raises ImageError naming it before anything
    for that image is written.
    """
    out = Path(out_dir)
    (out / "panoptic").mkdir(parents=True, exist_ok=True)
    labels = predictor.labels
    annotations, images = [], []
    for path in expand_inputs(inputs):
        # COCO convention: 000000000139.jpg is image 139, so predictions score against COCO-style
        # ground truth with `edgeseg pq`; other names keep their stem as id.
        image_id = int(path.stem) if path.stem.isdigit() else path.stem
        image = read_image(path)
        result = predictor.predict(image)
        png, ann = result.to_coco_panoptic(image_id, f"{path.stem}.png")
        annotations.append(ann)
        images.append({"id": image_id, "file_name": path.name, "height": image.shape[0], "width": image.shape[1]})
        yield write_png(out / f"{path.stem}_overlay.png", result.overlay(image))
        yield write_png(out / "panoptic" / f"{path.stem}.png", png)
    doc = {"images": images, "annotations": annotations, "categories": labels.to_coco_categories()}
    atomic_write_bytes(out / "panoptic.json", json.dumps(doc, indent=1).encode())
    yield out / "panoptic.json"
