"""Runtime adapters and ``load(path)``, which picks one by file suffix from the format table.

``.pt``: torch (the reference, needs the ``train`` extra). ``.onnx``: ONNX Runtime. ``.xml``:
OpenVINO. ``.tflite``: LiteRT. Exported models read their ``edgeseg.json`` (class names, S,
mean/std, thresholds, output tensor names); nothing else is needed, and only the one runtime
is imported.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeseg.assets import resolve_weights
from edgeseg.backends.base import Adapter
from edgeseg.errors import EdgesegError
from edgeseg.formats import format_of_path, model_file_in
from edgeseg.inference.predictor import Predictor, Thresholds
from edgeseg.inference.result import LabelSpace

ThresholdOverrides = Thresholds | Mapping[str, float | None] | None


def load(
    path: str | os.PathLike,
    device: str = "cpu",
    input_size: int | None = None,
    threads: int | None = None,
    thresholds: ThresholdOverrides = None,
    providers: Sequence[str] | None = None,
    hint: str = "LATENCY",
    delegate: str | None = None,
) -> Predictor:
    """Load a model file, an export folder (``edgeseg export``'s output) or a shipped model by
    name (e.g. ``pem_lite0_512``) into a :class:`Predictor`, choosing the runtime by suffix.

    ``input_size``: ``.pt`` only (default: the size stored with the model, which is also what
    its exports use); exports have a fixed size. ``device``: torch device for ``.pt``; OpenVINO
    device (CPU, GPU, NPU, AUTO) for ``.xml``. ``providers``: ONNX Runtime execution providers
    (default: TensorRT, CUDA, CPU when present). ``hint``: OpenVINO LATENCY or THROUGHPUT.
    ``delegate``: LiteRT external delegate library. ``thresholds``: overrides of the stored
    inference thresholds; in a mapping, ``None`` keeps the stored value.
    """
    path = resolve_weights(path)  # a file, an export folder, or a shipped model's name
    if path.is_dir():
        path = model_file_in(path)
    fmt = format_of_path(path)
    if not path.is_file():
        raise EdgesegError(f"model file not found: {path}")
    if fmt.name == "torch":
        return _load_checkpoint(path, device, input_size, threads, thresholds)
    predictor = load_artifact(path, device=device, threads=threads, thresholds=thresholds, providers=providers,
                              hint=hint, delegate=delegate)
    if input_size is not None and input_size != predictor.input_size:
        raise EdgesegError(f"{path}: exported at {predictor.input_size} px and an export's input size is fixed; "
                           f"re-export with --imgsz {input_size}")
    return predictor


def _load_checkpoint(path: Path, device: str, input_size: int | None, threads: int | None,
                     thresholds: ThresholdOverrides) -> Predictor:
    try:
        from edgeseg.backends.torch_backend import TorchAdapter
    except ImportError as exc:
        raise EdgesegError(f"{path} is a PyTorch checkpoint and needs torch: pip install 'edgeseg[train]' "
                           f"(or run an exported .onnx / .xml / .tflite with a runtime extra)") from exc
    adapter, ckpt = TorchAdapter.from_checkpoint(path, input_size, device, threads=threads)
    return predictor_for_checkpoint(adapter, ckpt, thresholds)


def predictor_for_checkpoint(adapter: Adapter, ckpt: dict[str, Any], thresholds: ThresholdOverrides = None) -> Predictor:
    """A :class:`Predictor` over ``adapter`` with the label space, thresholds and normalisation
    a checkpoint stores (shared by ``load`` and the torch references of parity and INT8)."""
    from edgeseg.inference.preprocess import normalisation_of

    mean, std = normalisation_of(ckpt["model_config"])
    stored = Thresholds(**ckpt.get("thresholds", {}))
    return Predictor(adapter, LabelSpace(**ckpt["label_space"]), adapter.input_size, stored.merged(thresholds),
                     mean=mean, std=std)


def load_artifact(
    path: str | os.PathLike,
    device: str = "cpu",
    threads: int | None = None,
    thresholds: ThresholdOverrides = None,
    providers: Sequence[str] | None = None,
    hint: str = "LATENCY",
    delegate: str | None = None,
) -> Predictor:
    """A :class:`Predictor` over an exported ``.onnx`` / ``.xml`` / ``.tflite`` and its ``edgeseg.json``."""
    from edgeseg.export.metadata import read_metadata

    path = Path(path)
    fmt = format_of_path(path)
    if fmt.exporter is None:
        raise EdgesegError(f"{path}: not an exported model (load it with edgeseg.load)")
    meta = read_metadata(path)
    fmt.adapter_class().check_artifact(path, meta)
    adapter = fmt.adapter_class()(path, meta.input_size, meta.output_tensors, device=device, threads=threads,
                                  providers=providers, hint=hint, delegate=delegate)
    labels = LabelSpace(meta.class_names, meta.isthing, meta.category_ids)
    stored = Thresholds(**meta.thresholds)
    return Predictor(adapter, labels, meta.input_size, stored.merged(thresholds), mean=meta.mean, std=meta.std)


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What a model file (or shipped model name) is, without running it: format, runtime, input
    size, classes, thresholds, normalisation, provenance. A ``.pt`` needs torch to be read."""
    from edgeseg.export.metadata import read_metadata

    path = resolve_weights(path)
    fmt = format_of_path(path)
    if not path.is_file():
        raise EdgesegError(f"model file not found: {path}")
    info: dict[str, Any] = {"file": str(path), "format": fmt.name, "runtime": fmt.runtime,
                            "install": f"pip install 'edgeseg[{fmt.extra}]'"}
    if fmt.name == "torch":
        from edgeseg.checkpoint import load_checkpoint  # says which extra to install when torch is absent

        ckpt = load_checkpoint(path)
        cfg = ckpt["model_config"]
        labels = ckpt["label_space"]
        info.update(model=cfg.get("name"), precision=ckpt.get("stored_dtype", "float32"), input_size=int(cfg["image_size"]),
                    num_queries=cfg.get("num_queries"), classes=list(labels["class_names"]),
                    things=[n for n, t in zip(labels["class_names"], labels["isthing"]) if t],
                    thresholds=dataclasses.asdict(Thresholds(**ckpt.get("thresholds", {}))),
                    parameters=int(sum(v.numel() for v in ckpt["model"].values() if v.is_floating_point())),
                    trained_steps=ckpt.get("step"))
        return info
    meta = read_metadata(path)
    info.update(model=meta.model_name, precision=meta.precision, input_size=meta.input_size,
                num_queries=meta.num_queries, classes=meta.class_names,
                things=[n for n, t in zip(meta.class_names, meta.isthing) if t], thresholds=meta.thresholds,
                mean=meta.mean, std=meta.std, source=f"{meta.source_checkpoint} (sha256 {meta.source_sha256[:16]})",
                edgeseg_version=meta.edgeseg_version)
    return info


__all__ = ["Adapter", "describe", "load", "load_artifact", "predictor_for_checkpoint"]
