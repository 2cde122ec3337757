"""timm backbones as a 4-level feature pyramid (strides 4, 8, 16, 32), always NCHW."""
from __future__ import annotations

import timm
import torch
from torch import nn

PYRAMID_STRIDES = (4, 8, 16, 32)


def pyramid_indices(name: str, reductions: list[int]) -> tuple[int, ...]:
    """Indices into a timm model's ``feature_info`` that give strides 4, 8, 16, 32: for each
    stride the deepest level that has it (the one after every block at that resolution).
    Chosen from ``feature_info.reduction()``, never from the model's name: any timm family
    with those strides works."""
    picks = []
    for stride in PYRAMID_STRIDES:
        levels = [i for i, r in enumerate(reductions) if int(r) == stride]
        if not levels:
            raise ValueError(f"backbone {name}: no feature level at stride {stride} (its levels have strides "
                             f"{list(reductions)}); edgeseg needs strides {list(PYRAMID_STRIDES)}")
        picks.append(levels[-1])
    return tuple(picks)


class Backbone(nn.Module):
    """``timm.create_model(name, features_only=True)`` returning 4 NCHW maps.

    ``weights``: see :mod:`edgeseg.modeling.pretrained` (a local timm state dict, ``pip:NAME`` or
    ``timm``). ``timm_kwargs``: extra ``timm.create_model`` arguments the weights need (TF-origin
    MobileNetV2: ``pad_type="same", bn_eps=1e-3``). Swin is built for ``image_size`` (its
    attention masks depend on it) and its NHWC outputs are permuted to NCHW.
    """

    def __init__(self, name: str, image_size: int, weights: str | None = None,
                 timm_kwargs: dict | None = None, keep_blocks: list[int] | None = None) -> None:
        super().__init__()
        kwargs: dict = dict(timm_kwargs or {})
        if _fixed_input_size(name):  # Swin's attention masks depend on the input size
            kwargs["img_size"] = image_size
        # timm's default ``out_indices`` are all of the model's levels; the pyramid is picked from
        # them by stride, and only those levels are returned (the others cost nothing extra: they
        # are computed on the way to stride 32 anyway).
        self.body = timm.create_model(name, features_only=True, pretrained=False, **kwargs)
        # ImageNet weights: a local file, a pip package or timm's hub, loaded strictly (pretrained.py)
        self.weights = None
        if weights is not None:
            from edgeseg.modeling.pretrained import load_backbone_weights

            self.weights = load_backbone_weights(self.body, str(weights), name)
        if keep_blocks is not None:
            prune_blocks(self.body, keep_blocks, name)
        info = self.body.feature_info
        picks = pyramid_indices(name, list(info.reduction()))
        self.levels = picks
        self.channels: list[int] = [int(info.channels()[i]) for i in picks]
        self.strides: list[int] = [int(info.reduction()[i]) for i in picks]
        self.nhwc = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        every = self.body(x)
        feats = [every[i] for i in self.levels]
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2).contiguous() for f in feats]
        return feats



def prune_blocks(body: nn.Module, keep: list[int], name: str) -> None:
    """Keep the first ``keep[i]`` blocks of stage ``i`` of a timm EfficientNet / MobileNet.

    Only blocks after the first of a stage are dropped: those keep the stage's width and
    stride (residual blocks), so the pyramid's shapes do not change and the kept blocks keep
    their pretrained weights."""
    stages = getattr(body, "blocks", None)
    if not isinstance(stages, nn.Sequential) or not all(isinstance(s, nn.Sequential) for s in stages):
        raise ValueError(f"backbone {name}: model.backbone_blocks needs a timm EfficientNet / MobileNet "
                         "(stages of blocks under .blocks)")
    have = [len(s) for s in stages]
    if len(keep) != len(have) or any(not 1 <= k <= n for k, n in zip(keep, have)):
        raise ValueError(f"backbone {name}: model.backbone_blocks {list(keep)} must give 1..n blocks for each of "
                         f"its {len(have)} stages, which have {have}")
    for i, k in enumerate(keep):
        stages[i] = stages[i][:k]


def _fixed_input_size(name: str) -> bool:
    """timm's own flag for models built for one input size (Swin, ViT): they take ``img_size``."""
    cfg = timm.get_pretrained_cfg(name)
    return bool(cfg and cfg.fixed_input_size)
