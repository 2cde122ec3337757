"""benchmarks/postprocess_time.py end to end on a small ONNX export: every frame x task row is
timed, and an implementation compared against itself differs in nothing."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "postprocess_time.py"


def _script():
    spec = importlib.util.spec_from_file_location("postprocess_time_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_postprocess_time_rows_and_self_comparison(monkeypatch, tmp_path, shipped_exports, shipped_data):
    onnx = shipped_exports("onnx").path
    out = tmp_path / "pp.json"
    against = ROOT / "edgeseg" / "inference" / "postprocess.py"
    monkeypatch.setattr(sys, "argv", ["postprocess_time.py", "--model", str(onnx), "--data", str(shipped_data),
                                      "--images", "2", "--frames", "160x120", "96x96", "--runs", "1",
                                      "--against", str(against), "--json", str(out)])
    _script().main()
    doc = json.loads(out.read_text())
    assert [(r["frame"], r["tasks"]) for r in doc["rows"]] == [
        (f, t) for f in ("160x120", "96x96") for t in ("panoptic", "instance", "semantic", "panoptic+instance+semantic")]
    assert all(r["this_ms"] > 0 and r["against_ms"] > 0 and r["images"] == 2 for r in doc["rows"])
    # the same code on the same outputs: nothing differs, and the images do hold segments
    assert len(doc["outputs_compared"]) == 4
    for check in doc["outputs_compared"]:
        assert check["panoptic_pixels_differ"] == 0.0 and check["semantic_pixels_differ"] == 0.0
        assert check["instance_mask_pixels_differ"] == 0.0 and check["instance_score_max_diff"] == 0.0
        assert check["instances"][0] == check["instances"][1] > 0
    md = out.with_suffix(".md").read_text()
    assert "| 160x120 | panoptic | " in md and "speed-up" in md and str(onnx) not in doc["command"]
