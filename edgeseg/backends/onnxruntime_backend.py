"""ONNX Runtime adapter: an exported ``.onnx`` file, on the best execution provider present."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeseg.backends.base import Adapter
from edgeseg.backends.cpu import cpu_flags, is_x86
from edgeseg.errors import EdgesegError

# Tried in this order when present; a user can pass their own list.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# present on every Jetson (L4T); its absence says nothing
JETSON_RELEASE_FILE = Path("/etc/nv_tegra_release")


class MissingProviderWarning(UserWarning):
    """The model runs on a slower execution provider than this device has."""


def missing_providers_message(path, missing: Sequence[str], available: Sequence[str]) -> str:
    """What to do when execution providers asked for are not in this onnxruntime build."""
    msg = f"{path}: execution provider(s) {list(missing)} not available; this onnxruntime has {list(available)}"
    if set(missing) & set(GPU_PROVIDERS):
        msg += (". PyPI's onnxruntime is CPU-only: on a Jetson install NVIDIA's onnxruntime-gpu wheel for your JetPack "
                "(it brings TensorRT and CUDA; see runtimes/README.md), elsewhere onnxruntime-gpu; or run on the CPU "
                "with providers=['CPUExecutionProvider']")
    return msg


class Int8AccuracyWarning(UserWarning):
    """An INT8 model will lose accuracy on this CPU that its INT8 check did not see."""


def u8s8_saturates() -> bool:
    """True on an x86 CPU without VNNI. There ONNX Runtime's uint8 x int8 kernels multiply with
    ``vpmaddubsw``, which adds each pair of products into int16 with saturation; VNNI
    (``vpdpbusd``) and ARM's dot-product kernels sum exactly in int32. Measured on the shipped
    student at 512, the same INT8 file on an emulated AVX2-only CPU against AVX-512 VNNI, on its
    50 INT8-check images: 89.7 % panoptic agreement, PQ 61.6 against 67.7 (torch 68.4;
    benchmarks/results/int8_isa_u8s8_50img.json)."""
    flags = cpu_flags()
    return is_x86() and bool(flags) and not ({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def int8_weights_can_saturate(meta) -> bool:
    """Whether an ONNX INT8 model holds full-range int8 weights against uint8 activations (the
    u8s8 kernels): 7-bit weights (``reduce_range``) and uint8 weights cannot overflow int16."""
    if meta.precision != "int8":
        return False
    recipe = (meta.extra.get("quantization") or {}).get("recipe") or {}
    return recipe.get("onnx_weight_type", "int8") == "int8" and not recipe.get("reduce_range", False)


def session_options(threads: int | None = None):
    """The ``onnxruntime.SessionOptions`` every edgeseg session runs with (the profiler too)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # Idle worker threads sleep instead of spinning (ONNX Runtime's default). Measured on the
    # default student at 512, 2 shared cores: 2 threads 123 -> 92 ms with spinning off; a
    # spinning pool also steals the core from the pre/post-processing and from other models.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


class OnnxRuntimeAdapter(Adapter):
    """An ``.onnx`` model through ``onnxruntime.InferenceSession``."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, input_size: int, output_tensors: Mapping[str, str],
                 providers: Sequence[str] | None = None, threads: int | None = None, **_: object) -> None:
        super().__init__(path, input_size, output_tensors)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EdgesegError(f"{path}: running .onnx needs onnxruntime: pip install 'edgeseg[onnx]'") from exc
        available = ort.get_available_providers()
        chosen = list(providers) if providers else [p for p in PREFERRED_PROVIDERS if p in available]
        missing = [p for p in chosen if p not in available]
        if missing:
            raise EdgesegError(missing_providers_message(path, missing, available))
        if not providers and JETSON_RELEASE_FILE.is_file() and not set(GPU_PROVIDERS) & set(available):
            warnings.warn(f"{path}: this is a Jetson ({JETSON_RELEASE_FILE}) but this onnxruntime has no TensorRT or "
                          "CUDA provider, so the model runs on the CPU; install NVIDIA's onnxruntime-gpu wheel for "
                          "your JetPack (runtimes/README.md)", MissingProviderWarning, stacklevel=3)
        opts = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EdgesegError(f"{path}: onnxruntime could not load the model ({str(exc).splitlines()[0]})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_order = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    @classmethod
    def check_artifact(cls, path: str | Path, meta) -> None:
        if int8_weights_can_saturate(meta) and u8s8_saturates():
            warnings.warn(
                f"{path}: INT8 model with full-range int8 weights on a CPU without VNNI: ONNX Runtime's u8s8 "
                "kernels saturate here, so its PQ can fall well below what its INT8 check measured on a VNNI or "
                "ARM CPU. For this CPU re-quantize with `reduce_range: true` in the recipe (7-bit weights: the "
                "same outputs on every x86 CPU), or run the OpenVINO INT8 or the FP32 export (docs/int8.md)",
                Int8AccuracyWarning, stacklevel=4)

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_order, self.session.run(None, {self.input_name: x})))
