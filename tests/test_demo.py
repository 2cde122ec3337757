"""``edgeseg demo --quick`` end to end (the README's main job on a tiny setting), then ``tune`` on
its recorded rows with a custom device profile, exporting the choice."""
from __future__ import annotations

import json

import pytest

from edgeseg.assets import SHIPPED_MODEL
from edgeseg.cli import main


def test_demo_quick_then_tune(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    for name in ("report.md", "bench.json", "bench.md", "pareto.png"):
        assert (out / name).is_file(), name
    doc = json.loads((out / "bench.json").read_text())
    rows = {(r["format"], r["precision"]): r for r in doc["rows"]}
    assert sorted(rows) == [("onnx", "fp32"), ("openvino", "int8"), ("torch", "fp32")]
    for key in (("torch", "fp32"), ("onnx", "fp32")):
        assert rows[key]["status"] == "passed" and rows[key]["fps"] > 0, key
        assert rows[key]["pq"] > 10, key  # the shipped student finds segments on the tiny built-in images
    assert abs(rows[("onnx", "fp32")]["pq"] - rows[("torch", "fp32")]["pq"]) <= 0.3  # the FP32 parity budget
    for r in doc["rows"]:  # every row is measured or says why not
        assert r["fps"] if r["status"] == "passed" else r["reason"]
    assert doc["command"] == "edgeseg demo --quick"
    assert any(r["pareto"] for r in doc["rows"])
    report = (out / "report.md").read_text()
    assert "| onnxruntime | fp32 | 128 | 1 | passed |" in report and "overlays/" in report
    assert len(list((out / "overlays").glob("*.png"))) == 1

    profile = tmp_path / "board.yaml"
    profile.write_text("format: onnx\nprecision: fp32\nthreads: 1\nimgsz: 128\ncandidates: [[onnx, fp32]]\n"
                       "sizes: [128]\n")
    capsys.readouterr()
    # a budget every machine meets: this checks the choice and its export, not the speed
    assert main(["tune", "--fps", "0.01", "--profile", str(profile), "--results", str(out / "bench.json"),
                 "--data", str(out / "data"), "--out", str(tmp_path / "tuned"), "--json", str(tmp_path / "c.json")]) == 0
    printed = capsys.readouterr().out
    assert f"choice:     {SHIPPED_MODEL} onnxruntime fp32 128px 1t" in printed
    assert (tmp_path / "tuned" / "model.onnx").is_file() and (tmp_path / "tuned" / "edgeseg.json").is_file()
    assert json.loads((tmp_path / "c.json").read_text())["choice"]["format"] == "onnx"
    # a budget nothing meets is an error that names the fastest configuration
    assert main(["tune", "--fps", "100000", "--results", str(out / "bench.json"), "--no-export"]) == 2


# About 50 s on 2 cores, in the slow run: its parts run in the default one (the teacher with the
# student's trainer in test_teacher.py, distillation steps in test_teacher.py / test_unlabelled.py);
# this is the orchestration of ``demo --from-scratch``.
@pytest.mark.slow
def test_from_scratch_trains_teacher_then_distilled_student(tiny_data, tmp_path):
    """``demo --from-scratch``'s training half at a few steps: the teacher, then a student distilled
    from it (the KD weights are on) and calibrated."""
    from dataclasses import replace

    from edgeseg.demo import QUICK, train_from_scratch
    from edgeseg.checkpoint import load_checkpoint

    settings = replace(QUICK, val_images=2)
    student, teacher = train_from_scratch(tiny_data, tmp_path, settings)
    t, s = load_checkpoint(teacher), load_checkpoint(student)
    assert t["model_config"]["arch"] == "mask2former" and t["step"] == settings.teacher_steps
    assert s["train_config"]["kd"]["teacher"] == str(teacher) and s["step"] == settings.student_steps
    from edgeseg.assets import SHIPPED_MODEL, resolve_config
    from edgeseg.config import load_config

    # the student is the shipped model's config (its backbone, its pretrained weights)
    assert "calibration" in s and s["model_config"]["backbone"] == load_config(resolve_config(SHIPPED_MODEL))[0].backbone
