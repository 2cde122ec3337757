"""Matcher, criterion, schedule, exact resume, and one real training run on tiny data."""
from __future__ import annotations

import json

import pytest
import torch

from edgeseg.config import LossConfig, ModelConfig, TrainConfig
from edgeseg.modeling.pem import build_pem
from edgeseg.checkpoint import load_checkpoint
from edgeseg.training.losses import SetCriterion
from edgeseg.training.matcher import HungarianMatcher
from edgeseg.training.trainer import learning_rate, train
from tests.conftest import tiny_model_config, tiny_train_config


def _square(h, w, y0, y1, x0, x1):
    m = torch.zeros(h, w)
    m[y0:y1, x0:x1] = 1
    return m


def test_matcher_pairs_each_target_with_its_obvious_query():
    # targets: class 1 on the top-left block, class 0 on the bottom-right block
    t_masks = torch.stack([_square(16, 16, 0, 8, 0, 8), _square(16, 16, 8, 16, 8, 16)])
    labels = torch.tensor([1, 0])
    # query 2 predicts target 0 (right class, right mask), query 0 predicts target 1, query 1 is junk
    logits = torch.full((1, 3, 3), -5.0)
    logits[0, 2, 1] = logits[0, 0, 0] = 5.0
    logits[0, 1, 2] = 5.0
    masks = torch.full((1, 3, 16, 16), -10.0)
    masks[0, 2] = t_masks[0] * 20 - 10
    masks[0, 0] = t_masks[1] * 20 - 10
    (q, t), = HungarianMatcher(num_points=512)({"pred_logits": logits, "pred_masks": masks}, [{"labels": labels, "masks": t_masks}])
    assert dict(zip(t.tolist(), q.tolist())) == {0: 2, 1: 0}


def test_matcher_handles_images_without_targets():
    out = {"pred_logits": torch.randn(1, 4, 3), "pred_masks": torch.randn(1, 4, 8, 8)}
    (q, t), = HungarianMatcher(num_points=64)(out, [{"labels": torch.zeros(0, dtype=torch.int64), "masks": torch.zeros(0, 8, 8)}])
    assert q.numel() == 0 and t.numel() == 0


def test_criterion_names_losses_per_layer_and_weights_them_outside():
    cfg = tiny_model_config(semantic_aux=True, mask_shape_class=True)  # with the additions' losses
    model = build_pem(cfg).train()
    crit = SetCriterion(13, LossConfig(num_points=256), num_aux=cfg.dec_layers)
    targets = [{"labels": torch.tensor([0, 9]), "masks": torch.rand(2, 64, 64) > 0.5,
                "semantic": torch.randint(0, 13, (64, 64))} for _ in range(2)]
    losses = crit(model(torch.randn(2, 3, 64, 64), [t["masks"] for t in targets]), targets, num_masks=4.0)
    expected = {"loss_ce", "loss_mask", "loss_dice", "loss_sem", "loss_shape", "loss_shape_pred"} | {
        f"loss_{k}_{i}" for k in ("ce", "mask", "dice") for i in range(cfg.dec_layers)}
    assert set(losses) == expected == set(crit.weight_dict)
    assert crit.weight_dict["loss_ce"] == 2.0 and crit.empty_weight[-1] == pytest.approx(0.1)
    assert all(torch.isfinite(v) for v in losses.values())


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = tiny_model_config()
    model = build_pem(cfg).train()
    crit = SetCriterion(13, LossConfig(num_points=256), num_aux=cfg.dec_layers)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.randn(2, 3, 64, 64)
    targets = [{"labels": torch.tensor([3]), "masks": _square(64, 64, 8, 40, 8, 40)[None] > 0,
                "semantic": torch.full((64, 64), 9)} for _ in range(2)]

    def total():
        losses = crit(model(x), targets, 2.0)
        return sum(losses[k] * crit.weight_dict[k] for k in losses)

    first = float(total().detach())
    for _ in range(15):
        loss = total()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(total().detach()) < 0.8 * first


