"""``edgeseg.quantize``: a trained student -> an INT8 ONNX / OpenVINO IR / TFLite model whose PQ
is measured against FP32 torch before it is handed over.

Flow: load and check the calibration (train split) and validation (val split) images -> export
the FP32 artifact -> quantize it with the runtime's engine (``openvino_int8.py``,
``onnx_int8.py``, ``tflite_int8.py``; settings from a ``quantize/*.yaml`` recipe) -> run the
INT8 artifact and torch FP32 on the validation images -> refuse the model if PQ dropped more
than the budget. Everything is written in a temporary folder renamed into place at the end, so
a failed or refused quantization leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgeseg.errors import CheckFailedError, EdgesegError
from edgeseg.formats import get_format, model_bytes
from edgeseg.quantization.recipe import QuantRecipe, default_recipe, load_recipe

logger = logging.getLogger(__name__)


class QuantizeError(EdgesegError):
    """INT8 quantization failed or its PQ drop is past the budget."""


class QuantizeCheckError(QuantizeError, CheckFailedError):
    """The INT8 model was built, but its PQ drop is past the recipe's budget."""


@dataclass
class QuantizeResult:
    path: Path  # the INT8 model file inside the output folder
    report: dict  # recipe, engine report, parity/PQ, sizes (also written as quantization.json)



def resolve_recipe(format: str, recipe: str | os.PathLike | QuantRecipe | None, subset: int | None,
                   max_pq_drop: float | None) -> QuantRecipe:
    """The recipe file (or the runtime's default) with command-line overrides applied.

    ``max_pq_drop`` turns on NNCF's accuracy control for OpenVINO and ONNX (ONNX then uses the
    NNCF engine, the one accuracy control works with); for TFLite it only sets the budget."""
    if isinstance(recipe, QuantRecipe):
        r = recipe
    elif recipe:
        r = load_recipe(recipe)
    else:
        r = default_recipe(format)
    if r.format != format:
        raise QuantizeError(f"recipe is for format {r.format!r} but --format is {format!r}")
    changes: dict = {}
    if subset is not None:
        changes["subset"] = int(subset)
    if max_pq_drop is not None:
        changes["max_pq_drop"] = float(max_pq_drop)
        if format in ("openvino", "onnx"):
            changes["accuracy_control"] = True
            if format == "onnx" and r.engine != "nncf":
                logger.info("accuracy control: the ONNX model is quantized with NNCF (onnxruntime's quantizer has none)")
                changes["engine"] = "nncf"
    r = dataclasses.replace(r, **changes)
    return r.validate()


