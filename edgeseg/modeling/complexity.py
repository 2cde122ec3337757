"""Parameters and GMACs of a model config at a given input size (``edgeseg info``).

GMACs come from ``torch.utils.flop_counter.FlopCounterMode`` (counts matmul / conv / einsum
work, FLOPs = 2 x MACs) on the inference path, which is what exported models run.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeseg.config import ModelConfig
from edgeseg.modeling.pem import build_pem


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_info(cfg: ModelConfig, image_size: int = 512) -> dict[str, Any]:
    """Parameter counts (total and per part, in millions) and inference GMACs at ``image_size``."""
    model = build_pem(dataclasses.replace(cfg, backbone_weights=None), image_size).eval()
    x = torch.zeros(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    # FlopCounterMode's module tracker needs autograd on (it fails under no_grad); parameters are
    # frozen instead so no graph is kept.
    for p in model.parameters():
        p.requires_grad_(False)
    with counter:
        model(x)
    train_only = count_parameters(model.sem_head) if model.sem_head is not None else 0
    return {
        "config": cfg.name,
        "backbone": cfg.backbone,
        "image_size": image_size,
        "num_classes": cfg.num_classes,
        "params_m": round(count_parameters(model) / 1e6, 3),
        "params_inference_m": round((count_parameters(model) - train_only) / 1e6, 3),
        "params_backbone_m": round(count_parameters(model.backbone) / 1e6, 3),
        "params_pixel_decoder_m": round(count_parameters(model.pixel_decoder) / 1e6, 3),
        "params_transformer_decoder_m": round(count_parameters(model.decoder) / 1e6, 3),
        "gmacs": round(counter.get_total_flops() / 2e9, 3),
    }
