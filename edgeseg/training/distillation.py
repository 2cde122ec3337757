"""Teacher -> student distillation losses (docs/training.md, distillation).

``DistillationLoss(student_out, teacher_out)`` returns unweighted ``loss_kd_class``,
``loss_kd_mask``, ``loss_kd_dice`` (and ``loss_kd_feat``); ``weight_dict`` holds the weights,
as in :class:`~edgeseg.training.losses.SetCriterion`, so the trainer adds and logs them alike.

Targets are the teacher's *object* queries only (p(no-object) < ``object_threshold``): the
teacher's 100 queries are mostly no-object, and matching the student's queries to those would
teach it empty masks. Each student query is Hungarian-matched to one teacher object query with
the ground-truth matcher (class cost at the teacher's argmax class, BCE + dice against the
teacher's mask probabilities); unmatched student queries get only the ground-truth loss.

``on_own_normalisation(teacher, student_cfg)`` lets a teacher whose input normalisation differs
from the student's see the shared batch in its own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.config import DistillConfig
from edgeseg.training.losses import dice_loss, sigmoid_ce_loss
from edgeseg.training.matcher import HungarianMatcher
from edgeseg.training.point_sampling import point_sample, uncertain_point_coords


def teacher_targets(teacher_out: dict, object_threshold: float) -> list[dict]:
    """Per image: the teacher's object queries as soft targets (labels, mask probabilities, logits)."""
    probs = teacher_out["pred_logits"].float().softmax(-1)
    targets = []
    for b in range(probs.shape[0]):
        keep = probs[b, :, -1] < object_threshold
        targets.append({
            "labels": probs[b, keep, :-1].argmax(-1),
            "masks": teacher_out["pred_masks"][b, keep].float().sigmoid(),
            "logits": teacher_out["pred_logits"][b, keep].float(),
        })
    return targets


class DistillationLoss(nn.Module):
    """KD terms between a student's and a teacher's outputs (see module docstring).

    ``student_dim`` / ``teacher_dim``: channels of their ``pixel_features`` for the 1x1
    adapter of feature KD (only built when ``cfg.feature_weight > 0``).
    """

    def __init__(self, cfg: DistillConfig, student_dim: int = 0, teacher_dim: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.matcher = HungarianMatcher(2.0, 5.0, 5.0, cfg.num_points)
        self.weight_dict = {"loss_kd_class": cfg.class_weight, "loss_kd_mask": cfg.mask_weight,
                            "loss_kd_dice": cfg.dice_weight}
        self.adapter = None
        if cfg.feature_weight > 0:
            self.adapter = nn.Conv2d(student_dim, teacher_dim, 1)
            self.weight_dict["loss_kd_feat"] = cfg.feature_weight

    def forward(self, student_out: dict, teacher_out: dict) -> dict[str, torch.Tensor]:
        targets = teacher_targets(teacher_out, self.cfg.object_threshold)
        indices = self.matcher(student_out, targets)
        num = max(1.0, float(sum(len(s) for s, _ in indices)))
        losses = {**self._class_kd(student_out, targets, indices, num), **self._mask_kd(student_out, targets, indices, num)}
        if self.adapter is not None:
            losses["loss_kd_feat"] = self._feature_kd(student_out["pixel_features"], teacher_out["pixel_features"])
        return losses

    def _class_kd(self, student_out: dict, targets: list[dict], indices, num: float) -> dict:
        t = self.cfg.temperature
        src = torch.cat([student_out["pred_logits"][b, s] for b, (s, _) in enumerate(indices)]).float()
        tgt = torch.cat([targets[b]["logits"][j] for b, (_, j) in enumerate(indices)])
        if src.shape[0] == 0:
            return {"loss_kd_class": student_out["pred_logits"].sum() * 0.0}
        kl = F.kl_div(F.log_softmax(src / t, -1), F.log_softmax(tgt / t, -1), log_target=True, reduction="sum")
        return {"loss_kd_class": kl * t * t / num}

    def _mask_kd(self, student_out: dict, targets: list[dict], indices, num: float) -> dict:
        src = torch.cat([student_out["pred_masks"][b, s] for b, (s, _) in enumerate(indices)])
        tgt = torch.cat([targets[b]["masks"][j] for b, (_, j) in enumerate(indices)])
        if src.shape[0] == 0:
            zero = student_out["pred_masks"].sum() * 0.0
            return {"loss_kd_mask": zero, "loss_kd_dice": zero}
        src, tgt = src[:, None].float(), tgt[:, None]
        if tgt.shape[-2:] != src.shape[-2:]:
            tgt = F.interpolate(tgt, size=src.shape[-2:], mode="bilinear", align_corners=False)
        with torch.no_grad():
            coords = uncertain_point_coords(src, self.cfg.num_points, 3.0, 0.75)
            tgt_pts = point_sample(tgt, coords).squeeze(1)
        src_pts = point_sample(src, coords).squeeze(1)
        return {"loss_kd_mask": sigmoid_ce_loss(src_pts, tgt_pts, num), "loss_kd_dice": dice_loss(src_pts, tgt_pts, num)}

    def _feature_kd(self, student_feats: torch.Tensor, teacher_feats: torch.Tensor) -> torch.Tensor:
        pred = self.adapter(student_feats)
        if pred.shape[-2:] != teacher_feats.shape[-2:]:
            pred = F.interpolate(pred, size=teacher_feats.shape[-2:], mode="bilinear", align_corners=False)
        return F.mse_loss(pred.float(), teacher_feats.float())


class _Renormalised(nn.Module):
    """The teacher fed the student's batch re-expressed in the teacher's own input normalisation."""

    def __init__(self, teacher: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.teacher = teacher
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> dict:
        return self.teacher(x * self.scale + self.shift)


def on_own_normalisation(teacher: nn.Module, student_cfg) -> nn.Module:
    """``teacher`` itself when both normalise inputs alike, else wrapped to see its own: a Lite
    teacher (inputs on [-1, 1]) distilling an ImageNet-normalised student sees what it trained on."""
    mean_s, std_s = (torch.tensor(v, dtype=torch.float32) for v in (student_cfg.pixel_mean, student_cfg.pixel_std))
    mean_t, std_t = (torch.tensor(v, dtype=torch.float32) for v in (teacher.cfg.pixel_mean, teacher.cfg.pixel_std))
    if torch.equal(mean_s, mean_t) and torch.equal(std_s, std_t):
        return teacher
    device = next(teacher.parameters()).device
    return _Renormalised(teacher, (std_s / std_t).to(device), ((mean_s - mean_t) / std_t).to(device)).eval()
