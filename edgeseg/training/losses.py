"""Set criterion (Mask2Former): class CE with a down-weighted no-object class, point-sampled
mask BCE + dice, deep supervision, and edgeseg's per-pixel semantic auxiliary loss.

``SetCriterion.forward`` returns *unweighted* losses keyed ``loss_<what>`` (``loss_<what>_<i>``
for auxiliary layer i); ``weight_dict`` is the only place a weight lives (detr's convention).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.config import LossConfig
from edgeseg.training.matcher import HungarianMatcher
from edgeseg.training.point_sampling import point_sample, uncertain_point_coords


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    inputs = inputs.sigmoid()
    numerator = 2 * (inputs * targets).sum(-1)
    denominator = inputs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(inputs, targets, reduction="none").mean(1).sum() / num_masks


class SetCriterion(nn.Module):
    def __init__(self, num_classes: int, cfg: LossConfig, num_aux: int,
                 shape_classes: list[int] | None = None) -> None:
        """``shape_classes``: the class indices the silhouette head is trained on (the thing
        classes: stuff is told apart by texture, not by the outline of a region); default all."""
        super().__init__()
        self.num_classes = num_classes
        keep = torch.zeros(num_classes + 1, dtype=torch.bool)
        keep[list(range(num_classes)) if shape_classes is None else list(shape_classes)] = True
        self.register_buffer("shape_class_mask", keep)
        self.cfg = cfg
        self.matcher = HungarianMatcher(cfg.class_weight, cfg.mask_weight, cfg.dice_weight, cfg.num_points,
                                       cfg.dense_when_small)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = cfg.no_object_weight
        self.register_buffer("empty_weight", empty_weight)
        base = {"loss_ce": cfg.class_weight, "loss_mask": cfg.mask_weight, "loss_dice": cfg.dice_weight}
        self.weight_dict = dict(base)
        for i in range(num_aux):
            self.weight_dict.update({f"{k}_{i}": v for k, v in base.items()})
        if cfg.semantic_weight > 0:
            self.weight_dict["loss_sem"] = cfg.semantic_weight
        if cfg.shape_weight > 0:
            self.weight_dict["loss_shape"] = cfg.shape_weight
            self.weight_dict["loss_shape_pred"] = cfg.shape_weight

    def loss_labels(self, outputs: dict, targets: list[dict], indices) -> dict:
        logits = outputs["pred_logits"].float()
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64, device=logits.device)
        for b, (src, tgt) in enumerate(indices):
            target_classes[b, src] = targets[b]["labels"][tgt]
        return {"loss_ce": F.cross_entropy(logits.transpose(1, 2), target_classes, self.empty_weight)}

    def loss_masks(self, outputs: dict, targets: list[dict], indices, num_masks: float) -> dict:
        src = torch.cat([outputs["pred_masks"][b][s] for b, (s, _) in enumerate(indices)])
        tgt = torch.cat([targets[b]["masks"][t] for b, (_, t) in enumerate(indices)]).float()
        if src.shape[0] == 0:
            zero = outputs["pred_masks"].sum() * 0.0
            return {"loss_mask": zero, "loss_dice": zero}
        src, tgt = src[:, None].float(), tgt[:, None]
        h, w = src.shape[-2:]
        if self.cfg.dense_when_small and h * w <= self.cfg.num_points:
            tgt = F.adaptive_avg_pool2d(tgt, (h, w)) if tgt.shape[-2:] != (h, w) else tgt
            src_px, tgt_px = src.flatten(1), tgt.flatten(1)
            return {"loss_mask": sigmoid_ce_loss(src_px, tgt_px, num_masks), "loss_dice": dice_loss(src_px, tgt_px, num_masks)}
        with torch.no_grad():
            coords = uncertain_point_coords(src, self.cfg.num_points, self.cfg.oversample_ratio, self.cfg.importance_sample_ratio)
            tgt_pts = point_sample(tgt, coords).squeeze(1)
        src_pts = point_sample(src, coords).squeeze(1)
        return {"loss_mask": sigmoid_ce_loss(src_pts, tgt_pts, num_masks), "loss_dice": dice_loss(src_pts, tgt_pts, num_masks)}

    def loss_semantic(self, sem_logits: torch.Tensor, semantic: torch.Tensor) -> dict:
        """Per-pixel CE at stride 4 against the semantic target (255 = VOID, ignored)."""
        logits = F.interpolate(sem_logits.float(), size=semantic.shape[-2:], mode="bilinear", align_corners=False)
        return {"loss_sem": F.cross_entropy(logits, semantic, ignore_index=255)}

    def loss_shape(self, shape_logits: torch.Tensor, targets: list[dict]) -> dict:
        """CE of the silhouette head on the ground-truth masks (``PEM._gt_shape_logits`` order)."""
        labels = torch.cat([t["labels"] for t in targets])
        keep = self.shape_class_mask[labels]
        if not bool(keep.any()):
            return {"loss_shape": shape_logits.sum() * 0.0}
        return {"loss_shape": F.cross_entropy(shape_logits[keep].float(), labels[keep])}

    def loss_shape_matched(self, shape_logits: torch.Tensor, targets: list[dict], indices) -> dict:
        """CE of the silhouette head on the *predicted* masks matched to ground truth, against
        the matched class: the head must work on predicted silhouettes (blurrier, imperfect),
        not only on clean ground-truth ones (quick model: 70 % on ground truth, 35 % on
        predicted masks of found objects before this loss)."""
        src = torch.cat([shape_logits[b, s] for b, (s, _) in enumerate(indices)])
        labels = torch.cat([targets[b]["labels"][t] for b, (_, t) in enumerate(indices)])
        keep = self.shape_class_mask[labels]
        if not bool(keep.any()):
            return {"loss_shape_pred": shape_logits.sum() * 0.0}
        return {"loss_shape_pred": F.cross_entropy(src[keep].float(), labels[keep])}

    def _layer_losses(self, outputs: dict, targets: list[dict], num_masks: float) -> dict:
        indices = self.matcher(outputs, targets)
        return {**self.loss_labels(outputs, targets, indices), **self.loss_masks(outputs, targets, indices, num_masks)}

    def forward(self, outputs: dict, targets: list[dict], num_masks: float) -> dict[str, torch.Tensor]:
        """``num_masks``: total ground-truth masks in the (global) batch, at least 1."""
        indices = self.matcher(outputs, targets)
        losses = {**self.loss_labels(outputs, targets, indices), **self.loss_masks(outputs, targets, indices, num_masks)}
        if "shape_logits" in outputs and self.cfg.shape_weight > 0:
            losses.update(self.loss_shape_matched(outputs["shape_logits"], targets, indices))
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            losses.update({f"{k}_{i}": v for k, v in self._layer_losses(aux, targets, num_masks).items()})
        if "sem_logits" in outputs and self.cfg.semantic_weight > 0:
            semantic = torch.stack([t["semantic"] for t in targets])
            losses.update(self.loss_semantic(outputs["sem_logits"], semantic))
        if "shape_aux_logits" in outputs and self.cfg.shape_weight > 0:
            losses.update(self.loss_shape(outputs["shape_aux_logits"], targets))
        return losses
