"""The adapter contract every runtime implements: a preprocessed image in, named outputs out.

``infer(x [1,3,S,S] float32) -> {"class_logits": [1,N,K+1], "mask_logits": [1,N,S/4,S/4]}``,
float32 numpy. Outputs are picked by name: each adapter reads the runtime's tensor name for
each contract output from the model's metadata (``ModelMetadata.output_tensors``, written by the
exporter), never by position or rank. A subclass only loads its runtime and implements ``_run``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError

OUTPUTS = ("class_logits", "mask_logits")


def check_input(x: np.ndarray, size: int) -> None:
    """A clear error instead of a runtime's cryptic one."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape != (1, 3, size, size):
        got = f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
        raise EdgesegError(f"infer expects float32 [1, 3, {size}, {size}] (Predictor.preprocess output), got {got}")


class Adapter(ABC):
    """One runtime behind the one contract (see the module docstring).

    ``output_tensors`` maps each contract output to the runtime's tensor name."""

    runtime: str = ""

    def __init__(self, source: str | Path, input_size: int, output_tensors: Mapping[str, str]) -> None:
        missing = [name for name in OUTPUTS if name not in output_tensors]
        if missing:
            raise EdgesegError(f"{source}: the metadata names no runtime tensor for output(s) {missing}")
        self.source = str(source)
        self.input_size = int(input_size)
        self.output_tensors = {name: str(output_tensors[name]) for name in OUTPUTS}

    @abstractmethod
    def _run(self, x: np.ndarray) -> Mapping[str, np.ndarray]:
        """Run the network; every output keyed by the runtime's tensor name."""

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        check_input(x, self.input_size)
        raw = self._run(x)
        out = {}
        for name, tensor in self.output_tensors.items():
            if tensor not in raw:
                raise EdgesegError(f"{self.source}: the model has no output tensor {tensor!r} for {name} "
                                   f"(outputs: {sorted(raw)}); re-export it with this edgeseg version")
            out[name] = np.asarray(raw[tensor], np.float32)
        return out

    @classmethod
    def check_artifact(cls, path: str | Path, meta) -> None:
        """Warn, before loading, when ``meta`` (the artifact's ``ModelMetadata``) says this
        runtime will compute it less accurately on this machine than where it was checked."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, input_size={self.input_size})"


class CallableAdapter(Adapter):
    """A plain function as an adapter: ``forward(x) -> {tensor name: array}``. For networks that
    exist only inside a tool for a moment (a model NNCF is ranking, an experiment), so that they
    are scored through the same :class:`~edgeseg.inference.predictor.Predictor` as everything else."""

    runtime = "callable"

    def __init__(self, forward, input_size: int, output_tensors: Mapping[str, str], source: str = "function") -> None:
        super().__init__(source, input_size, output_tensors)
        self.forward = forward

    def _run(self, x: np.ndarray) -> Mapping[str, np.ndarray]:
        return self.forward(x)
