"""``edgeseg.export``: a trained student or Mask2Former teacher -> ONNX / OpenVINO IR / TFLite,
checked against torch.

One function per format lives in ``to_onnx.py``, ``to_openvino.py`` and ``to_tflite.py``; this
module builds the network at the fixed export size, writes the artifact and ``edgeseg.json`` into
a temporary folder, runs the parity check, and only then renames the folder into place. A
failed export (converter error or parity past tolerance) leaves nothing behind.
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
from edgeseg.export.metadata import ModelMetadata, write_metadata
from edgeseg.formats import EXPORT_FORMATS, get_format, model_bytes


logger = logging.getLogger(__name__)



class ExportError(EdgesegError):
    """An export failed: converter error, or the artifact disagrees with torch past tolerance."""


class ExportCheckError(ExportError, CheckFailedError):
    """The converter ran, but the artifact disagrees with torch past the parity tolerance."""


@dataclass
class ExportResult:
    path: Path  # the model file inside the output folder
    metadata: ModelMetadata
    parity: dict | None


def _metadata(ckpt: dict, weights: Path, fmt: str, precision: str, size: int) -> ModelMetadata:
    """The artifact's metadata, all of it from the checkpoint: label space, thresholds and the
    normalisation the backbone was trained with."""
    from edgeseg.checkpoint import file_sha256
    from edgeseg.inference.predictor import Thresholds
    from edgeseg.inference.preprocess import normalisation_of
    from edgeseg.inference.result import LabelSpace

    cfg = ckpt["model_config"]
    mean, std = normalisation_of(cfg)
    labels = LabelSpace(**ckpt["label_space"])
    thresholds = dataclasses.asdict(Thresholds(**ckpt.get("thresholds", {})))
    return ModelMetadata(
        format=fmt, precision=precision, model_file=get_format(fmt).model_file, input_size=size,
        num_queries=int(cfg["num_queries"]), class_names=list(labels.class_names),
        isthing=list(labels.isthing), category_ids=list(labels.category_ids or range(1, len(labels.class_names) + 1)),
        mean=list(mean), std=list(std), thresholds=thresholds,
        source_checkpoint=weights.name, source_sha256=file_sha256(weights, 64),
        model_name=str(cfg.get("name", "pem")),
    )


def torch_reference(ckpt: dict, weights: Path, imgsz: int, model=None):
    """The checkpoint in torch FP32 as a :class:`Predictor` at ``imgsz``: what parity and INT8
    checks compare an artifact against."""
    from edgeseg.backends import predictor_for_checkpoint
    from edgeseg.backends.torch_backend import TorchAdapter
    from edgeseg.modeling.build import model_from_checkpoint

    model = model if model is not None else model_from_checkpoint(ckpt, str(weights), image_size=imgsz)
    return predictor_for_checkpoint(TorchAdapter(model, imgsz, source=str(weights)), ckpt)


def _parity_data(ckpt: dict, data: str | os.PathLike | None):
    from edgeseg.data.coco_panoptic import CocoPanoptic

    train_cfg = ckpt.get("train_config") or {}
    root = data or train_cfg.get("data")
    split = train_cfg.get("val_split", "val")
    if not root or not Path(root).exists():
        raise ExportError(f"parity check needs a COCO-panoptic data set with a '{split}' split: pass --data DIR "
                          f"(the checkpoint's data path {root!r} does not exist here), or --no-check to skip it")
    return CocoPanoptic(root, split)


def check_fp32_artifact(model: str | os.PathLike, weights: Path, format: str, imgsz: int) -> Path:
    """``model`` if it is the FP32 ``format`` export of ``weights`` at ``imgsz`` (per its
    ``edgeseg.json``); otherwise an ExportError that says what differs."""
    from edgeseg.checkpoint import file_sha256
    from edgeseg.export.metadata import read_metadata

    model = Path(model)
    meta = read_metadata(model)
    want = (format, "fp32", int(imgsz), file_sha256(weights, 64))
    got = (meta.format, meta.precision, int(meta.input_size), meta.source_sha256)
    if got != want:
        raise ExportError(f"{model} cannot be reused: it is {got[:3]} from checkpoint {got[3][:12]}, "
                          f"needed {want[:3]} from {weights} ({want[3][:12]})")
    return model


def export(
    weights: str | os.PathLike,
    format: str = "onnx",
    precision: str = "fp32",
    imgsz: int | None = None,
    out: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    check: bool = True,
    parity_images: int = 8,
    overwrite: bool = False,
    fp32_model: str | os.PathLike | None = None,
) -> ExportResult:
    """Export an edgeseg ``.pt`` checkpoint; returns the artifact path, metadata and parity report.

    ``imgsz``: the fixed input size; default the size stored with the model (what the ``.pt``
    serves at, so both give the same Result). ``fp32_model``: an FP32 artifact of the same
    checkpoint, format and size, reused for an FP16 export instead of converting again (checked
    with :func:`check_fp32_artifact`; every format's FP16 is derived from its FP32 file).

    ``out`` is a folder (default ``<weights stem>_<format>_<precision>_<imgsz>`` beside the
    weights, or under ``runs/export/`` for a shipped model) that will hold the model file(s), ``edgeseg.json`` and ``parity.json``.
    """
    import torch

    from edgeseg.backends import load_artifact
    from edgeseg.assets import default_output, resolve_weights
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.export.parity import check_parity
    from edgeseg.modeling.build import model_from_checkpoint
    from edgeseg.modeling.pem import ExportWrapper

    fmt = get_format(format)
    if fmt.exporter is None:
        raise ExportError(f"unknown export format {format!r}; choose one of {EXPORT_FORMATS}")
    if precision == "int8":
        raise ExportError("INT8 is a quantization with calibration data: use edgeseg.quantize (edgeseg quantize)")
    fmt.check_precision(precision)
    weights = resolve_weights(weights)  # a file, or a shipped model's name
    ckpt = load_checkpoint(weights)
    imgsz = int(imgsz or ckpt["model_config"]["image_size"])
    if imgsz % 32 or imgsz < 64:
        raise ExportError(f"--imgsz must be a multiple of 32 and >= 64, got {imgsz}")
    out = Path(out) if out else default_output(weights, f"{format}_{precision}_{imgsz}")
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    dataset = _parity_data(ckpt, data) if check else None

    model = model_from_checkpoint(ckpt, str(weights), image_size=imgsz)
    module = ExportWrapper(model).eval()
    example = torch.zeros(1, 3, imgsz, imgsz)
    meta = _metadata(ckpt, weights, format, precision, imgsz)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the final folder is an ordinary one
    try:
        model_path = tmp / meta.model_file
        reuse = check_fp32_artifact(fp32_model, weights, format, imgsz) if fp32_model and precision != "fp32" else None
        started = time.perf_counter()
        meta.extra = fmt.exporter_function()(module, example, model_path, precision, meta, fp32_model=reuse)
        fmt.finalize(model_path, meta)
        write_metadata(tmp, meta)
        logger.info("%s %s export: %s (%.1f MB) in %.1f s", format, precision, model_path.name,
                    model_bytes(model_path) / 1e6, time.perf_counter() - started)

        report = None
        if dataset is not None:
            reference = torch_reference(ckpt, weights, imgsz, model)
            parity = check_parity(reference, load_artifact(model_path), dataset, precision, parity_images)
            report = parity.to_dict()
            (tmp / "parity.json").write_text(json.dumps(report, indent=2))
            logger.info("%s", parity.summary())
            if not parity.passed:
                raise ExportCheckError(f"{format} {precision} export of {weights} failed the parity check: "
                                       f"{parity.summary()}", report)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out / meta.model_file, meta, report)


__all__ = ["ExportCheckError", "ExportError", "ExportResult", "check_fp32_artifact", "export", "torch_reference"]
