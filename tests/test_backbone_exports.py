"""The pretrained-backbone student configs export to every format with parity.

EfficientNet-Lite0 and MobileNetV3-Small (TF) are TF-origin networks with TF "same" padding
(asymmetric, computed from the input size), MobileNetV2 is built with ``pad_type="same"`` to
take the TF-converted ImageNet weights: the padding is what an exporter most often gets wrong.
The weights do not change the export path, so the students here are random-init (no weight
file needed) at a small size; thresholds are lowered so that every image has segments to
compare (a parity check on empty outputs would prove nothing).
"""
from __future__ import annotations

import dataclasses

import pytest

from edgeseg.assets import resolve_config
from edgeseg.checkpoint import save_checkpoint
from edgeseg.config import load_config
from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.modeling.pem import build_pem
from edgeseg.training.trainer import label_space_of

SIZE = 128
# the shipped config in the default run, the others in the slow run (see below)
CONFIGS = ["pem_lite0_512", pytest.param("pem_mnv2_512", marks=pytest.mark.slow),
           pytest.param("pem_mnv3s_tf_512", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=CONFIGS)
def student(request, tiny_data, tmp_path_factory):
    import torch

    model_cfg, _ = load_config(resolve_config(request.param))
    labels = label_space_of(CocoPanoptic(tiny_data, "train"))
    model_cfg = dataclasses.replace(model_cfg, backbone_weights=None, num_classes=labels.num_classes, image_size=SIZE)
    torch.manual_seed(0)
    model = build_pem(model_cfg)
    path = tmp_path_factory.mktemp(request.param) / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_config": dataclasses.asdict(model_cfg),
                           "label_space": dataclasses.asdict(labels),
                           "train_config": {"data": str(tiny_data), "val_split": "val"},
                           "thresholds": {"object_mask_threshold": 0.05, "overlap_threshold": 0.3, "mask_threshold": 0.5}})
    return request.param, path


# Every (config, format) pair, 35-90 s each on 2 cores, in the slow run: all nine passed when the
# configs were added. The default run exports the shipped student itself (same config, trained
# weights) to every format in tests/test_export.py.
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_pretrained_backbone_configs_export_with_parity(student, fmt, tmp_path):
    from edgeseg.export import export

    name, weights = student
    result = export(weights, fmt, "fp32", imgsz=SIZE, out=tmp_path / fmt, parity_images=3)
    report = result.parity
    assert report is not None and report["passed"], (name, fmt, report)
    assert report["segments_reference"] > 0 and report["segments_artifact"] > 0, (name, fmt, report)
    assert report["max_abs_mask_logits"] < 1e-2, (name, fmt, report)

