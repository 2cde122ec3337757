"""End to end through the CLI, as a user runs it: data -> train -> eval -> predict -> pq -> info."""
from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import yaml

from edgeseg.cli import main
from edgeseg.evaluation.panoptic_quality import pq_compute


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "synth"
    assert main(["data", "synth", "--out", str(data), "--seed", "2", "--image-size", "64",
                 "--num-train", "6", "--num-val", "3"]) == 0
    cfg = {"model": {"name": "tiny", "backbone": "mobilenetv3_small_100", "pixel_dim": 16, "hidden_dim": 32,
                     "mask_dim": 32, "num_queries": 8, "dec_layers": 2, "nheads": 4, "ffn_dim": 64, "image_size": 64},
           "train": {"image_size": 64, "batch_size": 2, "steps": 2, "warmup_steps": 1, "loss": {"num_points": 256}}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run = root / "run"
    assert main(["train", "--config", str(root / "tiny.yaml"), "--out", str(run), "--data", str(data)]) == 0
    return root, data, run


def test_data_stats_cli(trained, capsys):
    _, data, _ = trained
    assert main(["data", "stats", str(data), "--split", "val"]) == 0
    assert "instances" in capsys.readouterr().out


def test_train_writes_run_directory(trained):
    _, _, run = trained
    for name in ("model.pt", "last.pt", "config.yaml", "log.jsonl", "metrics.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"pq", "pq_things", "pq_stuff", "miou", "panoptic"} <= set(metrics)


def test_eval_cli_writes_json(trained, tmp_path, capsys):
    _, data, run = trained
    out = tmp_path / "m.json"
    assert main(["eval", "--weights", str(run / "model.pt"), "--data", str(data), "--json", str(out), "--conf", "0.3"]) == 0
    assert "PQ" in capsys.readouterr().out
    assert json.loads(out.read_text())["images"] == 3


def test_predict_then_pq_scores_the_predictions_against_ground_truth(trained, tmp_path):
    _, data, run = trained
    out = tmp_path / "pred"
    assert main(["predict", str(data / "val"), "--weights", str(run / "model.pt"), "--out", str(out), "--conf", "0.0"]) == 0
    assert len(list(out.glob("*_overlay.png"))) == 3
    doc = json.loads((out / "panoptic.json").read_text())
    assert {a["image_id"] for a in doc["annotations"]} == {0, 1, 2}
    overlay = cv2.imread(str(out / "000000_overlay.png"))
    assert overlay.shape == (64, 64, 3)
    # the same files score through panopticapi's contract
    summary = pq_compute(data / "annotations" / "panoptic_val.json", data / "annotations" / "panoptic_val",
                         out / "panoptic.json", out / "panoptic")
    # ... and give exactly what evaluate() computes in memory through the same predictor
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.evaluate import evaluate

    expected = evaluate(load(run / "model.pt", thresholds={"object_mask_threshold": 0.0}), CocoPanoptic(data, "val"),
                        progress=False)
    assert summary["all"]["pq"] == pytest.approx(expected["pq"], abs=1e-6)
    assert summary["things"]["pq"] == pytest.approx(expected["pq_things"], abs=1e-6)
    assert main(["pq", str(data / "annotations" / "panoptic_val.json"), str(data / "annotations" / "panoptic_val"),
                 str(out / "panoptic.json"), str(out / "panoptic")]) == 0


def test_predict_converts_grayscale_with_a_warning(trained, tmp_path):
    _, _, run = trained
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((40, 50), 128, np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["predict", str(gray), "--weights", str(run / "model.pt"), "--out", str(tmp_path / "o")]) == 0
    assert any("gray.png" in str(w.message) for w in caught)
    assert cv2.imread(str(tmp_path / "o" / "gray_overlay.png")).shape == (40, 50, 3)


def test_bad_inputs_give_clear_errors_and_exit_code_2(trained, tmp_path, capsys):
    _, data, run = trained
    assert main(["predict", str(tmp_path / "missing.jpg"), "--weights", str(run / "model.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "missing.jpg" in capsys.readouterr().err
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(["predict", str(broken), "--weights", str(run / "model.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "broken.png" in capsys.readouterr().err
    bad_ckpt = tmp_path / "bad.pt"
    bad_ckpt.write_bytes((run / "model.pt").read_bytes()[:1000])
    assert main(["eval", "--weights", str(bad_ckpt), "--data", str(data)]) == 2
    assert "bad.pt" in capsys.readouterr().err
    assert main(["predict", str(data / "val" / "000000.png"), "--weights", str(tmp_path / "model.onnx")]) == 2
    assert "model file not found" in capsys.readouterr().err
    (tmp_path / "net.caffemodel").write_bytes(b"x")
    assert main(["predict", str(data / "val" / "000000.png"), "--weights", str(tmp_path / "net.caffemodel")]) == 2
    assert "suffix" in capsys.readouterr().err
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("model:\n  hiden_dim: 3\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "hiden_dim" in capsys.readouterr().err


def test_info_cli(capsys):
    assert main(["info", "--config", "models/pem_mnv3s_384.yaml", "--imgsz", "128"]) == 0
    out = capsys.readouterr().out
    assert "gmacs" in out and "params_m" in out
