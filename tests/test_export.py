"""Export of the shipped student to ONNX / OpenVINO / TFLite at a small size, parity against torch
on built-in val images where it finds segments, metadata, atomic output, torch-free loading."""
from __future__ import annotations

import json
import warnings
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg.backends import load
from edgeseg.cli import main
from edgeseg.errors import EdgesegError
from edgeseg.export import ExportCheckError, ExportError, export
from edgeseg.export.metadata import METADATA_FILE, read_metadata
from edgeseg.export.parity import TOLERANCES, panoptic_agreement
from edgeseg.assets import resolve_weights
from edgeseg.checkpoint import load_checkpoint
from tests.conftest import SHIPPED, SMALL, reuse_session_onnx

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


def _tflite():
    pytest.importorskip("litert_torch", reason="TFLite export needs litert-torch (the export extra)")


def _check_real_parity(parity: dict, precision: str) -> None:
    """The parity report compared real segments, and held the tolerance for its precision."""
    assert parity["images"] == 8
    assert parity["segments_reference"] >= 20, "the shipped student finds segments on these images"
    assert parity["segments_artifact"] >= 20
    min_agreement, max_pq = TOLERANCES[precision]
    assert parity["passed"] and parity["mask_agreement"] >= min_agreement
    assert abs(parity["pq_reference"] - parity["pq_artifact"]) <= max_pq
    assert parity["pq_reference"] > 20  # PQ 36.9 on these 8 images at 128 px (measured)


def test_onnx_export_carries_metadata_and_passes_parity(shipped_exports):
    res = shipped_exports("onnx")
    folder = res.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["edgeseg.json", "model.onnx", "parity.json"]
    meta = read_metadata(res.path)
    assert meta.input_size == SMALL and meta.format == "onnx" and meta.precision == "fp32"
    assert len(meta.class_names) == 13 and meta.isthing[:8] == [True] * 8
    calibrated = load_checkpoint(resolve_weights(SHIPPED))["calibration"]["object_mask_threshold"]
    assert len(meta.source_sha256) == 64 and meta.thresholds["object_mask_threshold"] == calibrated
    assert meta.output_tensors == {"class_logits": "class_logits", "mask_logits": "mask_logits"}
    embedded = {p.key: p.value for p in onnx.load(str(res.path)).metadata_props}
    assert json.loads(embedded["edgeseg.class_names"]) == meta.class_names
    assert embedded["edgeseg.input_size"] == str(SMALL)
    # the plain keys an Ultralytics ONNX export carries
    import ast

    assert ast.literal_eval(embedded["names"]) == dict(enumerate(meta.class_names))
    assert embedded["task"] == "panoptic" and ast.literal_eval(embedded["imgsz"]) == [SMALL, SMALL]
    parity = json.loads((folder / "parity.json").read_text())
    _check_real_parity(parity, "fp32")
    assert parity["max_abs_mask_logits"] < 1e-2 and parity["mask_agreement"] == 100.0


def test_exported_model_predicts_like_torch(shipped_exports, shipped_data):
    image = next((shipped_data / "val").iterdir())
    a = load(SHIPPED, input_size=SMALL).predict(image)
    b = load(shipped_exports("onnx").path).predict(image)
    assert len(a.segments) >= 3 and len(b.segments) == len(a.segments)
    folder = load(shipped_exports("onnx").path.parent).predict(image)  # the export folder loads like its file
    np.testing.assert_array_equal(folder.panoptic, b.panoptic)
    assert b.panoptic.shape == a.panoptic.shape == (256, 256)
    cats_a = {s.id: s.category_id for s in a.segments}
    cats_b = {s.id: s.category_id for s in b.segments}
    assert panoptic_agreement(a.panoptic, cats_a, b.panoptic, cats_b) > 99.5


@pytest.mark.parametrize("fmt,precision", [("openvino", "fp32"), ("openvino", "fp16"), ("onnx", "fp16"),
                                           ("tflite", "fp32"), ("tflite", "fp16")])
