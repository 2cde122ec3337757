"""edgeseg as users install it: a wheel, installed non-editable into fresh virtual environments,
run from a folder outside the checkout, so nothing can be read from the repository by accident.

- device install (``edgeseg[onnx]``, no torch): ``info`` and ``predict`` on an exported model;
  the shipped ``.pt`` is refused with the extra to install;
- full install (the wheel over this environment's dependencies): the shipped student is found
  by name from the wheel's package data, ``info`` and ``predict`` work.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "pem_lite0_512"  # edgeseg.assets.SHIPPED_MODEL, spelled out: the checkout is not imported here


def _run(cmd: list, cwd: Path, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-build-isolation"]  # build with this environment's setuptools: no download
    except ImportError:
        isolation = []
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", out, ROOT], cwd=out)
    wheels = list(out.glob("edgeseg-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A working directory with no edgeseg checkout above it."""
    return tmp_path_factory.mktemp("elsewhere")


def _venv(path: Path) -> Path:
    _run([sys.executable, "-m", "venv", path], cwd=path.parent)
    return path / "bin"


def test_wheel_carries_configs_recipes_and_the_shipped_student(wheel):
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert f"edgeseg/_assets/models/{SHIPPED}.pt" in names
    assert f"edgeseg/_assets/models/{SHIPPED}.yaml" in names
    assert any(n.startswith("edgeseg/_assets/quantize/") and n.endswith(".yaml") for n in names)
    assert "edgeseg/backends/onnxruntime_backend.py" in names and "edgeseg/cli.py" in names


def test_full_install_finds_the_shipped_student_by_name(wheel, outside, shipped_data):
    """The wheel, non-editable, over this environment's torch / runtimes (a ``.pth`` pointing at
    them, so nothing is downloaded): the shipped student by name, from the wheel's package data."""
    bin_dir = _venv(outside / "full")
    purelib = Path(_run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        outside).stdout.strip())
    (purelib / "parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], outside)
    where = _run([bin_dir / "python", "-c", "import edgeseg, edgeseg.assets as a; "
                  "print(edgeseg.__file__); print(a.asset_dir('models'))"], outside).stdout.split()
    assert all(str(purelib) in w for w in where), where  # the installed copy, not the checkout

    info = _run([bin_dir / "edgeseg", "info", SHIPPED], outside).stdout
    assert "format: torch" in info and "input_size: 512" in info and "circle" in info
    image = next((shipped_data / "val").iterdir())
    _run([bin_dir / "edgeseg", "predict", image, "--imgsz", "128", "--out", outside / "pred"], outside)
    doc = json.loads((outside / "pred" / "panoptic.json").read_text())
    assert doc["annotations"][0]["segments_info"], "the shipped student finds segments on a built-in val image"


def test_device_install_runs_an_export_without_torch(wheel, outside, shipped_data, tmp_path):
    """``pip install edgeseg[onnx]``: numpy, OpenCV, PyYAML and ONNX Runtime only."""
    from edgeseg.export import export

    onnx = export(SHIPPED, "onnx", "fp32", imgsz=128, out=tmp_path / "onnx", check=False).path
    bin_dir = _venv(outside / "device")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", f"{wheel}[onnx]"], outside, timeout=900)
    assert _run([bin_dir / "python", "-c", "import torch"], outside, check=False).returncode != 0

    info = _run([bin_dir / "edgeseg", "info", onnx], outside).stdout
    assert "format: onnx" in info and "runtime: onnxruntime" in info and "input_size: 128" in info
    image = next((shipped_data / "val").iterdir())
    _run([bin_dir / "edgeseg", "predict", image, "--weights", onnx, "--out", outside / "dev_pred"], outside)
    doc = json.loads((outside / "dev_pred" / "panoptic.json").read_text())
    assert doc["annotations"][0]["segments_info"]

    refused = _run([bin_dir / "edgeseg", "predict", image, "--out", outside / "none"], outside, check=False)
    assert refused.returncode == 2 and "pip install 'edgeseg[train]'" in refused.stderr