def test_learning_rate_schedules():
    cfg = TrainConfig(lr=1.0, steps=100, warmup_steps=10, schedule="poly")
    assert learning_rate(0, cfg) == pytest.approx(0.1)
    assert learning_rate(10, cfg) == pytest.approx(1.0)
    assert learning_rate(100, cfg) == pytest.approx(0.0)
    cos = TrainConfig(lr=1.0, steps=110, warmup_steps=10, schedule="cosine")
    assert learning_rate(60, cos) == pytest.approx(0.5)


def test_resume_continues_exactly_where_it_stopped(tiny_data, tmp_path):
    mcfg = tiny_model_config()
    straight = train(mcfg, tiny_train_config(tiny_data, steps=4), tmp_path / "a", progress=False)
    # the same run interrupted after its first step (a tiny time limit), then resumed
    train(mcfg, tiny_train_config(tiny_data, steps=4), tmp_path / "c", progress=False, time_limit_min=1e-9)
    assert load_checkpoint(tmp_path / "c" / "last.pt")["step"] == 1
    resumed = train(mcfg, tiny_train_config(tiny_data, steps=4), tmp_path / "c", progress=False)
    a = load_checkpoint(tmp_path / "a" / "model.pt")["model"]
    c = load_checkpoint(tmp_path / "c" / "model.pt")["model"]
    for k in a:
        torch.testing.assert_close(a[k], c[k], atol=0, rtol=0, msg=k)
    assert resumed["pq"] == straight["pq"]
    assert json.loads((tmp_path / "c" / "metrics.json").read_text())["step"] == 4


def test_resume_refuses_another_model_config(tiny_data, tmp_path):
    from edgeseg.errors import CheckpointError

    train(tiny_model_config(), tiny_train_config(tiny_data, steps=1), tmp_path, progress=False, time_limit_min=1e-9)
    with pytest.raises(CheckpointError, match="another model config"):
        train(tiny_model_config(num_queries=4), tiny_train_config(tiny_data, steps=1), tmp_path, progress=False)


def test_optimizer_does_not_decay_norms_biases_and_embeddings():
    from edgeseg.training.trainer import build_optimizer

    model = build_pem(tiny_model_config())
    opt = build_optimizer(model, TrainConfig(backbone_lr_mult=0.1))
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.decoder.query_feat.weight) not in decay
    assert id(model.decoder.decoder_norm.weight) not in decay
    assert id(model.decoder.class_embed.weight) in decay
    backbone = {id(p) for g in opt.param_groups if g["lr_mult"] == 0.1 for p in g["params"]}
    assert backbone == {id(p) for p in model.backbone.parameters()}


def test_mixed_precision_changes_the_forward_and_keeps_training_finite(tiny_data, tmp_path):
    """bf16 autocast really runs (its weights differ from the float32 run's, which is bit-exact
    run to run: see the resume test) and stays close to it; fp16 runs with a GradScaler whose
    state is checkpointed for exact resume."""
    mcfg = tiny_model_config()
    train(mcfg, tiny_train_config(tiny_data, steps=2), tmp_path / "fp32", progress=False)
    train(mcfg, tiny_train_config(tiny_data, steps=2, amp="bf16"), tmp_path / "bf16", progress=False)
    train(mcfg, tiny_train_config(tiny_data, steps=2, amp="fp16"), tmp_path / "fp16", progress=False)
    ref = load_checkpoint(tmp_path / "fp32" / "model.pt")["model"]
    for mode in ("bf16", "fp16"):
        got = load_checkpoint(tmp_path / mode / "model.pt")["model"]
        floats = [k for k in ref if ref[k].is_floating_point()]
        assert all(torch.isfinite(got[k]).all() for k in floats), mode
        assert any(not torch.equal(ref[k], got[k]) for k in floats), f"{mode}: autocast changed nothing"
        fp32_loss, mode_loss = (json.loads((tmp_path / m / "log.jsonl").read_text().splitlines()[-1])["loss"]
                                for m in ("fp32", mode))
        assert abs(mode_loss - fp32_loss) < 0.1 * fp32_loss, f"{mode}: loss {mode_loss} vs float32 {fp32_loss}"
    scaler = load_checkpoint(tmp_path / "fp16" / "last.pt")["grad_scaler"]
    assert scaler["scale"] > 0 and "grad_scaler" not in load_checkpoint(tmp_path / "fp16" / "model.pt")