def test_other_formats_and_precisions_pass_parity(shipped_exports, fmt, precision):
    if fmt == "tflite":
        _tflite()
    res = shipped_exports(fmt, precision)
    _check_real_parity(res.parity, precision)
    meta = read_metadata(res.path)
    assert meta.precision == precision and set(meta.output_tensors) == {"class_logits", "mask_logits"}
    if fmt == "openvino":
        import openvino as ov

        model = ov.Core().read_model(str(res.path))
        assert json.loads(model.get_rt_info(["edgeseg", "class_names"]).astype(str)) == res.metadata.class_names
        assert res.path.with_suffix(".bin").is_file()
        assert list(model.inputs[0].get_partial_shape().to_shape()) == [1, 3, SMALL, SMALL]
    if precision == "fp16":  # derived from the FP32 file, not converted again (same graph: parity above)
        assert res.metadata.extra["from_fp32"] == shipped_exports(fmt).path.name
    if fmt == "tflite":
        # the XNNPACK rewrite (edgeseg/export/xnnpack.py): the whole graph in one delegate partition
        assert res.metadata.extra["xnnpack_partitions"] == 1
        # the same contract inside the flatbuffer's metadata table
        from edgeseg.export.to_tflite import read_tflite_metadata

        assert read_tflite_metadata(res.path) == json.loads((res.path.parent / "edgeseg.json").read_text())


def test_openvino_ir_model_info_is_read_by_model_api(shipped_exports, shipped_data):
    """OpenVINO model_api reads the IR's ``model_info`` (labels, mean / scale, channel order,
    resize, thresholds), picks a wrapper by its ``model_type``, and its own preprocessing then
    feeds the network exactly what edgeseg's does."""
    pytest.importorskip("model_api")
    import cv2
    from model_api.models import Model
    from model_api.models.image_model import ImageModel
    from model_api.models.parameters import ParameterRegistry

    from edgeseg.data.image_io import read_image
    from edgeseg.export.metadata import MODEL_API_TYPE

    class RawOutputs(ImageModel):
        __model__ = MODEL_API_TYPE

        @classmethod
        def parameters(cls):
            params = super().parameters()
            params.update(ParameterRegistry.merge(ParameterRegistry.LABELS, ParameterRegistry.CONFIDENCE_THRESHOLD))
            return params

        def postprocess(self, outputs, meta):
            return outputs

    res = shipped_exports("openvino")
    wrapper = Model.create_model(str(res.path), device="CPU")
    assert isinstance(wrapper, RawOutputs)
    meta = res.metadata
    assert wrapper.params.labels == [n.replace(" ", "_") for n in meta.class_names]
    assert wrapper.params.mean_values == meta.mean and wrapper.params.scale_values == meta.std
    assert wrapper.params.reverse_input_channels and wrapper.params.resize_type == "fit_to_window"
    assert wrapper.params.confidence_threshold == pytest.approx(meta.thresholds["object_mask_threshold"])
    image = cv2.resize(read_image(next((shipped_data / "val").iterdir())), (SMALL, SMALL), interpolation=cv2.INTER_AREA)
    theirs = wrapper(np.ascontiguousarray(image[:, :, ::-1]))  # model_api takes OpenCV's BGR
    predictor = load(res.path)
    ours = predictor.infer(predictor.preprocess(image)[0])
    assert np.abs(ours["class_logits"]).max() > 1.0  # a real output, not zeros
    for key in ("class_logits", "mask_logits"):
        np.testing.assert_allclose(theirs[key], ours[key], atol=2e-3 * np.abs(ours[key]).max())


def test_failed_parity_leaves_nothing_behind(shipped_data, shipped_exports, tmp_path, monkeypatch):
    from edgeseg.export import parity

    reuse_session_onnx(monkeypatch, shipped_exports)
    monkeypatch.setitem(parity.TOLERANCES, "fp32", (100.1, 0.0))  # impossible
    with pytest.raises(ExportCheckError, match="parity") as failed:
        export(SHIPPED, "onnx", "fp32", imgsz=SMALL, out=tmp_path / "never", data=shipped_data, parity_images=1)
    assert isinstance(failed.value, ExportError) and failed.value.report["min_agreement"] == 100.1
    assert list(tmp_path.iterdir()) == []  # no output folder, no temp folder


