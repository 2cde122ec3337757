"""LiteRT (TFLite) adapter: ``ai-edge-litert`` where available, else ``tflite-runtime``.

``tflite-runtime`` 2.14 is what older Raspberry Pi OS images carry; it needs ``numpy<2`` and ran
litert-torch files with identical results (TOOLCHAIN.md). XNNPACK is the default CPU delegate of
both; ``delegate`` loads an external one (e.g. a vendor NPU delegate ``.so``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeseg.backends.checks import check_input
from edgeseg.errors import EdgesegError


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter as mod  # maintained LiteRT runtime
        return mod
    except ImportError:
        pass
    try:
        import tflite_runtime.interpreter as mod  # older devices
        return mod
    except ImportError as exc:
        raise EdgesegError("running .tflite needs a LiteRT runtime: pip install 'edgeseg[tflite]' "
                           "(ai-edge-litert), or tflite-runtime with numpy<2 on older devices") from exc


class LiteRTAdapter:
    """``forward(x [1,3,S,S] float32) -> (class_logits, mask_logits)`` through a LiteRT interpreter."""

    def __init__(self, path: str | Path, input_size: int, threads: int | None = None,
                 delegate: str | None = None) -> None:
        mod = _interpreter_module()
        delegates = []
        if delegate:
            if not Path(delegate).is_file():
                raise EdgesegError(f"LiteRT delegate library not found: {delegate}")
            try:
                delegates = [mod.load_delegate(str(delegate))]
            except (ValueError, OSError) as exc:
                raise EdgesegError(f"LiteRT could not load the delegate {delegate} ({exc})") from exc
        try:
            self.interpreter = mod.Interpreter(model_path=str(path), num_threads=threads,
                                               experimental_delegates=delegates or None)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EdgesegError(f"{path}: LiteRT could not load the model ({str(exc).splitlines()[0]})") from exc
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # identify the outputs by rank (class logits [1,N,K+1], masks [1,N,h,w]): converters do not
        # keep output order or names reliably
        by_rank = {len(d["shape"]): d["index"] for d in outputs}
        if set(by_rank) != {3, 4}:
            raise EdgesegError(f"{path}: expected outputs of rank 3 and 4, got {[list(d['shape']) for d in outputs]}")
        self.class_index, self.mask_index = by_rank[3], by_rank[4]
        self.input_size = input_size

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_input(x, self.input_size)
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        cls = self.interpreter.get_tensor(self.class_index)
        masks = self.interpreter.get_tensor(self.mask_index)
        return np.array(cls, np.float32), np.array(masks, np.float32)
