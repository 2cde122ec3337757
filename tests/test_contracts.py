"""The contracts a user relies on: typed configs, partial threshold overrides, one serving size
for a checkpoint and its export, the shipped student's recorded accuracy, timm backbones by
their feature strides, and ``.pt`` against ``.onnx`` on real photos."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from edgeseg.backends import load
from edgeseg.config import ModelConfig, TrainConfig, apply_overrides, load_config
from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.export.parity import panoptic_agreement
from edgeseg.inference.predictor import Thresholds
from tests.conftest import SHIPPED, env_path

ROOT = Path(__file__).resolve().parents[1]
# Real photos for the deployment check are not part of the repository: EDGESEG_TEST_PHOTOS names
# their folder, and the test skips, with the reason, where it is unset or empty.
PHOTOS = env_path("EDGESEG_TEST_PHOTOS")


# --- typed configs -----------------------------------------------------------------------------

def test_yaml_1_1_exponent_is_a_float_and_wrong_types_name_the_key():
    model, train = ModelConfig(), TrainConfig()
    _, t = apply_overrides(model, train, ["train.lr=1e-3", "train.loss.mask_weight=2"])
    assert t.lr == 0.001 and isinstance(t.lr, float)  # YAML 1.1 reads 1e-3 as the string '1e-3'
    assert t.loss.mask_weight == 2.0 and isinstance(t.loss.mask_weight, float)
    with pytest.raises(ConfigError, match=r"train\.steps: expected int, got float 1\.5"):
        apply_overrides(model, train, ["train.steps=1.5"])
    with pytest.raises(ConfigError, match=r"train\.lr: expected float, got str 'fast'"):
        apply_overrides(model, train, ["train.lr=fast"])
    with pytest.raises(ConfigError, match=r"model\.deformable: expected bool"):
        apply_overrides(model, train, ["model.deformable=3"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nope'\]"):
        apply_overrides(model, train, ["train.nope=1"])


def test_config_file_type_error_names_file_key_and_type(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  num_queries: many\ntrain:\n  scale_range: [0.5, 1.0, 2.0]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: model\.num_queries: expected int, got str 'many'"):
        load_config(path)
    path.write_text("model:\n  num_queries: 50\ntrain:\n  scale_range: [0.5, 1.0, 2.0]\n")
    with pytest.raises(ConfigError, match=r"train\.scale_range: expected 2 values, got 3"):
        load_config(path)


def test_configs_are_frozen_and_round_trip():
    model, train = load_config(ROOT / "models" / f"{SHIPPED}.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        train.lr = 1.0
    again = apply_overrides(model, train, [])
    assert again == (model, train)


# --- thresholds --------------------------------------------------------------------------------

def test_partial_threshold_override_keeps_the_stored_values():
    stored = Thresholds(object_mask_threshold=0.3, overlap_threshold=0.8, mask_threshold=0.5)
    assert stored.merged({"overlap_threshold": 0.7, "object_mask_threshold": None}) == Thresholds(0.3, 0.7, 0.5)
    assert stored.merged(None) is stored
    with pytest.raises(EdgesegError, match="unknown threshold"):
        stored.merged({"conf": 0.5})
    predictor = load(SHIPPED, input_size=128, thresholds={"overlap_threshold": 0.7})
    # the shipped checkpoint's calibrated object threshold survives an --overlap override
    assert predictor.thresholds == Thresholds(_calibrated_object_threshold(), 0.7, 0.5)


def _calibrated_object_threshold() -> float:
    from edgeseg.assets import resolve_weights
    from edgeseg.checkpoint import load_checkpoint

    value = load_checkpoint(resolve_weights(SHIPPED))["calibration"]["object_mask_threshold"]
    assert value != Thresholds().object_mask_threshold  # else the tests below could not tell them apart
    return value


def _spy_on_load(monkeypatch) -> dict:
    """Make ``edgeseg.backends.load`` record the thresholds of the predictor it returns."""
    seen = {}

    def spy(*args, **kwargs):
        predictor = load(*args, **kwargs)
        seen["thresholds"] = predictor.thresholds
        return predictor

    monkeypatch.setattr("edgeseg.backends.load", spy)
    return seen


def test_cli_overlap_flag_alone_keeps_the_calibrated_object_threshold(monkeypatch, shipped_data, tmp_path):
    from edgeseg import cli

    seen = _spy_on_load(monkeypatch)
    image = next((shipped_data / "val").iterdir())
    assert cli.main(["predict", str(image), "--imgsz", "128", "--overlap", "0.7", "--out", str(tmp_path)]) == 0
    assert seen["thresholds"] == Thresholds(_calibrated_object_threshold(), 0.7, 0.5)


def test_instance_score_threshold_reaches_predict_and_the_cli(monkeypatch, shipped_data, tmp_path):
    image = next((shipped_data / "val").iterdir())
    every = load(SHIPPED, input_size=128).predict(str(image), tasks=("instance",))
    count = len(every.instance_scores)  # Mask2Former's top 100 pairs by default, the thing classes' of them
    assert count > 10
    thr = float(np.median(every.instance_scores))
    assert thr > 0
    some = load(SHIPPED, input_size=128, thresholds={"instance_score_threshold": thr}).predict(str(image), tasks=("instance",))
    assert 0 < len(some.instance_scores) < count and some.instance_scores.min() >= thr
    np.testing.assert_allclose(some.instance_scores, every.instance_scores[every.instance_scores >= thr], rtol=1e-6)

    from edgeseg import cli

    seen = _spy_on_load(monkeypatch)
    assert cli.main(["predict", str(image), "--imgsz", "128", "--instance-conf", "0.3", "--out", str(tmp_path)]) == 0
    assert seen["thresholds"] == Thresholds(_calibrated_object_threshold(), 0.8, 0.5, 0.3)


# --- the shipped student ----------------------------------------------------------------------

def test_shipped_student_holds_its_recorded_accuracy(shipped_data):
    """PQ on the first 20 built-in val images at 256 px, against the interval recorded by
    ``python benchmarks/shipped_regression.py``; a change in pre/post-processing, the model
    code or the checkpoint that costs accuracy leaves the interval."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from shipped_regression import measure

    recorded = json.loads((ROOT / "benchmarks" / "results" / "shipped_regression.json").read_text())
    got = measure(shipped_data, recorded["images"], recorded["input_size"])
    assert got["images"] == recorded["images"] == 20
    lo, hi = recorded["pq_ci95"]["all"]
    assert lo <= got["pq"] <= hi, (got, recorded)
    lo, hi = recorded["pq_ci95"]["things"]
    assert lo <= got["pq_things"] <= hi, (got, recorded)
    assert abs(got["pq"] - recorded["pq"]) < 0.5  # same code and weights: the same number, up to float noise


