"""The one format table: every model format edgeseg loads, exports, quantizes or benchmarks.

``load`` picks the adapter by suffix from it, ``export`` its exporter, the CLI its choices,
``bench`` its runtimes, device profiles and INT8 recipes check their format / precision /
engine against it. Adding a runtime means one row here plus its adapter and exporter modules.

| name | suffix | runtime | extra | precisions | INT8 engines (default first) |
|---|---|---|---|---|---|
| torch | .pt | torch | train | fp32 | - |
| onnx | .onnx | onnxruntime | onnx | fp32 fp16 int8 | onnxruntime, nncf |
| openvino | .xml | openvino | openvino | fp32 fp16 int8 | nncf |
| tflite | .tflite | litert | tflite | fp32 fp16 int8 | litert-torch, ai-edge-quantizer |
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Format:
    """One row of the table. ``adapter`` / ``exporter`` are ``module:attribute`` paths, imported
    only when used (a device install has one runtime and no converter)."""

    name: str
    suffixes: tuple[str, ...]  # the first is what exports write
    runtime: str
    extra: str  # the pip extra that installs the runtime: pip install 'edgeseg[<extra>]'
    adapter: str
    exporter: str | None  # None: not an export target (torch is the source)
    precisions: tuple[str, ...]
    int8_engines: tuple[str, ...] = ()  # the measured best first (docs/int8.md)
    # ``module:function(model_path, meta)`` run on a written model file once its metadata is final
    # (after export or quantization), for formats whose writers cannot embed it themselves; ONNX and
    # OpenVINO write it into the model in memory before saving
    finalizer: str | None = None

    @property
    def suffix(self) -> str:
        return self.suffixes[0]

    @property
    def model_file(self) -> str:
        """The file name an export writes inside its folder."""
        return f"model{self.suffix}"

    @property
    def default_int8_engine(self) -> str | None:
        return self.int8_engines[0] if self.int8_engines else None

    def adapter_class(self) -> Any:
        return _resolve(self.adapter)

    def exporter_function(self) -> Any:
        if self.exporter is None:
            raise EdgesegError(f"{self.name} is not an export format; export to one of {EXPORT_FORMATS}")
        return _resolve(self.exporter)

    def finalize(self, model_path: Path, meta: Any) -> None:
        """Embed the finished metadata into ``model_path`` where the format needs a second pass."""
        if self.finalizer:
            _resolve(self.finalizer)(model_path, meta)

    def check_precision(self, precision: str) -> str:
        if precision not in self.precisions:
            raise EdgesegError(f"{self.name} supports precisions {self.precisions}, got {precision!r}")
        return precision


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("torch", (".pt", ".pth"), "torch", "train", "edgeseg.backends.torch_backend:TorchAdapter", None, ("fp32",)),
    Format("onnx", (".onnx",), "onnxruntime", "onnx", "edgeseg.backends.onnxruntime_backend:OnnxRuntimeAdapter",
           "edgeseg.export.to_onnx:export_onnx", PRECISIONS, ("onnxruntime", "nncf")),
    Format("openvino", (".xml",), "openvino", "openvino", "edgeseg.backends.openvino_backend:OpenVINOAdapter",
           "edgeseg.export.to_openvino:export_openvino", PRECISIONS, ("nncf",)),
    Format("tflite", (".tflite",), "litert", "tflite", "edgeseg.backends.litert_backend:LiteRTAdapter",
           "edgeseg.export.to_tflite:export_tflite", PRECISIONS, ("litert-torch", "ai-edge-quantizer"),
           finalizer="edgeseg.export.to_tflite:embed_tflite_metadata"),
)}
EXPORT_FORMATS: tuple[str, ...] = tuple(n for n, f in FORMATS.items() if f.exporter)
RUNTIME_OF: dict[str, str] = {n: f.runtime for n, f in FORMATS.items()}


def get_format(name: str) -> Format:
    """The row named ``name``; an unknown name gets the closest valid one suggested."""
    if name in FORMATS:
        return FORMATS[name]
    close = difflib.get_close_matches(str(name), list(FORMATS), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise EdgesegError(f"unknown format {name!r}{hint}; formats: {list(FORMATS)}")


def format_of_path(path: str | Path) -> Format:
    """The row whose suffix ``path`` has."""
    suffix = Path(path).suffix.lower()
    for fmt in FORMATS.values():
        if suffix in fmt.suffixes:
            return fmt
    known = ", ".join(s for f in FORMATS.values() for s in f.suffixes)
    raise EdgesegError(f"{path}: unsupported model suffix {suffix!r}; supported: {known}")


def model_file_in(folder: str | Path) -> Path:
    """The one model file of an export folder (what ``edgeseg export`` writes: the model beside
    its ``edgeseg.json``), so a folder can be loaded like its file."""
    folder = Path(folder)
    known = {s for f in FORMATS.values() for s in f.suffixes}
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in known)
    if len(found) != 1:
        what = ", ".join(p.name for p in found) or "none"
        raise EdgesegError(f"{folder} is a folder: expected exactly one model file in it "
                           f"({', '.join(sorted(known))}), found {what}")
    return found[0]


def check_combo(fmt: str, precision: str) -> tuple[str, str]:
    """A (format, precision) pair that the table allows, or a clear error."""
    get_format(fmt).check_precision(precision)
    return fmt, precision


def model_bytes(path: str | Path) -> int:
    """Size of a model on disk: the file, plus the weights file beside an OpenVINO ``.xml``."""
    path = Path(path)
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").exists():
        size += path.with_suffix(".bin").stat().st_size
    return size


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)
