"""What every exported model carries: ``edgeseg.json`` beside it (always) and, where the format
allows, the same keys embedded (ONNX ``metadata_props``, OpenVINO ``rt_info``).

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
