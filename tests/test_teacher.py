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
    from edgeseg.export import ExportError, export

    with pytest.raises(ExportError, match="teacher"):
        export(tmp_path / "teacher" / "model.pt", format="onnx", out=tmp_path / "t_onnx", imgsz=64, check=False)
    assert not (tmp_path / "t_onnx").exists()

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
