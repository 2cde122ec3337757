"""The Mask2Former teacher: HF ``Mask2FormerForUniversalSegmentation`` behind the student's contract.

The network is the library's (Swin or a timm backbone through HF's ``TimmBackbone``,
MSDeformAttn pixel decoder, masked-attention decoder); this module only builds it offline from
a config (never from a hub name: that needs the network even when weights are absent) or from
a checkpoint directory on disk, loads a timm backbone's ImageNet weights the student's way
(:mod:`edgeseg.modeling.pretrained`), and renames its outputs so the trainer, criterion,
evaluator and distiller treat it like a PEM:

``forward(x [B,3,S,S])`` -> ``pred_logits [B,N,K+1]`` (no-object last), ``pred_masks
[B,N,S/4,S/4]``, in training ``aux_outputs`` (one dict per earlier prediction), and with
``return_features=True`` ``pixel_features [B,C,S/4,S/4]`` (the pixel decoder's mask features,
for feature distillation).
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from edgeseg.config import TeacherConfig
from edgeseg.errors import CheckpointError, ConfigError


def _backbone_config(cfg: TeacherConfig):
    """HF config of the teacher's backbone: Swin from the config's fields, or a timm model by
    name, random-init (ImageNet weights are loaded afterwards, from disk: no download)."""
    from transformers import SwinConfig, TimmBackboneConfig

    if cfg.backbone == "swin":
        return SwinConfig(
            embed_dim=cfg.embed_dim, depths=list(cfg.depths), num_heads=list(cfg.num_heads),
            window_size=cfg.window_size,
            out_features=["stage1", "stage2", "stage3", "stage4"],  # without it only stage4 comes out
        )
    import timm

    if not timm.is_model(cfg.backbone):
        raise ConfigError(f"model.backbone: {cfg.backbone!r} is neither 'swin' nor a timm model name")
    # levels 1-4 of a timm EfficientNet / MobileNet are strides 4, 8, 16, 32 (level 0 is stride 2)
    return TimmBackboneConfig(backbone=cfg.backbone, out_indices=(1, 2, 3, 4), use_pretrained_backbone=False)


def _timm_body(hf: nn.Module, name: str) -> nn.Module:
    """The timm ``features_only`` model inside HF's ``TimmBackbone`` (where ImageNet weights go),
    checked to give the strides 4, 8, 16, 32 the pixel decoder and the stride-4 masks assume."""
    body = hf.model.pixel_level_module.encoder._backbone
    strides = [int(r) for r in body.feature_info.reduction()]
    if strides != [4, 8, 16, 32]:
        raise ConfigError(f"model.backbone {name}: timm levels 1-4 have strides {strides}; the teacher needs "
                          f"[4, 8, 16, 32] (an EfficientNet / MobileNet family)")
    return body


def _hf_config(cfg: TeacherConfig):
    """The HF ``Mask2FormerConfig`` of ``cfg`` (built from plain values: no download)."""
    from transformers import Mask2FormerConfig

    labels = {i: f"class_{i}" for i in range(cfg.num_classes)}
    if cfg.hf_config is not None:
        return Mask2FormerConfig.from_dict(cfg.hf_config)
    return Mask2FormerConfig(
        backbone_config=_backbone_config(cfg), encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        hidden_dim=cfg.hidden_dim, mask_feature_size=cfg.hidden_dim, feature_size=cfg.hidden_dim,
        num_queries=cfg.num_queries, id2label=labels, label2id={v: k for k, v in labels.items()},
    )


def _norm_name(name: str) -> str:
    """Class names compared loosely: case, '-', '_', ' ' and the COCO ``-merged``/``-other`` suffixes."""
    name = re.sub(r"-(merged|other)$", "", name.strip().lower())
    return re.sub(r"[\s_\-]+", " ", name)


def map_label_space(teacher_labels: Sequence[str], data_labels: Sequence[str], source: str) -> list[int]:
    """Index of every data-set class in the teacher's label space, matched by name.

    A data-set class the teacher does not know is an error naming it: its logit would have
    to be invented. Teacher classes the data set lacks are dropped (their mass goes nowhere).
    """
    index = {_norm_name(n): i for i, n in enumerate(teacher_labels)}
    missing = [n for n in data_labels if _norm_name(n) not in index]
    if missing:
        raise ConfigError(
            f"{source}: the teacher's label space ({len(teacher_labels)} classes, e.g. {list(teacher_labels)[:5]}) "
            f"has no class named {missing[:8]}; train the student on the teacher's classes or fine-tune the teacher"
        )
    return [index[_norm_name(n)] for n in data_labels]


class Mask2FormerTeacher(nn.Module):
    """HF Mask2Former with the student's output contract (see module docstring)."""

    def __init__(self, cfg: TeacherConfig, image_size: int | None = None) -> None:
        super().__init__()
        from transformers import Mask2FormerForUniversalSegmentation

        self.cfg = cfg
        self.image_size = image_size or cfg.image_size
        self.hf = Mask2FormerForUniversalSegmentation(_hf_config(cfg))
        # which ImageNet weights the backbone started from (the trainer records it), or None
        self.weights = None
        if cfg.backbone != "swin":  # a timm backbone (config.py refuses it beside an hf_config)
            body = _timm_body(self.hf, cfg.backbone)
            if cfg.backbone_weights is not None:
                from edgeseg.modeling.pretrained import load_backbone_weights

                self.weights = load_backbone_weights(body, cfg.backbone_weights, cfg.backbone)
        hf_classes = self.hf.config.num_labels
        if cfg.class_index is not None:
            if any(not 0 <= i < hf_classes for i in cfg.class_index):
                raise ConfigError(f"teacher class_index {cfg.class_index} is outside its {hf_classes} classes")
            index = list(cfg.class_index) + [hf_classes]  # no-object stays last
        else:
            if hf_classes != cfg.num_classes:
                raise ConfigError(f"teacher has {hf_classes} classes but num_classes={cfg.num_classes}; "
                                  f"import it with a class_index mapping")
            index = list(range(hf_classes + 1))
        self.register_buffer("class_index", torch.tensor(index, dtype=torch.long), persistent=False)
        self.return_features = False

    def prepare_for_export(self) -> None:
        """Settings exporters need, numerically neutral: Swin's attention in eager form (its SDPA
        path reshapes a non-contiguous tensor that the ONNX decomposition cannot view)."""
        encoder = self.hf.model.pixel_level_module.encoder
        if self.cfg.backbone == "swin" and hasattr(encoder, "set_attn_implementation"):
            encoder.set_attn_implementation("eager")

    @property
    def num_aux_outputs(self) -> int:
        """Earlier predictions given in training (HF: one before the first layer and one per layer but the last)."""
        return self.cfg.decoder_layers - 1 if self.cfg.hf_config is None else self.hf.config.decoder_layers - 1

    def forward(self, x: torch.Tensor, gt_masks: list[torch.Tensor] | None = None) -> dict[str, Any]:
        out = self.hf(pixel_values=x, output_auxiliary_logits=self.training)
        idx = self.class_index
        result: dict[str, Any] = {
            "pred_logits": out.class_queries_logits.index_select(-1, idx),
            "pred_masks": out.masks_queries_logits,
        }
        if self.training:
            result["aux_outputs"] = [
                {"pred_logits": a["class_queries_logits"].index_select(-1, idx), "pred_masks": a["masks_queries_logits"]}
                for a in out.auxiliary_logits
            ]
        if self.return_features:
            result["pixel_features"] = out.pixel_decoder_last_hidden_state
        return result


