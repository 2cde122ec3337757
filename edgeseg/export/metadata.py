"""What every exported model carries: ``edgeseg.json`` beside it (always) and the same keys
embedded in the model file, where each ecosystem's tools look for them:

- ONNX ``metadata_props``: ``edgeseg.<key>``, plus the plain keys Ultralytics writes (``task``,
  ``imgsz``, ``names``, ``stride``, ...: :func:`ultralytics_style_props`);
- OpenVINO IR ``rt_info``: ``edgeseg/<key>``, plus ``model_info/<key>`` in OpenVINO model_api's
  schema (:func:`model_api_info`: labels, mean / scale values, resize type, thresholds);
- TFLite: a flatbuffer metadata entry named ``edgeseg`` holding this JSON (``to_tflite``).

``edgeseg.load(path)`` needs nothing else than the model file and this JSON: class names and
``isthing`` for post-processing, S / mean / std / padding rule for preprocessing, thresholds,
precision and provenance (source checkpoint hash, edgeseg version).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.formats import EXPORT_FORMATS, PRECISIONS
from edgeseg.version import __version__

METADATA_FILE = "edgeseg.json"
PADDING_RULE = "letterbox: resize the longest side to S (aspect kept), pad bottom/right with the mean (0 after normalisation)"
OUTPUT_NAMES = ("class_logits", "mask_logits")


@dataclass
class ModelMetadata:
    """Everything a runtime needs besides the network; serialised as ``edgeseg.json``."""

    format: str
    precision: str
    model_file: str  # relative to the JSON's folder
    input_size: int
    num_queries: int
    class_names: list[str]
    isthing: list[bool]
    category_ids: list[int]
    mean: list[float]
    std: list[float]
    thresholds: dict[str, float]
    source_checkpoint: str
    source_sha256: str
    model_name: str
    padding: str = PADDING_RULE
    input_name: str = "images"
    output_names: list[str] = field(default_factory=lambda: list(OUTPUT_NAMES))
    # contract output -> the runtime's tensor name in the model file (converters may rename
    # outputs: LiteRT's come out as e.g. "StatefulPartitionedCall:0"); the exporter records it
    output_tensors: dict[str, str] = field(default_factory=lambda: {n: n for n in OUTPUT_NAMES})
    edgeseg_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)  # exporter details (opset, converter, ...)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def flat_strings(self) -> dict[str, str]:
        """``edgeseg.<key>`` -> string, for formats whose metadata is a string map."""
        return {f"edgeseg.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in dataclasses.asdict(self).items()}


# model_api's ``model_type``: the MaskFormer contract (per-query class logits + mask logits).
# model_api has no stock wrapper for it (its segmentation wrappers are semantic and box-based
# instance); a wrapper class with this ``__model__`` name is what ``Model.create_model`` would pick.
MODEL_API_TYPE = "edgeseg_maskformer"


def model_api_info(meta: ModelMetadata) -> dict[str, str]:
    """The IR's ``rt_info["model_info"]`` in OpenVINO model_api's encoding (lists space-separated,
    booleans ``True`` / ``False``), read by its ``ImageModel`` parameters: its preprocessing
    (resize, mean / scale, channel order) reproduces edgeseg's. ``labels`` cannot hold spaces in
    that encoding: they become ``_`` (the full names are in ``edgeseg/class_names``).
    ``reverse_input_channels`` is True because model_api feeds OpenCV's BGR frames and the network
    takes RGB. ``fit_to_window`` keeps the aspect and pads bottom / right like edgeseg's letterbox,
    but model_api pads with 0 where edgeseg pads with the mean: images whose sides match the
    input's aspect see the same tensor."""
    return {
        "model_type": MODEL_API_TYPE,
        "task_type": "panoptic_segmentation",
        "labels": " ".join(name.replace(" ", "_") for name in meta.class_names),
        "label_ids": " ".join(str(i) for i in meta.category_ids),
        "isthing": " ".join(str(bool(t)) for t in meta.isthing),
        "mean_values": " ".join(f"{v:g}" for v in meta.mean),
        "scale_values": " ".join(f"{v:g}" for v in meta.std),
        "reverse_input_channels": "True",
        "resize_type": "fit_to_window",
        "pad_value": str(int(round(sum(meta.mean) / len(meta.mean)))),
        "confidence_threshold": f"{meta.thresholds.get('object_mask_threshold', 0.8):g}",
        **{name: f"{value:g}" for name, value in meta.thresholds.items()},
        "num_queries": str(meta.num_queries),
        "input_size": str(meta.input_size),
    }


def ultralytics_style_props(meta: ModelMetadata) -> dict[str, str]:
    """The plain ``metadata_props`` keys an Ultralytics ONNX export carries (``names`` as a Python
    dict literal of index -> name), so tools that read those find the task, size and labels."""
    names = {i: name for i, name in enumerate(meta.class_names)}
    return {"description": f"edgeseg {meta.model_name} ({meta.precision}): panoptic / instance / semantic segmentation",
            "author": "edgeseg", "version": meta.edgeseg_version, "task": "panoptic", "batch": "1",
            "stride": "32", "imgsz": str([meta.input_size, meta.input_size]), "names": str(names)}


def write_metadata(folder: str | Path, meta: ModelMetadata) -> Path:
    from edgeseg.data.image_io import atomic_write_bytes

    path = Path(folder) / METADATA_FILE
    atomic_write_bytes(path, meta.to_json().encode())
    return path


def read_metadata(model_path: str | Path) -> ModelMetadata:
    """The ``edgeseg.json`` beside ``model_path``, validated; errors name the file and the problem."""
    model_path = Path(model_path)
    path = model_path.parent / METADATA_FILE
    if not path.is_file():
        raise EdgesegError(f"{model_path}: no {METADATA_FILE} beside it; export with `edgeseg export`, which writes it")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgesegError(f"{path}: not valid JSON ({exc})") from exc
    known = {f.name for f in dataclasses.fields(ModelMetadata)}
    required = {f.name for f in dataclasses.fields(ModelMetadata)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    if not isinstance(raw, dict) or required - set(raw):
        missing = sorted(required - set(raw)) if isinstance(raw, dict) else sorted(required)
        raise EdgesegError(f"{path}: missing key(s) {missing}")
    meta = ModelMetadata(**{k: v for k, v in raw.items() if k in known})
    if meta.format not in EXPORT_FORMATS or meta.precision not in PRECISIONS:
        raise EdgesegError(f"{path}: unknown format/precision {meta.format!r}/{meta.precision!r}")
    if len(meta.class_names) != len(meta.isthing) or len(meta.class_names) != len(meta.category_ids):
        raise EdgesegError(f"{path}: class_names, isthing and category_ids differ in length")
    return meta