@pytest.fixture(scope="module")
def shipped_onnx_default(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from edgeseg.export import export

    return export(SHIPPED, "onnx", out=tmp_path_factory.mktemp("default") / "onnx", check=False)


def _agreement(a, b) -> float:
    return panoptic_agreement(a.panoptic, {s.id: s.category_id for s in a.segments},
                              b.panoptic, {s.id: s.category_id for s in b.segments})


def test_checkpoint_and_its_default_export_give_the_same_result(shipped_onnx_default, shipped_data):
    """No size given anywhere: the ``.pt`` serves at the size stored with it, which is the size
    its export is made at, so both give the same Result."""
    pt, onnx = load(SHIPPED), load(shipped_onnx_default.path)
    assert pt.input_size == onnx.input_size == 512
    assert (pt.mean, pt.std, pt.thresholds) == (onnx.mean, onnx.std, onnx.thresholds)
    image = next((shipped_data / "val").iterdir())
    a, b = pt.predict(image), onnx.predict(image)
    assert len(a.segments) >= 3 and len(b.segments) == len(a.segments)
    assert _agreement(a, b) > 99.5
    assert a.instance_masks.shape[0] == b.instance_masks.shape[0] > 0  # every task ran by default


def test_checkpoint_and_onnx_agree_on_real_photos(shipped_onnx_default):
    photos = sorted(PHOTOS.glob("*.jpg")) if PHOTOS is not None and PHOTOS.is_dir() else []
    if not photos:
        pytest.skip(f"no real photos at {PHOTOS} (set EDGESEG_TEST_PHOTOS to a folder of .jpg files)")
    pt, onnx = load(SHIPPED), load(shipped_onnx_default.path)
    for photo in photos:
        a, b = pt.predict(photo), onnx.predict(photo)
        assert a.panoptic.shape == b.panoptic.shape and a.panoptic.shape[0] > 100  # the photo's own frame
        # a synthetic-data model finds little on a photo: what it finds must still agree
        assert _agreement(a, b) > 99.0, photo.name
        assert abs(len(a.segments) - len(b.segments)) <= 1, photo.name


# --- backbones ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mobilenetv2_100", "tf_efficientnet_lite0", "mobilenetv3_large_100"])
def test_timm_families_give_the_stride_4_to_32_pyramid(name):
    import torch

    from edgeseg.modeling.backbone import Backbone

    bb = Backbone(name, 128)
    assert bb.strides == [4, 8, 16, 32]
    feats = bb(torch.zeros(1, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert [f.shape[1] for f in feats] == bb.channels


def test_pyramid_levels_come_from_feature_strides():
    from edgeseg.modeling.backbone import pyramid_indices

    assert pyramid_indices("x", [2, 4, 8, 16, 32]) == (1, 2, 3, 4)
    assert pyramid_indices("x", [4, 8, 16, 32]) == (0, 1, 2, 3)
    assert pyramid_indices("x", [2, 4, 4, 8, 16, 16, 32]) == (2, 3, 5, 6)  # the deepest level per stride
    with pytest.raises(ValueError, match="no feature level at stride 32"):
        pyramid_indices("x", [2, 4, 8, 16])


def test_normalisation_travels_with_the_model(tmp_path):
    """A backbone trained on [-1, 1] inputs: its mean / std are in the config, hence in the
    checkpoint and every export's metadata, never ImageNet constants in the exporter."""
    cfg = ModelConfig(pixel_mean=(127.5, 127.5, 127.5), pixel_std=(127.5, 127.5, 127.5))
    from edgeseg.config import model_config_from_dict, to_plain

    again = model_config_from_dict(to_plain(cfg))
    assert again.pixel_mean == (127.5, 127.5, 127.5) and again == cfg
    from edgeseg.export import _metadata

    ckpt = {"model_config": to_plain(cfg), "label_space": {"class_names": ["a"], "isthing": [True]}}
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    meta = _metadata(ckpt, weights, "onnx", "fp32", 256)
    assert meta.mean == [127.5] * 3 and meta.std == [127.5] * 3
    assert np.isclose(meta.mean[0], cfg.pixel_mean[0])
