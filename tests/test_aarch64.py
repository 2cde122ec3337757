"""The device kit on aarch64 under qemu emulation (benchmarks/aarch64.py): slow (an arm64 root file
system, pip installs and inference under emulation), needs root and the package registry, so it is
not in the default run: ``python -m pytest -m slow tests/test_aarch64.py``."""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def emulation_ok():
    if platform.machine() != "x86_64":
        pytest.skip("the emulation check runs on an x86_64 host")
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, binfmt_misc)")
    if not shutil.which("debootstrap") and not shutil.which("apt-get"):
        pytest.skip("needs debootstrap and qemu-user-static, or apt-get to install them")


def test_onnx_kit_installs_on_arm64_and_agrees_with_x86(emulation_ok, shipped_data, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "aarch64.py"), "--kits", "rpi-onnx", "jetson", "--imgsz", "128",
           "--val-images", "2", "--data", str(shipped_data), "--artifacts", str(tmp_path / "artifacts"),
           "--work", str(tmp_path / "work"), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads((out / "aarch64.json").read_text())
    kits = {k["kit"]: k for k in doc["kits"]}
    assert kits["rpi-onnx"]["installed"] and not kits["rpi-onnx"]["torch_installed"]
    assert "onnxruntime" in kits["rpi-onnx"]["packages"] and "onnxruntime" in kits["jetson"]["packages"]
    (run,) = [r for r in doc["runs"] if r["kit"] == "rpi-onnx"]
    val = run["compare"]["val"]
    assert val["images"] == 2 and val["segments_a"] > 0  # real segments on both sides, not two empty outputs
    assert val["mean_agreement_pct"] >= 99.5 and run["goal_met"]
    assert abs(run["pq"]["aarch64"]["pq"] - run["pq"]["x86"]["pq"]) <= 0.5
    # the Jetson kit without NVIDIA's wheel: TensorRT asked for -> the message says what to install
    jetson = doc["jetson"]
    assert jetson["profile_jetson_orin_nano"]["exit_code"] != 0
    assert "onnxruntime-gpu" in jetson["profile_jetson_orin_nano"]["message"]
    assert "CPUExecutionProvider" in jetson["default_providers_on_a_jetson"]["providers"]
    assert "no TensorRT or CUDA provider" in jetson["default_providers_on_a_jetson"]["warning"]