def test_bad_export_requests_are_refused_clearly(shipped_data, shipped_exports, tmp_path):
    with pytest.raises(EdgesegError, match="unknown format 'coreml'"):
        export(SHIPPED, "coreml", imgsz=SMALL, out=tmp_path / "x", data=shipped_data)
    with pytest.raises(EdgesegError, match="did you mean 'onnx'"):
        export(SHIPPED, "onx", imgsz=SMALL, out=tmp_path / "x", data=shipped_data)
    with pytest.raises(ExportError, match="multiple of 32"):
        export(SHIPPED, "onnx", imgsz=50, out=tmp_path / "x", data=shipped_data)
    with pytest.raises(ExportError, match="exists"):
        export(SHIPPED, "onnx", imgsz=SMALL, out=shipped_exports("onnx").path.parent, data=shipped_data)
    with pytest.raises(ExportError, match="--data"):
        export(SHIPPED, "onnx", imgsz=SMALL, out=tmp_path / "x", data=tmp_path / "no_such_data")
    with pytest.raises(EdgesegError, match="precisions"):
        export(SHIPPED, "onnx", "int4", imgsz=SMALL, out=tmp_path / "x", data=shipped_data)
    with pytest.raises(ExportError, match="quantiz"):
        export(SHIPPED, "onnx", "int8", imgsz=SMALL, out=tmp_path / "x", data=shipped_data)
    assert not (tmp_path / "x").exists()


def test_artifact_without_metadata_or_with_wrong_input_is_refused(shipped_exports, tmp_path):
    path = shipped_exports("onnx").path
    lone = tmp_path / "model.onnx"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(EdgesegError, match=METADATA_FILE):
        load(lone)
    (tmp_path / "model.tflite").write_bytes(b"")
    with pytest.raises(EdgesegError, match="expected exactly one model file.*found model.onnx, model.tflite"):
        load(tmp_path)
    predictor = load(path)
    with pytest.raises(EdgesegError, match=rf"float32 \[1, 3, {SMALL}, {SMALL}\]"):
        predictor.infer(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(EdgesegError, match=f"exported at {SMALL} px.*input size is fixed"):
        load(path, input_size=256)
    assert load(path, input_size=SMALL).input_size == SMALL  # its own size is accepted


def test_outputs_are_found_by_the_names_in_the_metadata(shipped_exports, tmp_path):
    """The adapter reads outputs by the tensor names the exporter recorded, never by position:
    a metadata file naming a tensor the model does not have is a clear error."""
    import shutil

    folder = tmp_path / "renamed"
    shutil.copytree(shipped_exports("onnx").path.parent, folder)
    meta = json.loads((folder / METADATA_FILE).read_text())
    swapped = dict(meta, output_tensors={"class_logits": "mask_logits", "mask_logits": "class_logits"})
    (folder / METADATA_FILE).write_text(json.dumps(swapped))
    out = load(folder / "model.onnx").infer(np.zeros((1, 3, SMALL, SMALL), np.float32))
    assert out["class_logits"].ndim == 4  # what the metadata says, even when it is wrong
    (folder / METADATA_FILE).write_text(json.dumps(dict(meta, output_tensors={"class_logits": "logits",
                                                                              "mask_logits": "mask_logits"})))
    with pytest.raises(EdgesegError, match="no output tensor 'logits'"):
        load(folder / "model.onnx").infer(np.zeros((1, 3, SMALL, SMALL), np.float32))


def test_absent_hardware_fails_with_a_clear_message(shipped_exports):
    import onnxruntime as ort
    import openvino as ov

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is present here; the absent-hardware path cannot be exercised")
    with pytest.raises(EdgesegError, match="TensorrtExecutionProvider.*not available.*onnxruntime-gpu wheel for your JetPack"):
        load(shipped_exports("onnx").path, providers=["TensorrtExecutionProvider"])
    if "NPU" in ov.Core().available_devices:
        pytest.skip("an NPU is present here")
    with pytest.raises(EdgesegError, match="'NPU' not present"):
        load(shipped_exports("openvino").path, device="NPU")


def test_jetson_without_a_gpu_onnxruntime_warns_and_runs_on_the_cpu(shipped_exports, tmp_path, monkeypatch):
    import onnxruntime as ort

    from edgeseg.backends import onnxruntime_backend as ortb

    if set(ortb.GPU_PROVIDERS) & set(ort.get_available_providers()):
        pytest.skip("this onnxruntime has a GPU provider")
    release = tmp_path / "nv_tegra_release"
    monkeypatch.setattr(ortb, "JETSON_RELEASE_FILE", release)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ortb.MissingProviderWarning)
        load(shipped_exports("onnx").path)  # not a Jetson: CPU without a word
    release.write_text("# R36 (release), REVISION: 4.0\n")
    with pytest.warns(ortb.MissingProviderWarning, match="Jetson .* no TensorRT or CUDA provider.*onnxruntime-gpu"):
        predictor = load(shipped_exports("onnx").path)
    assert predictor.adapter.providers == ["CPUExecutionProvider"]


