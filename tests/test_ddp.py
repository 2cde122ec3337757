"""DDP through torchrun on CPU (gloo): the same training code, two processes."""
from __future__ import annotations

import socket
import subprocess
import sys

import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_train_and_checkpoint(tiny_data, tmp_path):
    cfg = {"model": {"name": "tiny", "backbone": "mobilenetv3_small_100", "pixel_dim": 16, "hidden_dim": 32,
                     "mask_dim": 32, "num_queries": 8, "dec_layers": 2, "nheads": 4, "ffn_dim": 64},
           "train": {"data": str(tiny_data), "image_size": 64, "batch_size": 4, "steps": 2, "warmup_steps": 1,
                     "eval_images": 1, "loss": {"num_points": 256}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "edgeseg.cli", "train", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "model.pt").is_file()