def quantize(
    weights: str | os.PathLike,
    format: str = "openvino",
    data: str | os.PathLike | None = None,
    subset: int | None = None,
    max_pq_drop: float | None = None,
    recipe: str | os.PathLike | QuantRecipe | None = None,
    imgsz: int | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    fp32_model: str | os.PathLike | None = None,
) -> QuantizeResult:
    """Quantize an edgeseg ``.pt`` checkpoint to INT8 for ``format`` (openvino, onnx, tflite).

    ``data``: COCO-panoptic root with train (calibration) and val (PQ check) splits; default the
    checkpoint's training data. ``subset``: calibration images (default: the recipe's, 300).
    ``max_pq_drop``: PQ budget in points, with accuracy control where the engine has it; without
    it the recipe's budget (1.0) is still enforced by the final check. ``fp32_model``: an FP32
    export of the same checkpoint, format and size to start from instead of exporting again.
    """
    from edgeseg.backends import load_artifact, predictor_for_checkpoint
    from edgeseg.backends.base import CallableAdapter
    from edgeseg.assets import default_output, resolve_weights
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.export import _metadata, export, torch_reference
    from edgeseg.export.metadata import write_metadata
    from edgeseg.export.parity import check_parity
    from edgeseg.modeling.build import model_from_checkpoint
    from edgeseg.quantization.calibration import load_quant_data
    from edgeseg.quantization.validation import panoptic_quality

    r = resolve_recipe(format, recipe, subset, max_pq_drop)
    weights = resolve_weights(weights)  # a file, or a shipped model's name
    ckpt = load_checkpoint(weights)
    imgsz = int(imgsz or ckpt["model_config"]["image_size"])  # default: the size stored with the model
    out = Path(out) if out else default_output(weights, f"{format}_int8_{imgsz}")
    if out.exists() and not overwrite:
        raise QuantizeError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    root = data or (ckpt.get("train_config") or {}).get("data")
    if not root:
        raise QuantizeError("no calibration data: pass --data DIR (a COCO-panoptic root with train and val splits)")
    meta = _metadata(ckpt, weights, format, "int8", imgsz)
    qdata = load_quant_data(root, imgsz, meta.mean, meta.std, r.subset, r.validation_images)

    def validate(forward, samples=None) -> dict:
        """PQ of a network NNCF holds (``forward(x) -> {tensor name: array}``) through the one pipeline."""
        predictor = predictor_for_checkpoint(CallableAdapter(forward, imgsz, meta.output_tensors), ckpt)
        return panoptic_quality(predictor, qdata.validation if samples is None else samples, qdata.categories)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        start = time.perf_counter()
        if fp32_model:
            from edgeseg.export import ExportResult, check_fp32_artifact
            from edgeseg.export.metadata import read_metadata

            src = check_fp32_artifact(fp32_model, weights, format, imgsz)
            shutil.copytree(src.parent, work / "fp32")
            fp32 = ExportResult(work / "fp32" / src.name, read_metadata(src), None)
        else:
            fp32 = export(weights, format, "fp32", imgsz, out=work / "fp32", check=False)
        final = work / "int8"
        final.mkdir()
        os.chmod(final, 0o777 & ~_umask())
        model_path = final / meta.model_file
        if format == "openvino":
            from edgeseg.export.to_openvino import embed_openvino_metadata
            from edgeseg.quantization.openvino_int8 import quantize_openvino, save_openvino

            model, engine_report = quantize_openvino(fp32.path, qdata, r, validate)
            embed_openvino_metadata(model, meta)
            save_openvino(model, model_path)
        elif format == "onnx":
            from edgeseg.quantization.onnx_int8 import quantize_onnx

            engine_report = quantize_onnx(fp32.path, model_path, qdata, r, meta, validate)
        elif r.engine == "litert-torch":
            from edgeseg.modeling.pem import ExportWrapper
            from edgeseg.quantization.tflite_pt2e import quantize_tflite_pt2e

            module = ExportWrapper(model_from_checkpoint(ckpt, str(weights), image_size=imgsz))
            engine_report = quantize_tflite_pt2e(module, model_path, qdata, r)
        else:
            from edgeseg.quantization.tflite_int8 import quantize_tflite

            engine_report = quantize_tflite(fp32.path, model_path, qdata, r)
        if format == "tflite":
            from edgeseg.export.to_tflite import output_tensors

            meta.output_tensors = output_tensors(model_path, meta)
        meta.extra = {"quantization": {"engine": r.engine, "recipe": r.to_dict(),
                                       **{k: v for k, v in engine_report.items() if k != "accuracy_control_log"}}}
        get_format(format).finalize(model_path, meta)
        write_metadata(final, meta)

        # The INT8 check: the artifact through its runtime adapter against FP32 torch, on the
        # validation images, with the recipe's PQ budget.
        reference = torch_reference(ckpt, weights, imgsz)
        artifact = load_artifact(model_path)
        val_ds = CocoPanoptic(qdata.root, "val")
        parity = check_parity(reference, artifact, val_ds, "int8", len(qdata.validation), max_pq_drop=r.max_pq_drop)
        logger.info("%s", parity.summary())
        report = {
            "weights": str(weights), "format": format, "input_size": imgsz, "recipe": r.to_dict(),
            "engine": engine_report, "parity": parity.to_dict(),
            "pq_fp32_torch": parity.pq_reference, "pq_int8": parity.pq_artifact,
            "pq_drop": round(parity.pq_reference - parity.pq_artifact, 3),
            "size_fp32_bytes": model_bytes(fp32.path), "size_int8_bytes": model_bytes(model_path),
            "seconds": round(time.perf_counter() - start, 1),
        }
        report["size_ratio"] = round(report["size_int8_bytes"] / report["size_fp32_bytes"], 3)
        (final / "quantization.json").write_text(json.dumps(report, indent=2))
        if not parity.passed:
            hint = ("pass --max-pq-drop to let NNCF keep the most sensitive layers in float"
                    if not r.accuracy_control and format != "tflite" else
                    "widen the recipe's ignored scope or use a larger calibration --subset")
            raise QuantizeCheckError(f"INT8 {format} model of {weights} dropped PQ by {report['pq_drop']:.2f} points "
                                     f"(budget {r.max_pq_drop}) on {parity.images} val images; nothing was written. "
                                     f"To meet the budget: {hint}", report)
        if out.exists():
            shutil.rmtree(out)
        os.replace(final, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return QuantizeResult(out / meta.model_file, report)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["QuantizeCheckError", "QuantizeError", "QuantizeResult", "quantize", "resolve_recipe"]
