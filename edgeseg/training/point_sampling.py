"""Mask2Former's point sampling: mask losses on sampled points instead of every pixel."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def point_sample(inputs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``inputs [B,C,H,W]`` at ``coords [B,P,2]`` in [0,1] (x, y) -> [B,C,P]."""
    grid = (2.0 * coords - 1.0).unsqueeze(2)  # B,P,1,2 in [-1,1]
    return F.grid_sample(inputs, grid, align_corners=False).squeeze(3)


def uncertain_point_coords(
    mask_logits: torch.Tensor,  # [R,1,H,W]
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> torch.Tensor:
    """Importance sampling (PointRend / Mask2Former): most points where |logit| is smallest.

    Draws ``oversample_ratio * num_points`` random points, keeps the ``importance_sample_ratio``
    share with the highest uncertainty (-|logit|) and fills up with uniformly random points.
    """
    r = mask_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coords = torch.rand(r, num_sampled, 2, device=mask_logits.device)
    uncertainty = -point_sample(mask_logits, coords).abs().squeeze(1)  # R,P
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(uncertainty, k=num_uncertain, dim=1).indices
    picked = torch.gather(coords, 1, idx.unsqueeze(-1).expand(-1, -1, 2))
    if num_random > 0:
        picked = torch.cat([picked, torch.rand(r, num_random, 2, device=mask_logits.device)], dim=1)
    return picked