def test_amp_mode_is_checked_where_it_is_set():
    from edgeseg.config import apply_overrides
    from edgeseg.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.amp must be one of \['off', 'bf16', 'fp16'\], got 'fp32'"):
        apply_overrides(ModelConfig(), TrainConfig(), ["train.amp=fp32"])


def test_autocast_runs_the_network_in_bfloat16_and_losses_get_float32():
    from edgeseg.training.amp import MixedPrecision, to_float32

    conv = torch.nn.Conv2d(3, 4, 3)
    amp = MixedPrecision("bf16", torch.device("cpu"))
    with amp.autocast():
        out = {"pred_masks": conv(torch.randn(1, 3, 8, 8)), "aux": [{"x": conv(torch.randn(1, 3, 8, 8))}],
               "labels": torch.zeros(2, dtype=torch.long)}
    assert out["pred_masks"].dtype == torch.bfloat16
    cast = to_float32(out)
    assert cast["pred_masks"].dtype == cast["aux"][0]["x"].dtype == torch.float32
    assert cast["labels"].dtype == torch.long


def test_train_flags_reach_the_configs():
    from edgeseg.cli import _train_configs, build_parser

    args = build_parser().parse_args(["train", "--config", "pem_lite0_512", "--out", "x", "--amp", "bf16",
                                      "--backbone-weights", "/w/mnv2.pth", "--set", "train.steps=7"])
    model_cfg, train_cfg = _train_configs(args.config, args)
    assert (train_cfg.amp, model_cfg.backbone_weights, train_cfg.steps) == ("bf16", "/w/mnv2.pth", 7)
    plain = build_parser().parse_args(["train", "--config", "pem_lite0_512", "--out", "x"])
    model_cfg, train_cfg = _train_configs(plain.config, plain)
    assert (train_cfg.amp, model_cfg.backbone_weights) == ("off", "pip:efficientnet-lite0")


def test_init_from_starts_the_run_from_the_checkpoint(tiny_data, tmp_path):
    train(tiny_model_config(), tiny_train_config(tiny_data, steps=1), tmp_path / "big", progress=False)
    source = load_checkpoint(tmp_path / "big" / "model.pt")["model"]
    cut = tiny_model_config(dec_layers=2, mask_stride=8, upsample="bilinear")
    train(cut, tiny_train_config(tiny_data, steps=1, lr=0.0, warmup_steps=0, init_from=str(tmp_path / "big" / "model.pt")),
          tmp_path / "cut", progress=False)
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    start = next(h["init_from"] for h in ckpt["history"] if "init_from" in h)
    assert start["loaded"] > 0 and start["ignored"] > 0
    # lr 0: the weights it started from are the checkpoint's (BatchNorm statistics move; weights do not)
    key = "decoder.class_embed.weight"
    torch.testing.assert_close(ckpt["model"][key], source[key])


def test_teacher_sees_its_own_input_normalisation():
    from types import SimpleNamespace

    from edgeseg.training.distillation import on_own_normalisation

    class Echo(torch.nn.Module):  # a "teacher" that returns what it was fed
        def __init__(self, mean, std):
            super().__init__()
            self.cfg = SimpleNamespace(pixel_mean=mean, pixel_std=std)
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return x

    raw = torch.rand(2, 3, 4, 4) * 255
    imagenet = ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    lite = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
    student = SimpleNamespace(pixel_mean=imagenet[0], pixel_std=imagenet[1])
    as_student = (raw - torch.tensor(imagenet[0]).view(1, 3, 1, 1)) / torch.tensor(imagenet[1]).view(1, 3, 1, 1)
    same = Echo(*imagenet)
    assert on_own_normalisation(same, student) is same
    seen = on_own_normalisation(Echo(*lite), student)(as_student)
    torch.testing.assert_close(seen, raw / 127.5 - 1.0)
