"""Parameters and GMACs of a model config at a given input size (``edgeseg info``).

GMACs come from ``torch.utils.flop_counter.FlopCounterMode`` (counts matmul / conv / einsum
work, FLOPs = 2 x MACs) on the inference path, which is what exported models run.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgeseg.config import ModelConfig, TeacherConfig
from edgeseg.modeling.build import build_model


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _parts(model: torch.nn.Module, cfg: ModelConfig | TeacherConfig) -> dict[str, torch.nn.Module]:
    if isinstance(cfg, TeacherConfig):
        hf = model.hf.model
        return {"backbone": hf.pixel_level_module.encoder, "pixel_decoder": hf.pixel_level_module.decoder,
                "transformer_decoder": hf.transformer_module}
    return {"backbone": model.backbone, "pixel_decoder": model.pixel_decoder, "transformer_decoder": model.decoder}


def model_info(cfg: ModelConfig | TeacherConfig, image_size: int = 512) -> dict[str, Any]:
    """Parameter counts (total and per part, in millions) and inference GMACs at ``image_size``.

    The teacher's MSDeformAttn sampling (``grid_sample``) is not counted by FlopCounterMode; its
    projections are. It is a small share of the teacher's work (its Swin and decoder matmuls dominate).
    """
    cfg = dataclasses.replace(cfg, backbone_weights=None)  # counting needs no weights (student and teacher)
    model = build_model(cfg, image_size).eval()
    x = torch.zeros(1, 3, image_size, image_size)
    counter = FlopCounterMode(display=False)
    # FlopCounterMode's module tracker needs autograd on (it fails under no_grad); parameters are
    # frozen instead so no graph is kept.
    for p in model.parameters():
        p.requires_grad_(False)
    with counter:
        model(x)
    sem_head = getattr(model, "sem_head", None)
    train_only = count_parameters(sem_head) if sem_head is not None else 0
    info = {
        "config": cfg.name,
        "backbone": getattr(cfg, "backbone", f"swin (embed {getattr(cfg, 'embed_dim', '?')})"),
        "image_size": image_size,
        "num_classes": cfg.num_classes,
        "params_m": round(count_parameters(model) / 1e6, 3),
        "params_inference_m": round((count_parameters(model) - train_only) / 1e6, 3),
    }
    for part, module in _parts(model, cfg).items():
        info[f"params_{part}_m"] = round(count_parameters(module) / 1e6, 3)
    info["gmacs"] = round(counter.get_total_flops() / 2e9, 3)
    return info