def build_teacher(cfg: TeacherConfig, image_size: int | None = None) -> Mask2FormerTeacher:
    return Mask2FormerTeacher(cfg, image_size)


def is_hf_checkpoint_dir(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "config.json").is_file()


def teacher_from_hf_dir(path: str | Path, class_names: Sequence[str], image_size: int = 512) -> Mask2FormerTeacher:
    """An official (or ``save_pretrained``) checkpoint directory, offline, mapped to ``class_names``.

    The HF config is kept inside the returned module's ``cfg`` so that an edgeseg checkpoint
    written from it rebuilds without the directory.
    """
    from transformers import Mask2FormerForUniversalSegmentation

    path = Path(path)
    if not is_hf_checkpoint_dir(path):
        raise CheckpointError(f"{path} is not a transformers checkpoint directory (no config.json)")
    raw = json.loads((path / "config.json").read_text())
    if raw.get("model_type") != "mask2former":
        raise CheckpointError(f"{path}/config.json is a '{raw.get('model_type')}' model, not mask2former")
    try:
        hf = Mask2FormerForUniversalSegmentation.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the Mask2Former checkpoint ({exc})") from exc
    id2label = hf.config.id2label
    teacher_labels = [id2label[i] for i in range(hf.config.num_labels)]
    index = map_label_space(teacher_labels, class_names, str(path))
    cfg = TeacherConfig(name=path.name, num_classes=len(class_names), image_size=image_size,
                        hf_config=hf.config.to_dict(), class_index=index)
    teacher = Mask2FormerTeacher(cfg, image_size)
    teacher.hf.load_state_dict(hf.state_dict())
    return teacher.eval()


def import_hf_teacher(hf_dir: str | Path, data: str | Path, out: str | Path, image_size: int = 512) -> Path:
    """Write an edgeseg teacher checkpoint from a transformers directory, mapped to ``data``'s classes.

    The checkpoint carries the HF config and the class mapping, so ``edgeseg eval / info /
    distill`` use it like a trained teacher, without the directory.
    """
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.checkpoint import save_checkpoint

    dataset = CocoPanoptic(data, "val")
    teacher = teacher_from_hf_dir(hf_dir, dataset.class_names, image_size)
    out = Path(out)
    save_checkpoint(out, {
        "model": teacher.state_dict(),
        "model_config": dataclasses.asdict(teacher.cfg),
        "label_space": {"class_names": list(dataset.class_names), "isthing": list(dataset.isthing),
                        "category_ids": list(dataset.category_ids)},
        "train_config": {"image_size": image_size},
        "source": str(hf_dir),
    })
    return out
