"""OpenVINO adapter: an exported IR (``.xml`` + ``.bin``) on CPU, GPU, NPU or AUTO."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeseg.backends.base import Adapter
from edgeseg.errors import EdgesegError

HINTS = ("LATENCY", "THROUGHPUT")


def compile_config(device: str, hint: str, threads: int | None, inference_precision: str | None) -> dict:
    """The properties every edgeseg OpenVINO model is compiled with (the profiler too)."""
    config: dict = {"PERFORMANCE_HINT": hint}
    if inference_precision and device.startswith("CPU"):
        # Measured: on a CPU with AVX512-BF16 the CPU plugin defaults to bf16 and an FP32 IR
        # then differs from torch by ~1.0 in the logits (flipped prototype argmaxes);
        # pinning f32 brings it to 6e-5. Pass None to let OpenVINO choose (faster, inexact).
        config["INFERENCE_PRECISION_HINT"] = inference_precision
    if threads and device.startswith("CPU"):
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


class OpenVINOAdapter(Adapter):
    """An OpenVINO IR compiled for ``device``; outputs found by their tensor names."""

    runtime = "openvino"

    def __init__(self, path: str | Path, input_size: int, output_tensors: Mapping[str, str], device: str = "CPU",
                 hint: str = "LATENCY", threads: int | None = None, inference_precision: str | None = "f32",
                 **_: object) -> None:
        super().__init__(path, input_size, output_tensors)
        try:
            import openvino as ov
        except ImportError as exc:
            raise EdgesegError(f"{path}: running .xml needs openvino: pip install 'edgeseg[openvino]'") from exc
        hint = hint.upper()
        if hint not in HINTS:
            raise EdgesegError(f"OpenVINO performance hint must be one of {HINTS}, got {hint!r}")
        core = ov.Core()
        device = "CPU" if device.lower() == "cpu" else device.upper()
        if device != "AUTO" and not any(d.startswith(device) for d in core.available_devices):
            raise EdgesegError(f"{path}: OpenVINO device {device!r} not present; available: {core.available_devices}")
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), device,
                                               compile_config(device, hint, threads, inference_precision))
        except Exception as exc:  # openvino raises RuntimeError subclasses
            raise EdgesegError(f"{path}: OpenVINO could not compile the model for {device} ({str(exc).splitlines()[0]})") from exc
        self.request = self.compiled.create_infer_request()
        self.device = device

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.request.infer({0: x})
        out = {}
        for port in self.compiled.outputs:
            data = np.array(self.request.get_tensor(port).data)  # copied: the request reuses its buffers
            out.update(dict.fromkeys(port.get_names(), data))  # an IR output can answer to several names
        return out