def test_corrupt_model_file_is_refused(shipped_exports, tmp_path):
    src = shipped_exports("onnx").path
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "edgeseg.json").write_text((src.parent / "edgeseg.json").read_text())
    (folder / "model.onnx").write_bytes(src.read_bytes()[:5000])  # truncated
    with pytest.raises(EdgesegError, match="could not load"):
        load(folder / "model.onnx")
    (folder / "model.bin2").write_bytes(b"x")
    with pytest.raises(EdgesegError, match="unsupported model suffix"):
        load(folder / "model.bin2")


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_runtime_path_never_imports_torch(shipped_exports, shipped_data, tmp_path, fmt):
    """The device install has no torch: loading and predicting an export must not need it."""
    if fmt == "tflite":
        _tflite()
    model = shipped_exports(fmt).path
    image = next((shipped_data / "val").iterdir())
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now raises ImportError
        "from edgeseg.backends import load\n"
        f"r = load({str(model)!r}).predict({str(image)!r})\n"
        "print(r.panoptic.shape, len(r.segments))\n"
        "from edgeseg.cli import main\n"  # and the CLI, as a device user runs it
        f"assert main(['predict', {str(image)!r}, '--weights', {str(model)!r}, '--out', {str(tmp_path / 'pred')!r}]) == 0\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    shape, segments = out.stdout.splitlines()[0].split(")")
    assert shape == "(256, 256" and int(segments) >= 3
    assert (tmp_path / "pred" / "panoptic.json").is_file()


def test_export_cli_defaults_to_the_stored_size_and_reports_parity(shipped_data, shipped_exports, tmp_path, capsys,
                                                                   monkeypatch):
    reuse_session_onnx(monkeypatch, shipped_exports)
    out = tmp_path / "cli_onnx"
    assert main(["export", "--format", "onnx", "--imgsz", str(SMALL), "--out", str(out), "--data", str(shipped_data),
                 "--parity-images", "2"]) == 0
    assert (out / "model.onnx").is_file() and json.loads((out / "parity.json").read_text())["segments_reference"] > 0
    assert main(["export", "--format", "onnx", "--imgsz", "50", "--out", str(tmp_path / "bad"),
                 "--data", str(shipped_data)]) == 2
    assert "multiple of 32" in capsys.readouterr().err


def test_device_predict_script_writes_coco_panoptic_like_edgeseg_predict(shipped_exports, shipped_data, tmp_path):
    """runtimes/predict.py on a folder (the device kit's entry point, into an output folder that does
    not exist yet) writes overlays and a COCO-panoptic set equal to ``edgeseg predict``'s."""
    import shutil

    from edgeseg.evaluation.agreement import compare_prediction_sets
    from edgeseg.inference.predict_files import predict_files

    images = tmp_path / "images"
    images.mkdir()
    for f in sorted((shipped_data / "val").glob("*.png"))[:3]:
        shutil.copy2(f, images / f.name)
    model = shipped_exports("onnx").path
    script = Path(__file__).resolve().parents[1] / "runtimes" / "predict.py"
    proc = subprocess.run([sys.executable, str(script), str(model), str(images), "--out", str(tmp_path / "new" / "overlays"),
                           "--coco", str(tmp_path / "new" / "coco"), "--threads", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "new" / "overlays").glob("*_overlay.png"))) == 3
    device = json.loads((tmp_path / "new" / "coco" / "panoptic.json").read_text())
    assert [im["id"] for im in device["images"]] == sorted(int(f.stem) for f in images.iterdir())
    assert [im["file_name"] for im in device["images"]] == sorted(f.name for f in images.iterdir())
    assert sum(len(a["segments_info"]) for a in device["annotations"]) > 0

    list(predict_files(load(model, threads=1), [images], tmp_path / "cli"))
    same = compare_prediction_sets(tmp_path / "new" / "coco" / "panoptic.json", tmp_path / "cli" / "panoptic.json")
    assert (same["images"], same["min_agreement_pct"], same["equal_segment_counts"]) == (3, 100.0, 3)
