"""Export to ONNX / OpenVINO, parity against torch, metadata, atomic output, torch-free loading."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.backends import load
from edgeseg.cli import main
from edgeseg.errors import EdgesegError
from edgeseg.export import ExportError, export
from edgeseg.export.metadata import METADATA_FILE, read_metadata
from edgeseg.export.parity import panoptic_agreement
from edgeseg.training.trainer import train
from tests.conftest import tiny_model_config, tiny_train_config

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

SIZE = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_data) -> Path:
    run = tmp_path_factory.mktemp("export_run")
    train(tiny_model_config(dec_layers=2), tiny_train_config(tiny_data, steps=2), run, progress=False)
    return run / "model.pt"


@pytest.fixture(scope="module")
def onnx_fp32(weights, tiny_data, tmp_path_factory):
    return export(weights, "onnx", "fp32", imgsz=SIZE, out=tmp_path_factory.mktemp("o") / "onnx", data=tiny_data)


def test_onnx_export_carries_metadata_and_passes_parity(onnx_fp32, weights):
    res = onnx_fp32
    folder = res.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["edgeseg.json", "model.onnx", "parity.json"]
    meta = read_metadata(res.path)
    assert meta.input_size == SIZE and meta.format == "onnx" and meta.precision == "fp32"
    assert len(meta.class_names) == 13 and meta.isthing[:8] == [True] * 8
    assert len(meta.source_sha256) == 64
    embedded = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(embedded["edgeseg.class_names"]) == meta.class_names
    assert embedded["edgeseg.input_size"] == str(SIZE)
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["passed"] and parity["mask_agreement"] >= 99.5 and parity["max_abs_mask_logits"] < 1e-3


def test_exported_model_predicts_like_torch(onnx_fp32, weights, tiny_data):
    image = np.asarray(__import__("cv2").imread(str(next((tiny_data / "val").iterdir())))[..., ::-1])
    a = load(weights, input_size=SIZE).predict(image)
    b = load(onnx_fp32.path).predict(image)
    cats_a = {s.id: s.category_id for s in a.segments}
    cats_b = {s.id: s.category_id for s in b.segments}
    assert b.panoptic.shape == image.shape[:2]
    assert panoptic_agreement(a.panoptic, cats_a, b.panoptic, cats_b) > 99.5


@pytest.mark.parametrize("fmt,precision", [("openvino", "fp32"), ("openvino", "fp16"), ("onnx", "fp16"),
                                           ("tflite", "fp32"), ("tflite", "fp16")])
def test_other_formats_and_precisions_pass_parity(weights, tiny_data, tmp_path, fmt, precision):
    if fmt == "tflite":
        pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch (the export extra)")
    res = export(weights, fmt, precision, imgsz=SIZE, out=tmp_path / "m", data=tiny_data)
    assert res.parity["passed"]
    assert read_metadata(res.path).precision == precision
    if fmt == "openvino":
        import openvino as ov

        model = ov.Core().read_model(str(res.path))
        assert json.loads(model.get_rt_info(["edgeseg", "class_names"]).astype(str)) == res.metadata.class_names
        assert (res.path.with_suffix(".bin")).is_file()
        assert list(model.inputs[0].get_partial_shape().to_shape()) == [1, 3, SIZE, SIZE]
    if fmt == "tflite":
        assert res.metadata.extra["xnnpack_partitions"] >= 1  # recorded for the parity table


def test_failed_parity_leaves_nothing_behind(weights, tiny_data, tmp_path, monkeypatch):
    from edgeseg.export import parity

    monkeypatch.setitem(parity.TOLERANCES, "fp32", (100.1, 0.0))  # impossible
    with pytest.raises(ExportError, match="parity"):
        export(weights, "onnx", "fp32", imgsz=SIZE, out=tmp_path / "never", data=tiny_data)
    assert list(tmp_path.iterdir()) == []  # no output folder, no temp folder


def test_bad_export_requests_are_refused_clearly(weights, tiny_data, onnx_fp32, tmp_path):
    with pytest.raises(ExportError, match="unknown export format"):
        export(weights, "coreml", imgsz=SIZE, out=tmp_path / "x", data=tiny_data)
    with pytest.raises(ExportError, match="multiple of 32"):
        export(weights, "onnx", imgsz=50, out=tmp_path / "x", data=tiny_data)
    with pytest.raises(ExportError, match="exists"):
        export(weights, "onnx", imgsz=SIZE, out=onnx_fp32.path.parent, data=tiny_data)
    with pytest.raises(ExportError, match="--data"):
        export(weights, "onnx", imgsz=SIZE, out=tmp_path / "x", data=tmp_path / "no_such_data")
    with pytest.raises(EdgesegError, match="fp32 or fp16"):
        export(weights, "onnx", "int4", imgsz=SIZE, out=tmp_path / "x", data=tiny_data)
    assert not (tmp_path / "x").exists()


def test_artifact_without_metadata_or_with_wrong_input_is_refused(onnx_fp32, tmp_path):
    lone = tmp_path / "model.onnx"
    lone.write_bytes(onnx_fp32.path.read_bytes())
    with pytest.raises(EdgesegError, match=METADATA_FILE):
        load(lone)
    predictor = load(onnx_fp32.path)
    with pytest.raises(EdgesegError, match=r"float32 \[1, 3, 64, 64\]"):
        predictor.adapter.forward(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(EdgesegError, match="fixed input size"):
        load(onnx_fp32.path, input_size=128)


def test_absent_hardware_fails_with_a_clear_message(onnx_fp32, tmp_path, weights, tiny_data):
    """TensorRT / CUDA providers and OpenVINO GPU/NPU are not on this machine: clear errors."""
    import onnxruntime as ort
    import openvino as ov

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is present here; the absent-hardware path cannot be exercised")
    with pytest.raises(EdgesegError, match="TensorrtExecutionProvider.*not available"):
        load(onnx_fp32.path, providers=["TensorrtExecutionProvider"])
    if "NPU" in ov.Core().available_devices:
        pytest.skip("an NPU is present here")
    xml = export(weights, "openvino", "fp32", imgsz=SIZE, out=tmp_path / "ov", data=tiny_data, check=False).path
    with pytest.raises(EdgesegError, match="'NPU' not present"):
        load(xml, device="NPU")


def test_corrupt_model_file_is_refused(onnx_fp32, tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "edgeseg.json").write_text((onnx_fp32.path.parent / "edgeseg.json").read_text())
    (folder / "model.onnx").write_bytes(onnx_fp32.path.read_bytes()[:5000])  # truncated
    with pytest.raises(EdgesegError, match="could not load"):
        load(folder / "model.onnx")
    with pytest.raises(EdgesegError, match="unsupported model suffix"):
        (folder / "model.bin2").write_bytes(b"x")
        load(folder / "model.bin2")


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_runtime_path_never_imports_torch(onnx_fp32, weights, tiny_data, tmp_path, fmt):
    """The device install has no torch: loading and predicting an export must not need it."""
    if fmt == "onnx":
        model = onnx_fp32.path
    else:
        if fmt == "tflite":
            pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch")
        model = export(weights, fmt, "fp32", imgsz=SIZE, out=tmp_path / fmt, data=tiny_data, check=False).path
    image = next((tiny_data / "val").iterdir())
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "from edgeseg.backends import load\n"
        f"r = load({str(model)!r}).predict({str(image)!r})\n"
        "print(r.panoptic.shape)\n"
        "from edgeseg.cli import main\n"  # and the CLI, as a device user runs it
        f"assert main(['predict', {str(image)!r}, '--weights', {str(model)!r}, '--out', {str(tmp_path / 'pred')!r}]) == 0\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(64, 64)" in out.stdout
    assert (tmp_path / "pred" / "panoptic.json").is_file()


def test_export_cli(weights, tiny_data, tmp_path, capsys):
    out = tmp_path / "cli_onnx"
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--imgsz", str(SIZE),
                 "--out", str(out), "--data", str(tiny_data)]) == 0
    assert "parity (fp32" in capsys.readouterr().out
    assert (out / "model.onnx").is_file()
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--imgsz", "50",
                 "--out", str(tmp_path / "bad"), "--data", str(tiny_data)]) == 2
