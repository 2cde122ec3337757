"""Hungarian matching between predicted queries and ground-truth segments (Mask2Former)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from edgeseg.training.point_sampling import point_sample


def batch_dice_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise dice cost. ``inputs [N,P]`` logits, ``targets [M,P]`` in [0,1] -> [N,M]."""
    inputs = inputs.sigmoid()
    numerator = 2 * inputs @ targets.T
    denominator = inputs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_ce_cost(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pairwise mean binary cross-entropy. ``inputs [N,P]`` logits, ``targets [M,P]`` -> [N,M]."""
    p = inputs.shape[1]
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    return (pos @ targets.T + neg @ (1 - targets).T) / p


class HungarianMatcher(nn.Module):
    """One-to-one assignment minimising ``w_class * -p(class) + w_mask * BCE + w_dice * dice``.

    Mask costs are computed on ``num_points`` random points shared by all queries and targets
    of an image (Mask2Former). Returns, per image, ``(query_indices, target_indices)``.
    """

    def __init__(self, cost_class: float = 2.0, cost_mask: float = 5.0, cost_dice: float = 5.0, num_points: int = 12544,
                 dense_when_small: bool = True) -> None:
        super().__init__()
        self.cost_class = cost_class
        self.cost_mask = cost_mask
        self.cost_dice = cost_dice
        self.num_points = num_points
        # the loss's rule (LossConfig.dense_when_small): a mask with no more pixels than num_points
        # is compared on every pixel against the area-downsampled target, exactly and without
        # random points, so the matching does not depend on the random state of the process
        self.dense_when_small = dense_when_small

    @torch.no_grad()
    def forward(self, outputs: dict, targets: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``outputs``: ``pred_logits [B,N,K+1]``, ``pred_masks [B,N,h,w]``; ``targets``: per
        image ``labels [M]`` (int64) and ``masks [M,H,W]`` (float/bool)."""
        indices = []
        for b, tgt in enumerate(targets):
            labels, masks = tgt["labels"], tgt["masks"]
            if labels.numel() == 0:
                empty = torch.empty(0, dtype=torch.int64)
                indices.append((empty, empty))
                continue
            prob = outputs["pred_logits"][b].float().softmax(-1)  # N,K+1
            cost_class = -prob[:, labels]
            pred = outputs["pred_masks"][b][:, None].float()  # N,1,h,w
            h, w = pred.shape[-2:]
            if self.dense_when_small and h * w <= self.num_points:
                tgt = masks[:, None].float()
                tgt = F.adaptive_avg_pool2d(tgt, (h, w)) if tgt.shape[-2:] != (h, w) else tgt
                tgt_pts, pred_pts = tgt.flatten(1), pred.flatten(1)
            else:
                coords = torch.rand(1, self.num_points, 2, device=pred.device)
                tgt_pts = point_sample(masks[:, None].float(), coords.expand(masks.shape[0], -1, -1)).squeeze(1)
                pred_pts = point_sample(pred, coords.expand(pred.shape[0], -1, -1)).squeeze(1)
            cost = (
                self.cost_class * cost_class
                + self.cost_mask * batch_sigmoid_ce_cost(pred_pts, tgt_pts)
                + self.cost_dice * batch_dice_cost(pred_pts, tgt_pts)
            )
            cost = torch.nan_to_num(cost, nan=1e6).cpu().numpy()
            rows, cols = linear_sum_assignment(cost)
            indices.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return indices
