"""PyTorch adapter: an edgeseg ``.pt`` checkpoint run in torch (the reference for parity)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeseg.backends.base import Adapter
from edgeseg.checkpoint import load_checkpoint
from edgeseg.modeling.build import model_from_checkpoint

# the model's forward returns a dict; these are its keys for the contract's outputs
TORCH_OUTPUTS = {"class_logits": "pred_logits", "mask_logits": "pred_masks"}


def serving_size(ckpt: dict) -> int:
    """The input size a checkpoint serves at by default: its model config's ``image_size``, the
    size its exports are made at, so a ``.pt`` and its default export give the same Result."""
    return int(ckpt["model_config"]["image_size"])


class TorchAdapter(Adapter):
    """A torch module whose forward returns ``pred_logits`` / ``pred_masks``, run without grad."""

    runtime = "torch"

    def __init__(self, model: torch.nn.Module, input_size: int, device: str = "cpu", source: str = "torch module",
                 threads: int | None = None, **_: object) -> None:
        super().__init__(source, input_size, TORCH_OUTPUTS)
        if threads:
            torch.set_num_threads(int(threads))
        self.model = model.eval().to(device)
        self.device = torch.device(device)

    @classmethod
    def from_checkpoint(cls, path: str | Path, input_size: int | None = None, device: str = "cpu",
                        threads: int | None = None) -> tuple["TorchAdapter", dict]:
        """Serve at ``input_size``, else at the checkpoint's serving size. The model is built for
        that size (Swin's attention masks depend on it)."""
        ckpt = load_checkpoint(path)
        size = int(input_size or serving_size(ckpt))
        model = model_from_checkpoint(ckpt, str(path), image_size=size)
        return cls(model, size, device, source=str(path), threads=threads), ckpt

    @torch.no_grad()
    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.model(torch.from_numpy(x).to(self.device))
        return {key: out[key].float().cpu().numpy() for key in TORCH_OUTPUTS.values()}
