"""Shared fixtures: the built-in data the shipped student was trained on, a tiny data set and a
tiny student config (CPU, seconds)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from edgeseg.assets import SHIPPED_MODEL  # noqa: E402
from edgeseg.config import LossConfig, ModelConfig, TrainConfig  # noqa: E402
from edgeseg.data.synth import SynthConfig, generate_synthetic  # noqa: E402


def env_path(variable: str, *parts: str) -> Path | None:
    """A file or folder of real data that is not part of the repository, named by ``variable``;
    None when the variable is unset (the tests that need it skip and say which variable)."""
    value = os.environ.get(variable)
    return Path(value, *parts) if value else None


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    cfg = SynthConfig(image_size=64, num_train=8, num_val=3)
    return generate_synthetic(tmp_path_factory.mktemp("data") / "synth", seed=1, config=cfg)


def tiny_model_config(**kw) -> ModelConfig:
    base = dict(name="tiny", backbone="mobilenetv3_small_100", num_classes=13, image_size=64, pixel_dim=16,
                hidden_dim=32, mask_dim=32, num_queries=8, dec_layers=3, nheads=4, ffn_dim=64)
    base.update(kw)
    return ModelConfig(**base)


def tiny_train_config(data: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), image_size=64, batch_size=2, steps=4, warmup_steps=1, checkpoint_every=2,
                loss=LossConfig(num_points=256))
    base.update(kw)
    return TrainConfig(**base)


SHIPPED = SHIPPED_MODEL
SMALL = 128  # the shipped student at a small size: fast, and it still finds segments (PQ about 42)


@pytest.fixture(scope="session")
def shipped_data(tmp_path_factory) -> Path:
    """The first images of the built-in data set exactly as the shipped student saw it (seed 0,
    256 px; every image depends only on (seed, split, index)): 16 train images to calibrate on,
    the first 20 val images, on which it finds segments. Tests that compare runtimes use these, so
    that "the outputs agree" is about real segments, never two empty results."""
    cfg = SynthConfig(image_size=256, num_train=16, num_val=20)
    return generate_synthetic(tmp_path_factory.mktemp("shipped") / "synth", seed=0, config=cfg)


@pytest.fixture(scope="session")
def shipped_exports(tmp_path_factory, shipped_data):
    """``get(format, precision)``: the shipped student exported at :data:`SMALL` with its parity
    check on 8 of ``shipped_data``'s val images, once per run (conversions are the slow part)."""
    from edgeseg.export import export

    root = tmp_path_factory.mktemp("shipped_exports")
    cache: dict = {}

    def get(fmt: str, precision: str = "fp32"):
        if (fmt, precision) not in cache:
            reuse = get(fmt).path if precision == "fp16" else None  # FP16 is derived from the FP32 file
            cache[fmt, precision] = export(SHIPPED, fmt, precision, imgsz=SMALL, out=root / f"{fmt}_{precision}",
                                           data=shipped_data, parity_images=8, fp32_model=reuse)
        return cache[fmt, precision]

    return get


def reuse_session_onnx(monkeypatch, shipped_exports) -> None:
    """Make the ONNX exporter copy the session's export of the shipped student at :data:`SMALL`:
    the tests that use it check what happens around the converter (parity, cleanup, the CLI,
    bench's cache), and the conversion itself is the slow part (tested by ``shipped_exports``'
    users)."""
    import shutil

    from edgeseg.export import to_onnx

    source = shipped_exports("onnx").path  # built (by the real exporter) before the patch

    def copy_session_export(module, example, path, precision, meta, fp32_model=None):
        assert precision == "fp32" and meta.input_size == SMALL
        shutil.copyfile(source, path)
        return {"copied": True}

    monkeypatch.setattr(to_onnx, "export_onnx", copy_session_export)
