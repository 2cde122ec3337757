"""``edgeseg train``: step-based AdamW training of the PEM student with exact resume.

The run directory holds ``last.pt`` (model, optimiser, step, RNG; written atomically every
``checkpoint_every`` steps), ``config.yaml``, ``log.jsonl`` (one line per logged step) and, at
the end, ``metrics.json`` (PQ / SQ / RQ / mIoU on the val split) and ``model.pt`` (weights only).
Launch with ``torchrun --nproc_per_node G -m edgeseg.cli train ...`` for DDP; nothing changes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from edgeseg.assets import resolve_weights
from edgeseg.checkpoint import init_from_checkpoint, load_checkpoint, load_state_into, save_checkpoint
from edgeseg.config import ModelConfig, TeacherConfig, TrainConfig, config_to_dict, save_config
from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.errors import CheckpointError, ConfigError
from edgeseg.inference.result import LabelSpace
from edgeseg.modeling.build import build_model, num_aux_outputs
from edgeseg.training import dist
from edgeseg.training.amp import MixedPrecision, to_float32
from edgeseg.training.data_stream import StepSampler, TrainStream, collate
from edgeseg.training.losses import SetCriterion
from edgeseg.training.shape_pretrain import pretrain_shape_head

logger = logging.getLogger(__name__)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then poly (power 0.9) or cosine decay to 0 at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    if cfg.schedule == "poly":
        return cfg.lr * (1 - progress) ** 0.9
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    raise ConfigError(f"train.schedule must be 'poly' or 'cosine', got {cfg.schedule!r}")


_BACKBONE_PREFIXES = ("backbone.", "hf.model.pixel_level_module.encoder.")  # student, teacher (Swin or timm)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on norms, biases, embeddings and ``alpha`` scales (Mask2Former's
    rule: decaying them only shrinks learnt offsets); ``backbone_lr_mult`` for the backbone."""
    no_decay_modules = (torch.nn.Embedding, torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm)
    no_decay = {id(p) for m in model.modules() if isinstance(m, no_decay_modules) for p in m.parameters(recurse=False)}
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            nd = id(p) in no_decay or p.ndim <= 1
            groups.setdefault((name.startswith(_BACKBONE_PREFIXES), nd), []).append(p)
    param_groups = [
        {"params": ps, "lr_mult": cfg.backbone_lr_mult if bb else 1.0, "weight_decay": 0.0 if nd else cfg.weight_decay}
        for (bb, nd), ps in sorted(groups.items())
    ]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def label_space_of(dataset: CocoPanoptic) -> LabelSpace:
    return LabelSpace(dataset.class_names, dataset.isthing, dataset.category_ids)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train(
    model_cfg: ModelConfig | TeacherConfig,
    train_cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = True,
    time_limit_min: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a student, or the Mask2Former teacher, in ``out_dir``; returns the final metrics.

    ``time_limit_min > 0`` stops early (with a checkpoint) after that many minutes of training,
    e.g. to fit a time slot; calling again with ``resume=True`` continues exactly.
    """
    out = Path(out_dir)
    rank, world, device = dist.init_distributed()
    is_main = rank == 0
    if train_cfg.accumulate < 1 or train_cfg.batch_size % (world * train_cfg.accumulate):
        raise ConfigError(f"train.batch_size {train_cfg.batch_size} is not divisible by {world} process(es) x "
                          f"train.accumulate {train_cfg.accumulate}")
    dataset = CocoPanoptic(train_cfg.data, train_cfg.train_split)
    labels = label_space_of(dataset)
    unlabelled_info = None
    if train_cfg.unlabelled:
        dataset, unlabelled_info = _with_teacher_labels(dataset, train_cfg, labels, out, device, is_main, progress)
    if model_cfg.num_classes != labels.num_classes:
        model_cfg = dataclasses.replace(model_cfg, num_classes=labels.num_classes)

    _seed_everything(train_cfg.seed)
    model = build_model(model_cfg, image_size=train_cfg.image_size).to(device)
    thing_classes = [i for i, t in enumerate(labels.isthing) if t]
    # the teacher trains with the same (Mask2Former) criterion: its outputs have the same keys,
    # and the student-only heads (semantic, silhouette) are simply absent from them
    criterion = SetCriterion(model_cfg.num_classes, train_cfg.loss, num_aux=num_aux_outputs(model),
                             shape_classes=thing_classes).to(device)
    shape_head = getattr(getattr(model, "decoder", None), "shape_head", None)
    pass_gt_masks = bool(getattr(model_cfg, "mask_shape_class", False))
    optimizer = build_optimizer(model, train_cfg)
    amp = MixedPrecision(train_cfg.amp, device)
    teacher, distiller = _build_distillation(model, model_cfg, train_cfg, labels, device)
    if distiller is not None and distiller.adapter is not None:
        optimizer.add_param_group({"params": list(distiller.parameters()), "lr_mult": 1.0, "weight_decay": 0.0})
    start_step, history, train_seconds = 0, [], 0.0

    ckpt_path = out / "last.pt"
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("model_config") != dataclasses.asdict(model_cfg):
            raise CheckpointError(f"{ckpt_path} was written for another model config; use a new --out or --no-resume")
        load_state_into(model, ckpt["model"], f"checkpoint {ckpt_path}")
        if distiller is not None and distiller.adapter is not None:
            load_state_into(distiller, ckpt.get("distiller", {}), f"checkpoint {ckpt_path} (distillation adapter)")
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(
                f"{ckpt_path}: its optimizer state does not fit this edgeseg version's parameter groups "
                f"({exc}); start again with --no-resume or a new --out"
            ) from exc
        amp.load_state_dict(ckpt.get("grad_scaler", {}))
        start_step = int(ckpt["step"])
        history = list(ckpt.get("history", []))
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        torch.set_rng_state(ckpt["torch_rng"])
        if is_main:
            logger.info("resumed from %s at step %d", ckpt_path, start_step)
    if unlabelled_info is not None and start_step == 0:
        history.append({"step": 0, "unlabelled": unlabelled_info})
    if train_cfg.init_from is not None and start_step == 0:
        start = init_from_checkpoint(model, resolve_weights(train_cfg.init_from))
        history.append({"step": 0, "init_from": start})
        if is_main:
            logger.info("started from %s: %d tensors copied, %d as built, %d unused", train_cfg.init_from,
                        start["loaded"], start["kept"], start["ignored"])
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(out / "config.yaml", model_cfg, train_cfg)

    ddp_model = model
    if world > 1:
        # with fewer decoder layers than pixel-decoder levels, the unattended level's projection
        # gets no gradient; DDP must then look for unused parameters (slower, so only then).
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=isinstance(model_cfg, ModelConfig) and model_cfg.dec_layers < model.decoder.num_levels,
        )

    norm = {"mean": model_cfg.pixel_mean, "std": model_cfg.pixel_std}  # student and teacher configs both carry it
    stream = TrainStream(dataset, train_cfg.image_size, train_cfg.scale_range, train_cfg.seed, **norm)
    if start_step == 0 and train_cfg.shape_pretrain_steps > 0 and shape_head is not None:
        # identical on every rank (seeded), so DDP's initial broadcast changes nothing
        mask_hw = (train_cfg.image_size // 4, train_cfg.image_size // 4)
        info = pretrain_shape_head(shape_head, stream, mask_hw, train_cfg.shape_pretrain_steps,
                                   images=train_cfg.shape_pretrain_images, seed=train_cfg.seed,
                                   classes=thing_classes)
        train_seconds += info["seconds"]
        history.append({"step": 0, "shape_pretrain": info})
        if is_main:
            logger.info("shape head warm start: %s", info)
    sampler = StepSampler(start_step, train_cfg.steps, train_cfg.batch_size, rank, world)
    loader = DataLoader(stream, batch_size=train_cfg.batch_size // world, sampler=sampler, collate_fn=collate,
                        num_workers=train_cfg.num_workers, persistent_workers=False)

    def payload(step: int) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "grad_scaler": amp.state_dict(),
            "step": step,
            "torch_rng": torch.get_rng_state(),
            "model_config": dataclasses.asdict(model_cfg),
            "train_config": config_to_dict(model_cfg, train_cfg)["train"],
            "label_space": dataclasses.asdict(labels),
            "history": history,
            "train_seconds": train_seconds,
            # which ImageNet weights the run started from (file and sha256), when it did
            "backbone_weights": _weights_record(model),
            **({"distiller": distiller.state_dict()} if distiller is not None and distiller.adapter is not None else {}),
        }

    bar = None
    if progress and is_main:
        from tqdm import tqdm

        bar = tqdm(total=train_cfg.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    step = start_step
    window_t, window_imgs = time.perf_counter(), 0
    stopped_early = False
    t0 = time.perf_counter()
    micro = train_cfg.batch_size // (world * train_cfg.accumulate)
    for images, targets in loader:
        lr = learning_rate(step, train_cfg)
        for g in optimizer.param_groups:
            g["lr"] = lr * g["lr_mult"]
        images = images.to(device, non_blocking=True)
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        # DETR's normaliser: masks in the whole optimizer step, per forward pass (process x micro-batch)
        parts = world * train_cfg.accumulate
        num_masks = max(1.0, dist.all_reduce_sum(float(sum(len(t["labels"]) for t in targets)), device) / parts)
        optimizer.zero_grad(set_to_none=True)
        step_loss, step_losses = 0.0, {}
        for m in range(train_cfg.accumulate):
            part = slice(m * micro, (m + 1) * micro)
            part_targets = targets[part]
            gt_masks = [t["masks"] for t in part_targets] if pass_gt_masks else None
            last = m == train_cfg.accumulate - 1
            with (ddp_model.no_sync() if world > 1 and not last else contextlib.nullcontext()):
                with amp.autocast():
                    outputs = ddp_model(images[part], gt_masks)
                    if distiller is not None:
                        with torch.no_grad():
                            teacher_out = teacher(images[part])
                outputs = to_float32(outputs)  # losses in float32 (training/amp.py)
                losses = criterion(outputs, part_targets, num_masks)
                weights = criterion.weight_dict
                if distiller is not None:
                    losses.update(distiller(outputs, to_float32(teacher_out)))
                    weights = {**weights, **distiller.weight_dict}
                loss = sum(losses[k] * weights[k] for k in losses if k in weights) / train_cfg.accumulate
                amp.backward(loss)
            step_loss += float(loss.detach())
            for k in _LOGGED_LOSSES:
                if k in losses:
                    step_losses[k] = step_losses.get(k, 0.0) + float(losses[k].detach()) / train_cfg.accumulate
        amp.step(optimizer, model.parameters(), train_cfg.clip_grad_norm)
        step += 1
        now = time.perf_counter()
        train_seconds += now - t0  # wall time incl. data loading, excl. checkpoints / evals
        window_imgs += images.shape[0] * world

        if step % 10 == 0 or step == train_cfg.steps:
            # every process joins the mean, so the logged loss is the whole batch's, as in one process
            step_loss = dist.all_reduce_mean(step_loss, device)
        if is_main and (step % 10 == 0 or step == train_cfg.steps):
            now = time.perf_counter()
            ips = window_imgs / max(now - window_t, 1e-9)
            window_t, window_imgs = now, 0
            row = {"step": step, "loss": step_loss, "lr": lr, "img_per_s": ips, "train_seconds": train_seconds}
            row.update(step_losses)
            history.append(row)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.2f}", ce=f"{row['loss_ce']:.2f}", img_s=f"{ips:.1f}")
        if bar is not None:
            bar.update(1)
        if is_main and (step % train_cfg.checkpoint_every == 0):
            save_checkpoint(ckpt_path, payload(step))
        if train_cfg.eval_every and step % train_cfg.eval_every == 0 and step < train_cfg.steps and is_main:
            metrics = evaluate_model(model, labels, train_cfg, progress=False)
            row = {"step": step, "eval": {k: metrics[k] for k in ("pq", "pq_things", "pq_stuff", "miou")}}
            history.append(row)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            logger.info("step %d: PQ %.1f things %.1f stuff %.1f", step, metrics["pq"], metrics["pq_things"], metrics["pq_stuff"])
            model.train()
        t0 = time.perf_counter()
        if time_limit_min > 0 and train_seconds > time_limit_min * 60 and step < train_cfg.steps:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    if is_main:
        save_checkpoint(ckpt_path, payload(step))
    dist.barrier()
    if stopped_early or not is_main:
        return {"step": step, "finished": False}

    metrics = evaluate_model(model, labels, train_cfg, progress=progress)
    metrics.update(step=step, train_seconds=train_seconds, finished=True)
    final = payload(step)
    for key in ("optimizer", "torch_rng", "grad_scaler"):
        final.pop(key)
    final["metrics"] = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    save_checkpoint(out / "model.pt", final)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


_LOGGED_LOSSES = ("loss_ce", "loss_mask", "loss_dice", "loss_sem", "loss_shape", "loss_shape_pred",
                  "loss_kd_class", "loss_kd_mask", "loss_kd_dice", "loss_kd_feat")


def _build_distillation(model, model_cfg, train_cfg: TrainConfig, labels: LabelSpace, device):
    """The frozen teacher and the KD loss when ``train.kd.teacher`` is set, else ``(None, None)``."""
    kd = train_cfg.kd
    if not kd.teacher:
        return None, None
    if isinstance(model_cfg, TeacherConfig):
        raise ConfigError("train.kd.teacher is set while training a teacher; distillation trains a student")
    from edgeseg.modeling.build import load_teacher, teacher_feature_dim
    from edgeseg.training.distillation import DistillationLoss, on_own_normalisation

    teacher = load_teacher(kd.teacher, labels.class_names, train_cfg.image_size).to(device)
    teacher_dim = 0
    if kd.feature_weight > 0:
        teacher.return_features = True
        model.return_features = True
        teacher_dim = teacher_feature_dim(teacher)
    distiller = DistillationLoss(kd, getattr(model_cfg, "mask_dim", 0), teacher_dim).to(device)
    return on_own_normalisation(teacher, model_cfg), distiller


def _with_teacher_labels(dataset: CocoPanoptic, train_cfg: TrainConfig, labels: LabelSpace, out: Path, device,
                         is_main: bool, progress: bool):
    """``dataset`` joined by ``train.unlabelled``'s images with the KD teacher's labels, each pool
    repeated to ``train.unlabelled_fraction`` of the stream; and a record of what was mixed."""
    from edgeseg.data.mixed import MixedPanoptic, repeats_for_share
    from edgeseg.training.pseudo_labels import open_pseudo_split, pseudo_label_split, segments_per_image

    if not train_cfg.kd.teacher:
        raise ConfigError("train.unlabelled needs a teacher to label its images: set train.kd.teacher "
                          "(edgeseg distill --teacher T --unlabelled DIR)")
    cache = out / "teacher_labels"
    if is_main:
        pseudo_label_split(train_cfg.kd.teacher, train_cfg.unlabelled, labels, cache, str(device), progress)
    dist.barrier()  # the other processes open what the first one wrote
    pseudo = open_pseudo_split(train_cfg.unlabelled, cache)
    repeats = repeats_for_share(len(dataset), len(pseudo), train_cfg.unlabelled_fraction)
    mixed = MixedPanoptic([(dataset, repeats[0]), (pseudo, repeats[1])])
    info = {"labelled": len(dataset), "unlabelled": len(pseudo), "repeats": list(repeats),
            "unlabelled_share": round(mixed.shares()[1], 4), "teacher_segments_per_image": segments_per_image(cache)}
    if is_main:
        logger.info("training on %d labelled + %d teacher-labelled images (repeats %s, unlabelled share %.2f)",
                    info["labelled"], info["unlabelled"], repeats, info["unlabelled_share"])
    return mixed, info


def _weights_record(model: torch.nn.Module) -> dict | None:
    # the teacher keeps the record on itself, the student on its backbone
    weights = getattr(model, "weights", None) or getattr(getattr(model, "backbone", None), "weights", None)
    return dataclasses.asdict(weights) if weights is not None else None


def evaluate_model(model: torch.nn.Module, labels: LabelSpace, train_cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """PQ / mIoU of an in-memory model on ``train_cfg``'s val split at the training size (Mask2Former's
    thresholds: calibration picks the model's own after training)."""
    from edgeseg.backends.torch_backend import TorchAdapter
    from edgeseg.evaluation.evaluate import evaluate
    from edgeseg.inference.predictor import Predictor

    device = next(model.parameters()).device
    val = CocoPanoptic(train_cfg.data, train_cfg.val_split)
    cfg = getattr(model, "cfg", None)
    norm = {"mean": cfg.pixel_mean, "std": cfg.pixel_std} if isinstance(cfg, (ModelConfig, TeacherConfig)) else {}
    predictor = Predictor(TorchAdapter(model.eval(), train_cfg.image_size, str(device)), labels, train_cfg.image_size,
                          **norm)
    return evaluate(predictor, val, max_images=train_cfg.eval_images, progress=progress)

