"""PyTorch adapter: an edgeseg ``.pt`` checkpoint run in torch (the reference for parity)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgeseg.backends.checks import check_input
from edgeseg.training.checkpoint import load_checkpoint, model_from_checkpoint


class TorchAdapter:
    """``forward(x [1,3,S,S] float32) -> (class_logits, mask_logits)`` as numpy."""

    def __init__(self, model: torch.nn.Module, input_size: int, device: str = "cpu") -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.input_size = input_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, input_size: int | None = None, device: str = "cpu"):
        """Serve at ``input_size``, else at the training size (what the metrics were measured at).

        The model is built for that size: Swin's attention masks depend on it.
        """
        ckpt = load_checkpoint(path)
        size = input_size or int((ckpt.get("train_config") or {}).get("image_size") or ckpt["model_config"]["image_size"])
        model = model_from_checkpoint(ckpt, str(path), image_size=size)
        return cls(model, size, device), ckpt

    @torch.no_grad()
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        check_input(x, self.input_size)
        out = self.model(torch.from_numpy(x).to(self.device))
        return out["pred_logits"].float().cpu().numpy(), out["pred_masks"].float().cpu().numpy()
