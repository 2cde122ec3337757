"""DDP through torchrun on CPU (gloo): the same training code, two processes, and the same result
as one process running the same two micro-batches one after another."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import yaml

CONFIG = {
    "model": {"name": "tiny", "backbone": "mobilenetv3_small_100", "pixel_dim": 16, "hidden_dim": 32, "mask_dim": 32,
              "num_queries": 8, "dec_layers": 2, "nheads": 4, "ffn_dim": 64},
    # 64 px crops: masks of 16 x 16 = 256 pixels <= num_points, so loss and matcher use every
    # pixel (no random points); 3 steps of 4 images
    "train": {"image_size": 64, "batch_size": 4, "steps": 3, "warmup_steps": 1, "eval_images": 1,
              "checkpoint_every": 3, "loss": {"num_points": 256}},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(cmd_prefix: list[str], cfg: dict, data, out) -> None:
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump({"model": cfg["model"], "train": dict(cfg["train"], data=str(data))}))
    cmd = cmd_prefix + ["-m", "edgeseg.cli", "train", "--config", str(path), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _params(path):
    from edgeseg.modeling.build import load_model

    model, _ = load_model(path)
    return {k: v.detach() for k, v in model.named_parameters()}  # running BN statistics are buffers: not compared


def _mean_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return sum(float((a[k] - b[k]).abs().sum()) for k in a) / sum(v.numel() for v in a.values())


# Two spawned training processes (about half a minute on 2 cores): the slow run. DDP is for GPU
# machines; the default run covers the single-process trainer (tests/test_training.py).
@pytest.mark.slow
def test_two_processes_train_like_one_process_with_two_micro_batches(tiny_data, tmp_path):
    """Each DDP process runs its half of the batch with its own BatchNorm statistics; one process
    with ``train.accumulate=2`` runs the same halves one after another: same images, same loss
    normaliser, same summed gradient, so the same loss and weights. The control is one process
    with BatchNorm over all 4 images, which is a different computation.

    Not bit-exact: the all-reduce sums gradients in another order, and AdamW's first steps move
    each weight by about lr x sign(gradient), so a few near-zero gradients flip. Measured after 3
    steps: mean |weight difference| 2.5e-5 against 7.2e-4 for the control; loss 40.114 (one
    process) vs 40.081 (DDP) vs 40.381 (control)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())]
    _train(torchrun, CONFIG, tiny_data, tmp_path / "ddp")
    _train([sys.executable], {"model": CONFIG["model"], "train": dict(CONFIG["train"], accumulate=2)}, tiny_data,
           tmp_path / "halves")
    _train([sys.executable], CONFIG, tiny_data, tmp_path / "whole")

    loss = {k: json.loads((tmp_path / k / "log.jsonl").read_text().splitlines()[-1]) for k in ("ddp", "halves", "whole")}
    assert loss["ddp"]["step"] == loss["halves"]["step"] == 3
    loss = {k: v["loss"] for k, v in loss.items()}
    assert abs(loss["ddp"] - loss["halves"]) < 0.25 * abs(loss["whole"] - loss["halves"])

    ddp, halves, whole = (_params(tmp_path / k / "model.pt") for k in ("ddp", "halves", "whole"))
    assert _mean_abs_diff(ddp, halves) < 0.1 * _mean_abs_diff(whole, halves)
    assert _mean_abs_diff(whole, halves) > 1e-4  # the control does differ: the test can tell them apart
