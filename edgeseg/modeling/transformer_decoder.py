"""PEM transformer decoder: prototype cross-attention -> self-attention -> FFN, with heads.

Round robin over the pixel-decoder levels [1/32, 1/16, 1/8]; predictions (class + mask) after
the learnable queries and after every layer (deep supervision). The class head optionally also
sees pixel features pooled under the query's own predicted mask (``mask_pooled_class``), which
carries the shape evidence a single prototype pixel lacks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.modeling.position_encoding import PositionEmbeddingSine
from edgeseg.modeling.prototype_attention import PrototypeCrossAttention
from edgeseg.modeling.shape_head import SilhouetteShapeHead


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, nheads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, nheads, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = x + pos
        return self.norm(x + self.attn(q, q, x, need_weights=False)[0])


class FFNLayer(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))


class MLP(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, layers: int) -> None:
        super().__init__()
        dims = [cin] + [hidden] * (layers - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize, align_corners=False (Mask2Former's rule for attention masks)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class PEMTransformerDecoder(nn.Module):
    """Queries attend the pixel decoder's levels; returns per-layer (class_logits, mask_logits).

    ``full_res_masks=True`` (training) computes every layer's mask logits at stride 4 and
    resizes them for the next layer's attention. ``False`` (inference / export) computes the
    intermediate masks directly at the next layer's attention resolution against the mask
    features resized once per level: bilinear resizing is linear, so
    ``resize(einsum(q, M)) == einsum(q, resize(M))`` and the stride-4 product runs only once.
    """

    def __init__(
        self,
        pixel_dim: int,
        num_classes: int,
        hidden_dim: int = 256,
        mask_dim: int = 256,
        num_queries: int = 100,
        dec_layers: int = 6,
        nheads: int = 8,
        ffn_dim: int = 2048,
        num_levels: int = 3,
        mask_pooled_class: bool = False,
        mask_shape_class: bool = False,
    ) -> None:
        super().__init__()
        self.num_levels = num_levels
        self.num_layers = dec_layers
        self.mask_pooled_class = mask_pooled_class
        self.pe = PositionEmbeddingSine(hidden_dim // 2)
        self.level_embed = nn.Embedding(num_levels, hidden_dim)
        self.input_proj = nn.ModuleList(
            nn.Conv2d(pixel_dim, hidden_dim, 1) if pixel_dim != hidden_dim else nn.Identity()
            for _ in range(num_levels)
        )
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.cross = nn.ModuleList(PrototypeCrossAttention(hidden_dim, nheads) for _ in range(dec_layers))
        self.self_attn = nn.ModuleList(SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.ffn = nn.ModuleList(FFNLayer(hidden_dim, ffn_dim) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        if mask_pooled_class:
            self.pool_proj = nn.Linear(mask_dim, hidden_dim)
        self.shape_head = SilhouetteShapeHead(num_classes + 1) if mask_shape_class else None

    def _heads(self, query: torch.Tensor, mask_feats: torch.Tensor, pool_feats: torch.Tensor):
        """class logits [B,N,K+1] and mask logits [B,N,h,w] against ``mask_feats``.

        With ``mask_pooled_class`` the class head adds pixel features averaged under the
        query's soft mask computed against ``pool_feats`` (reused when it is ``mask_feats``).
        """
        q = self.decoder_norm(query)
        embed = self.mask_embed(q)
        mask_logits = torch.einsum("bqc,bchw->bqhw", embed, mask_feats)
        cls_in = q
        if self.mask_pooled_class:
            if pool_feats.shape[-2:] == mask_feats.shape[-2:]:
                weights = torch.sigmoid(mask_logits)
                feats = mask_feats
            else:
                weights = torch.sigmoid(torch.einsum("bqc,bchw->bqhw", embed, pool_feats))
                feats = pool_feats
            pooled = torch.einsum("bqhw,bchw->bqc", weights, feats)
            pooled = pooled / (weights.sum(dim=(2, 3)).unsqueeze(-1) + 1.0)
            cls_in = q + self.pool_proj(pooled)
        return self.class_embed(cls_in), mask_logits

    def forward(
        self, levels: list[torch.Tensor], mask_features: torch.Tensor, full_res_masks: bool
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """Per-layer ``(class_logits, mask_logits)`` and the last layer's silhouette-head logits
        (already added into its class logits; returned for the head's own training loss)."""
        b = mask_features.shape[0]
        memories, positions, sizes = [], [], []
        for i in range(self.num_levels):
            mem = self.input_proj[i](levels[i]) + self.level_embed.weight[i][None, :, None, None]
            memories.append(mem)
            positions.append(self.pe.axis_tables(*mem.shape[-2:], mem.device))
            sizes.append(tuple(mem.shape[-2:]))
        # mask features at each attention resolution (inference path), plus 1/8 for pooling.
        small_feats = [resize_to(mask_features, s) for s in sizes]
        pool_feats = small_feats[-1]  # finest attention level (1/8)

        query = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)

        outputs = []
        attn_masks = None
        shape_logits = None
        for i in range(self.num_layers + 1):
            level = i % self.num_levels  # level attended by layer i (the next layer's memory)
            is_last = i == self.num_layers
            # the class head pools at the attention resolution (1/8 for the last layer), so
            # class logits are identical on the training and the inference path.
            pool = pool_feats if is_last else small_feats[level]
            if full_res_masks or is_last:
                cls, masks = self._heads(query, mask_features, pool)
                attn_masks = None if is_last else resize_to(masks, sizes[level])
                if is_last and self.shape_head is not None:
                    shape_logits = self.shape_head(masks)
                    cls = cls + shape_logits
            else:
                cls, attn_masks = self._heads(query, small_feats[level], pool)
                masks = attn_masks
            outputs.append((cls, masks))
            if is_last:
                break
            query = self.cross[i](query, query_pos, memories[level], positions[level], attn_masks)
            query = self.self_attn[i](query, query_pos)
            query = self.ffn[i](query)
        return outputs, shape_logits
