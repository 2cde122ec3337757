"""Teacher labels for unlabelled images: ``train.unlabelled`` / ``edgeseg distill --unlabelled DIR``.

A user has a few labelled images and many unlabelled frames. The KD teacher predicts each frame
once (its panoptic output at its own serving size, thresholds and normalisation, exactly what
``edgeseg.load(teacher).predict`` returns) and the predictions are written as a COCO-panoptic
split in the run directory. That split joins the labelled one (``data/mixed.py``): every
image then has panoptic targets, ground truth where it exists and the teacher's elsewhere, and
the online KD losses (matched-query class and mask KD) apply to both.

Labelling once is what makes this affordable: a teacher forward costs more than a student step,
and each frame is seen many times. The cache is keyed by the teacher file, the image list
(names, sizes, times) and the serving settings, and is rebuilt when any of them changes; it is
written to a temporary folder and renamed, so an interrupted run leaves no partial split.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from edgeseg.assets import resolve_weights
from edgeseg.checkpoint import file_sha256
from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.data.image_io import atomic_write_bytes, read_image, write_png
from edgeseg.errors import ConfigError
from edgeseg.inference.predict_files import expand_inputs
from edgeseg.inference.predictor import Predictor
from edgeseg.inference.result import LabelSpace
from edgeseg.inference.sources import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

SPLIT = "pseudo"
_KEY = "edgeseg_pseudo_labels"


def teacher_predictor(teacher: str | Path, labels: LabelSpace, device: str = "cpu") -> Predictor:
    """The teacher as a :class:`Predictor`: an edgeseg checkpoint (or shipped name) with its stored
    serving size, thresholds and normalisation; a transformers directory mapped to ``labels`` by
    class name, at its config's size with Mask2Former's default thresholds."""
    from edgeseg.backends import load
    from edgeseg.backends.torch_backend import TorchAdapter
    from edgeseg.modeling.build import load_teacher

    path = resolve_weights(teacher)
    if path.is_dir():
        module = load_teacher(path, labels.class_names, 512)
        size = int(module.cfg.image_size)
        return Predictor(TorchAdapter(module, size, device, source=str(path)), labels, size,
                         mean=module.cfg.pixel_mean, std=module.cfg.pixel_std)
    predictor = load(path, device=device)
    if list(predictor.labels.class_names) != list(labels.class_names):
        raise ConfigError(f"teacher {path} was trained on classes {predictor.labels.class_names[:6]}... but the data "
                          f"set has {labels.class_names[:6]}...; label the unlabelled images with a teacher of the "
                          f"data set's classes")
    return predictor


def _teacher_id(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()  # a transformers directory: its files' names, sizes and times
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def unlabelled_images(image_dir: str | Path) -> list[Path]:
    """The images directly inside ``image_dir`` (sorted); a clear error when there are none."""
    folder = Path(image_dir)
    if not folder.is_dir():
        raise ConfigError(f"train.unlabelled: {folder} is not a folder (give a folder of unlabelled images)")
    paths = expand_inputs([folder])
    if not paths:
        raise ConfigError(f"train.unlabelled: {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    return paths


def cache_key(teacher: str | Path, predictor: Predictor, paths: list[Path]) -> dict[str, Any]:
    images = hashlib.sha256()
    for p in paths:
        st = p.stat()
        images.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return {"teacher": _teacher_id(resolve_weights(teacher)), "images": images.hexdigest()[:16], "count": len(paths),
            "input_size": int(predictor.input_size), "thresholds": dataclasses.asdict(predictor.thresholds)}


def open_pseudo_split(image_dir: str | Path, cache_dir: str | Path) -> CocoPanoptic:
    """The teacher-labelled split written by :func:`pseudo_label_split` (images read in place)."""
    cache_dir = Path(cache_dir)
    return CocoPanoptic(None, SPLIT, image_dir=image_dir, json_path=cache_dir / f"panoptic_{SPLIT}.json",
                        png_dir=cache_dir / f"panoptic_{SPLIT}")


def segments_per_image(cache_dir: str | Path) -> float:
    """Mean number of teacher segments per image in a written split (how much the teacher found)."""
    doc = json.loads((Path(cache_dir) / f"panoptic_{SPLIT}.json").read_text())
    return round(sum(len(a["segments_info"]) for a in doc["annotations"]) / max(1, len(doc["annotations"])), 3)


def pseudo_label_split(teacher: str | Path, image_dir: str | Path, labels: LabelSpace, cache_dir: str | Path,
                       device: str = "cpu", progress: bool = True) -> CocoPanoptic:
    """The teacher's panoptic labels for every image in ``image_dir`` as a COCO-panoptic split
    (images read in place; JSON and PNGs under ``cache_dir``), reused when its key still holds."""
    image_dir, cache_dir = Path(image_dir), Path(cache_dir)
    paths = unlabelled_images(image_dir)
    predictor = teacher_predictor(teacher, labels, device)
    key = cache_key(teacher, predictor, paths)
    json_path = cache_dir / f"panoptic_{SPLIT}.json"
    if json_path.is_file():
        try:
            if json.loads(json_path.read_text()).get(_KEY) == key:
                logger.info("teacher labels for %d images reused from %s", len(paths), cache_dir)
                return open_pseudo_split(image_dir, cache_dir)
        except json.JSONDecodeError:
            pass  # a damaged cache is rebuilt
    tmp = cache_dir.with_name(cache_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / f"panoptic_{SPLIT}").mkdir(parents=True)
    images, annotations, segments = [], [], 0
    bar = paths
    if progress:
        from tqdm import tqdm

        bar = tqdm(paths, desc="teacher labels", unit="img", dynamic_ncols=True)
    for index, path in enumerate(bar):
        image = read_image(path)
        result = predictor.predict(image, tasks="panoptic")
        png, ann = result.to_coco_panoptic(index, f"{index:06d}.png")
        write_png(tmp / f"panoptic_{SPLIT}" / ann["file_name"], png)
        images.append({"id": index, "file_name": path.name, "height": image.shape[0], "width": image.shape[1]})
        annotations.append(ann)
        segments += len(ann["segments_info"])
    doc = {"images": images, "annotations": annotations, "categories": labels.to_coco_categories(), _KEY: key}
    atomic_write_bytes(tmp / f"panoptic_{SPLIT}.json", json.dumps(doc).encode())
    shutil.rmtree(cache_dir, ignore_errors=True)
    tmp.rename(cache_dir)
    logger.info("teacher labelled %d images (%d segments, %.1f per image) into %s", len(paths), segments,
                segments / len(paths), cache_dir)
    return open_pseudo_split(image_dir, cache_dir)
