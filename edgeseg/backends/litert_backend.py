"""LiteRT (TFLite) adapter: ``ai-edge-litert`` where available, else ``tflite-runtime``.

``tflite-runtime`` 2.14 is what older Raspberry Pi OS images carry; it needs ``numpy<2`` and ran
litert-torch files with identical results (measured). XNNPACK is the default CPU delegate of
both; ``delegate`` loads an external one (e.g. a vendor NPU delegate ``.so``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeseg.backends.base import Adapter
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


class LiteRTAdapter(Adapter):
    """A ``.tflite`` model through a LiteRT interpreter (XNNPACK by default)."""

    runtime = "litert"

    def __init__(self, path: str | Path, input_size: int, output_tensors: Mapping[str, str],
                 threads: int | None = None, delegate: str | None = None, **_: object) -> None:
        super().__init__(path, input_size, output_tensors)
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
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        # A full-integer model (edgeseg quantize --format tflite, engine litert-torch) takes an
        # int8 image: quantize it here with the input's own scale / zero point, as every LiteRT
        # int8 pipeline does, so callers always pass the same float32 preprocessing output.
        self.input_dtype = np.dtype(inp["dtype"])
        self.input_quant = _quant_params(inp, path, "input")
        outputs = self.interpreter.get_output_details()
        self.output_index = {d["name"]: d["index"] for d in outputs}
        self.output_quant = {d["index"]: _quant_params(d, path, "output") for d in outputs}

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.input_quant is not None:
            scale, zero = self.input_quant
            info = np.iinfo(self.input_dtype)
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.input_dtype)
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        return {name: self._output(index) for name, index in self.output_index.items()}

    def _output(self, index: int) -> np.ndarray:
        value = self.interpreter.get_tensor(index)
        if self.output_quant[index] is None:
            return np.array(value, np.float32)
        scale, zero = self.output_quant[index]
        return (value.astype(np.float32) - zero) * np.float32(scale)


def _quant_params(detail: dict, path, what: str) -> tuple[float, int] | None:
    """``(scale, zero_point)`` of an integer input / output, ``None`` for a float one."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return None
    if dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise EdgesegError(f"{path}: unsupported {what} dtype {dtype} (float32, int8 or uint8)")
    scale, zero = detail["quantization"]
    if not scale:
        raise EdgesegError(f"{path}: {what} is {dtype} but carries no quantization scale")
    return float(scale), int(zero)
