"""Build (or reuse) the artifact of one (checkpoint, format, precision, input size).

FP32 / FP16 go through :func:`edgeseg.export.export` (with its parity check against torch),
INT8 through :func:`edgeseg.quantize` (with its PQ-drop check) using the model's recipe from
``quantize/`` when there is one. Artifacts are cached under ``work`` and reused when their
``edgeseg.json`` names the same source checkpoint hash, so re-running a benchmark only measures.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import CheckFailedError, EdgesegError
from edgeseg.version import __version__

RUNTIME_OF = {"torch": "torch", "onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}

# A row's status, as Ultralytics' benchmark reports it: measured, converted but refused by its
# accuracy check (parity with torch, INT8 PQ budget, or the runtime failing on the val images),
# or not converted at all. The reason travels with every status but the first.
PASSED = "passed"
CHECK_FAILED = "exported, check failed"
EXPORT_FAILED = "export failed"
STATUSES = (PASSED, CHECK_FAILED, EXPORT_FAILED)


@dataclass
class Artifact:
    weights: Path
    format: str
    precision: str
    imgsz: int
    path: Path | None  # model file to load (the .pt itself for torch)
    status: str  # one of STATUSES
    reason: str = ""
    parity: dict | None = None
    build_seconds: float | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == PASSED


def _cached(folder: Path, weights_sha: str) -> Artifact | None:
    from edgeseg.export.metadata import read_metadata

    meta_file = folder / "edgeseg.json"
    if not meta_file.is_file():
        return None
    try:
        meta = read_metadata(folder / json.loads(meta_file.read_text())["model_file"])
    except (EdgesegError, KeyError, ValueError, OSError):
        return None
    if meta.source_sha256 != weights_sha or meta.edgeseg_version != __version__:
        return None  # another model, or made by another edgeseg (its exporters and recipes may differ)
    parity = None
    for name in ("parity.json", "quantization.json"):
        if (folder / name).is_file():
            doc = json.loads((folder / name).read_text())
            parity = doc.get("parity", doc)
    return Artifact(Path(), meta.format, meta.precision, meta.input_size, folder / meta.model_file, PASSED,
                    parity=parity, cached=True)


def build_artifact(weights: str | Path, fmt: str, precision: str, imgsz: int, work: str | Path,
                   data: str | Path | None = None, parity_images: int = 8, calibration_images: int | None = None,
                   validation_images: int | None = None, fp32_model: Path | None = None) -> Artifact:
    """Export / quantize ``weights`` to ``work/<stem>/<format>_<precision>_<imgsz>`` unless a
    matching artifact is already there. Failures are returned (status :data:`CHECK_FAILED` or
    :data:`EXPORT_FAILED` with the reason), not raised: a benchmark records them as rows. ``fp32_model``: the FP32 artifact of
    the same format and size, reused by INT8 and FP16 instead of converting again."""
    from edgeseg.checkpoint import file_sha256, load_checkpoint

    weights = Path(weights)
    if fmt == "torch":
        if precision != "fp32":
            return Artifact(weights, fmt, precision, imgsz, None, EXPORT_FAILED, "torch rows run in FP32 only")
        return Artifact(weights, fmt, precision, imgsz, weights, PASSED, "the torch reference")
    sha = file_sha256(weights, 64)
    folder = Path(work) / f"{weights.stem}-{sha[:8]}" / f"{fmt}_{precision}_{imgsz}"
    hit = _cached(folder, sha)
    if hit is not None:
        return dataclasses.replace(hit, weights=weights)
    start = time.perf_counter()
    try:
        if precision == "int8":
            from edgeseg.assets import resolve_recipe_file
            from edgeseg.quantization import quantize, resolve_recipe

            name = str(load_checkpoint(weights)["model_config"].get("name", ""))
            recipe = resolve_recipe(fmt, resolve_recipe_file(name, fmt), calibration_images, None)
            if validation_images:
                recipe = dataclasses.replace(recipe, validation_images=int(validation_images))
            result = quantize(weights, fmt, data=data, recipe=recipe, imgsz=imgsz, out=folder, overwrite=True,
                              fp32_model=fp32_model)
            parity = result.report["parity"]
        else:
            from edgeseg.export import export

            result = export(weights, fmt, precision, imgsz, out=folder, data=data, check=True,
                            parity_images=parity_images, overwrite=True,
                            fp32_model=fp32_model)
            parity = result.parity
    except Exception as exc:  # noqa: BLE001 - a converter crash is a benchmark row, like Ultralytics' benchmark
        reason = str(exc) if isinstance(exc, EdgesegError) else f"{type(exc).__name__}: {exc}"
        reason = reason.replace(str(weights), weights.name)  # a recorded row names the model, not this machine's path
        checked = isinstance(exc, CheckFailedError)
        report = exc.report if checked else {}
        return Artifact(weights, fmt, precision, imgsz, None, CHECK_FAILED if checked else EXPORT_FAILED,
                        reason.strip().splitlines()[0][:400], parity=report.get("parity", report) or None,
                        build_seconds=round(time.perf_counter() - start, 1))
    return Artifact(weights, fmt, precision, imgsz, result.path, PASSED, parity=parity,
                    build_seconds=round(time.perf_counter() - start, 1))
