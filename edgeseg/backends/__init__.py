"""Runtime adapters and ``load(path)``, which picks one by file suffix."""
from __future__ import annotations

from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.inference.predictor import Predictor, Thresholds
from edgeseg.inference.result import LabelSpace

_TORCH_SUFFIXES = (".pt", ".pth")


def load(
    path: str | Path,
    device: str = "cpu",
    input_size: int | None = None,
    threads: int | None = None,
    thresholds: Thresholds | None = None,
) -> Predictor:
    """Load a model file into a :class:`Predictor`. Today: edgeseg torch checkpoints (.pt/.pth).

    ``thresholds`` overrides the inference thresholds stored with the model.
    """
    path = Path(path)
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
    raise EdgesegError(f"{path}: unsupported model suffix '{suffix}'; supported: {', '.join(_TORCH_SUFFIXES)}")
