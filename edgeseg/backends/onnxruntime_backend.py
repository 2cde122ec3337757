"""ONNX Runtime adapter: an exported ``.onnx`` file, on the best execution provider present."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeseg.backends.base import Adapter
from edgeseg.errors import EdgesegError

# Tried in this order when present; a user can pass their own list.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


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
            raise EdgesegError(f"{path}: execution provider(s) {missing} not available; this onnxruntime has {available}")
        opts = session_options(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EdgesegError(f"{path}: onnxruntime could not load the model ({str(exc).splitlines()[0]})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_order = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_order, self.session.run(None, {self.input_name: x})))
