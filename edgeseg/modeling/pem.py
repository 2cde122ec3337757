"""The PEM student: backbone -> PEM pixel decoder -> prototype transformer decoder -> heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.config import ModelConfig
from edgeseg.modeling.backbone import Backbone
from edgeseg.modeling.pixel_decoder import PEMPixelDecoder
from edgeseg.modeling.transformer_decoder import PEMTransformerDecoder, resize_to


class PEM(nn.Module):
    """Prototype-based Efficient MaskFormer (Cavagnero et al., CVPR 2024), plain PyTorch.

    ``forward(x)`` with ``x [B,3,S,S]`` (S divisible by 32) returns a dict:
    ``pred_logits [B,N,K+1]`` (last = no-object), ``pred_masks [B,N,S/4,S/4]`` of the last layer,
    and in training also ``aux_outputs`` (one dict per earlier prediction, full resolution),
    ``sem_logits [B,K,S/4,S/4]`` (per-pixel auxiliary head, when enabled) and, when ground-truth
    masks are passed, ``shape_aux_logits [M,K+1]``: the silhouette head on the M ground-truth
    masks of the batch, area-downsampled to the mask resolution; ``shape_logits [B,N,K+1]`` is
    the head on the last layer's own masks (both feed the head's auxiliary losses).
    """

    def __init__(self, cfg: ModelConfig, image_size: int | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.backbone, image_size or cfg.image_size, cfg.backbone_weights,
                                 cfg.backbone_kwargs, cfg.backbone_blocks)
        self.pixel_decoder = PEMPixelDecoder(
            self.backbone.channels, cfg.pixel_dim, cfg.mask_dim, cfg.deformable, cfg.mask_coords, cfg.upsample,
            cfg.mask_stride,
        )
        self.decoder = PEMTransformerDecoder(
            pixel_dim=cfg.pixel_dim,
            num_classes=cfg.num_classes,
            hidden_dim=cfg.hidden_dim,
            mask_dim=cfg.mask_dim,
            num_queries=cfg.num_queries,
            dec_layers=cfg.dec_layers,
            nheads=cfg.nheads,
            ffn_dim=cfg.ffn_dim,
            mask_pooled_class=cfg.mask_pooled_class,
            mask_shape_class=cfg.mask_shape_class,
        )
        self.sem_head = nn.Conv2d(cfg.mask_dim, cfg.num_classes, 1) if cfg.semantic_aux else None
        # Inference computes intermediate masks at attention resolution; training (and tests)
        # can force the full stride-4 computation for every layer.
        self.full_res_masks: bool | None = None
        # Distillation sets this to also return the stride-4 mask features as ``pixel_features``.
        self.return_features = False

    def forward(self, x: torch.Tensor, gt_masks: list[torch.Tensor] | None = None) -> dict:
        levels, mask_features = self.pixel_decoder(self.backbone(x))
        full = self.training if self.full_res_masks is None else self.full_res_masks
        outs, shape_logits = self.decoder(levels, mask_features, full_res_masks=full)
        if self.cfg.mask_stride != 4:  # the stride-4 contract: mask logits resized (bilinear is linear,
            # so this equals masks from resized features at a quarter of the product's cost)
            outs = [(c, _to_stride4(m, self.cfg.mask_stride)) for c, m in outs]
            if self.training or self.return_features:
                mask_features = _to_stride4(mask_features, self.cfg.mask_stride)
        result = {"pred_logits": outs[-1][0], "pred_masks": outs[-1][1]}
        if self.training:
            result["aux_outputs"] = [{"pred_logits": c, "pred_masks": m} for c, m in outs[:-1]]
            if self.sem_head is not None:
                result["sem_logits"] = self.sem_head(mask_features)
            if shape_logits is not None:
                result["shape_logits"] = shape_logits
            if gt_masks is not None and self.decoder.shape_head is not None:
                result["shape_aux_logits"] = self._gt_shape_logits(gt_masks, tuple(mask_features.shape[-2:]))
        if self.return_features:
            result["pixel_features"] = mask_features
        return result

    def _gt_shape_logits(self, gt_masks: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """Silhouette-head logits of every ground-truth mask, seen at the predicted masks' resolution."""
        masks = torch.cat([m.float() for m in gt_masks])
        if masks.shape[0] == 0:
            return masks.new_zeros((0, self.cfg.num_classes + 1))
        probs = F.adaptive_avg_pool2d(masks[:, None], size)[:, 0]
        return self.decoder.shape_head.classify(probs)


def _to_stride4(x: torch.Tensor, stride: int) -> torch.Tensor:
    return resize_to(x, tuple(side * stride // 4 for side in x.shape[-2:]))


class ExportWrapper(nn.Module):
    """Fixed-signature module for exporters: ``x -> (class_logits, mask_logits)`` of the last layer
    (of a PEM student or of the Mask2Former teacher, which share the output contract)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        if hasattr(model, "prepare_for_export"):
            model.prepare_for_export()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(x)
        return out["pred_logits"], out["pred_masks"]


def build_pem(cfg: ModelConfig, image_size: int | None = None) -> PEM:
    """Build a student from its config; ``image_size`` overrides S (Swin is size-specific)."""
    return PEM(cfg, image_size)
