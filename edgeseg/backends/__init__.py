"""Runtime adapters and ``load(path)``, which picks one by file suffix.

``.pt``/``.pth``: torch (the reference). ``.onnx``: ONNX Runtime. ``.xml``: OpenVINO.
``.tflite``: LiteRT. Exported models read their ``edgeseg.json`` (class names, S, mean/std,
thresholds); nothing else is needed, and only the one runtime is imported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from edgeseg.errors import EdgesegError
from edgeseg.inference.predictor import Predictor, Thresholds
from edgeseg.inference.result import LabelSpace

_TORCH_SUFFIXES = (".pt", ".pth")
_ARTIFACT_SUFFIXES = (".onnx", ".xml", ".tflite")


def load(
    path: str | Path,
    device: str = "cpu",
    input_size: int | None = None,
    threads: int | None = None,
    thresholds: Thresholds | None = None,
    providers: Sequence[str] | None = None,
    hint: str = "LATENCY",
    delegate: str | None = None,
) -> Predictor:
    """Load a model file (or a shipped model by name, e.g. ``pem_mnv3l_512``) into a
    :class:`Predictor`, choosing the runtime by suffix.

    ``device``: torch device for ``.pt``; OpenVINO device (CPU, GPU, NPU, AUTO) for ``.xml``.
    ``providers``: ONNX Runtime execution providers (default: TensorRT, CUDA, CPU when present).
    ``hint``: OpenVINO LATENCY or THROUGHPUT. ``delegate``: LiteRT external delegate library.
    ``thresholds`` overrides the inference thresholds stored with the model.
    """
    from edgeseg.config import resolve_weights

    path = resolve_weights(path)  # a file, or a shipped model's name (models/<name>.pt)
    if not path.is_file():
        raise EdgesegError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in _TORCH_SUFFIXES:
        import torch

        from edgeseg.backends.torch_backend import TorchAdapter

        if threads:
            torch.set_num_threads(threads)
        adapter, ckpt = TorchAdapter.from_checkpoint(path, input_size, device)
        labels = LabelSpace(**ckpt["label_space"])
        thresholds = thresholds or Thresholds(**ckpt.get("thresholds", {}))
        return Predictor(adapter, labels, adapter.input_size, thresholds)
    if suffix in _ARTIFACT_SUFFIXES:
        if input_size is not None:
            raise EdgesegError(f"{path}: exported models have a fixed input size; re-export with --imgsz {input_size}")
        return load_artifact(path, device=device, threads=threads, thresholds=thresholds, providers=providers,
                             hint=hint, delegate=delegate)
    raise EdgesegError(f"{path}: unsupported model suffix '{suffix}'; supported: "
                       f"{', '.join(_TORCH_SUFFIXES + _ARTIFACT_SUFFIXES)}")


def load_artifact(
    path: str | Path,
    device: str = "cpu",
    threads: int | None = None,
    thresholds: Thresholds | None = None,
    providers: Sequence[str] | None = None,
    hint: str = "LATENCY",
    delegate: str | None = None,
) -> Predictor:
    """A :class:`Predictor` over an exported ``.onnx`` / ``.xml`` / ``.tflite`` and its ``edgeseg.json``."""
    from edgeseg.export.metadata import read_metadata

    path = Path(path)
    meta = read_metadata(path)
    size = meta.input_size
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from edgeseg.backends.onnxruntime_backend import OnnxRuntimeAdapter

        adapter = OnnxRuntimeAdapter(path, size, providers=providers, threads=threads)
    elif suffix == ".xml":
        from edgeseg.backends.openvino_backend import OpenVINOAdapter

        adapter = OpenVINOAdapter(path, size, device="CPU" if device == "cpu" else device, hint=hint, threads=threads)
    elif suffix == ".tflite":
        from edgeseg.backends.litert_backend import LiteRTAdapter

        adapter = LiteRTAdapter(path, size, threads=threads, delegate=delegate)
    else:
        raise EdgesegError(f"{path}: not an exported model (expected {', '.join(_ARTIFACT_SUFFIXES)})")
    labels = LabelSpace(meta.class_names, meta.isthing, meta.category_ids)
    thresholds = thresholds or Thresholds(**meta.thresholds)
    return Predictor(adapter, labels, size, thresholds, mean=tuple(meta.mean), std=tuple(meta.std))
