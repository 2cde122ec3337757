"""Benchmark, tuner, device profiles, shipped student, stripped checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL, reuse_session_onnx, tiny_model_config, tiny_train_config
from edgeseg.benchmark import BenchConfig, bench, mark_pareto, markdown_table, select, student_vs_teacher, write_report
from edgeseg.benchmark.tune import TuneError, load_rows
from edgeseg.assets import SHIPPED_MODEL, asset_dir, resolve_weights
from edgeseg.checkpoint import load_checkpoint
from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.profiles import PROFILES, get_profile
from edgeseg.training.trainer import train


def _row(runtime="onnxruntime", precision="fp32", fps=10.0, pq=50.0, threads=2, imgsz=512, role="student", **kw):
    fmt = {"onnxruntime": "onnx", "litert": "tflite"}.get(runtime, runtime)
    return {"model": "m", "role": role, "weights": "w.pt", "runtime": runtime, "format": fmt, "precision": precision,
            "imgsz": imgsz, "threads": threads, "status": "passed", "reason": "", "fps": fps, "fps_1280x720": fps,
            "forward_ms": 500.0 / fps, "pq": pq, "file_mb": 10.0, **kw}


def test_pareto_front_marks_only_undominated_rows():
    rows = [_row(fps=10, pq=50), _row(fps=20, pq=40), _row(fps=5, pq=45), _row(fps=20, pq=39),
            dict(_row(fps=100, pq=90), status="export failed", fps=None, pq=None)]
    mark_pareto(rows)
    assert [r["pareto"] for r in rows] == [True, True, False, False, False]


def test_student_vs_teacher_compares_within_one_runtime_and_precision():
    rows = [_row("openvino", "int8", fps=1.0, pq=40.0, role="teacher"), _row("openvino", "fp32", fps=0.5, pq=40.0, role="teacher"),
            _row("openvino", "int8", fps=20.0, pq=37.0), _row("openvino", "fp32", fps=6.0, pq=37.0),
            _row("onnxruntime", fps=99.0, pq=45.0),  # faster, but no teacher row in its runtime
            _row("openvino", "int8", fps=99.0, pq=37.0, threads=1),  # other thread count
            dict(_row("torch", fps=0.2, pq=40.0, role="teacher"), status="exported, check failed")]
    by = {(c["runtime"], c["precision"]): c for c in student_vs_teacher(rows)}
    assert set(by) == {("openvino", "int8"), ("openvino", "fp32")}  # no pair across runtimes or failed rows
    c = by[("openvino", "int8")]
    assert c["speedup"] == 20.0 and c["forward_speedup"] == 20.0 and c["pq_share_pct"] == 92.5 and c["met"]
    assert by[("openvino", "fp32")]["speedup"] == 12.0 and not by[("openvino", "fp32")]["met"]  # too slow
    rows[2]["pq"] = 34.0  # 85 % of the teacher's PQ: below the 90 % goal
    assert not {c["precision"]: c for c in student_vs_teacher(rows)}["int8"]["met"]


def test_report_files_table_and_plot(tmp_path):
    rows = [_row(fps=10, pq=50, pq_things=20.0, pq_stuff=90.0), dict(_row("litert", "int8"), status="export failed",
                                                                     reason="converter | crashed", fps=None, pq=None)]
    mark_pareto(rows)
    doc = {"rows": rows, "machine": {"cpu": "x", "cores": 2, "isa": []}, "student_vs_teacher": []}
    paths = write_report(doc, tmp_path)
    assert json.loads(paths["json"].read_text())["rows"][0]["pareto"] is True
    md = paths["md"].read_text()
    assert "**yes**" in md and "| export failed: converter / crashed |" in md
    assert paths["png"].stat().st_size > 10_000 and paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob(".*"))  # no temp files left

    # a run where every row failed still writes its JSON and table (they say why), and no plot
    failed = [dict(_row(), status="exported, check failed", reason="evaluation failed: boom", fps=None, pq=None)]
    mark_pareto(failed)
    paths = write_report({**doc, "rows": failed}, tmp_path / "all_failed")
    assert "png" not in paths and "evaluation failed: boom" in paths["json"].read_text()
    assert not (tmp_path / "all_failed" / "pareto.png").exists()


def test_tune_picks_best_pq_within_budget_and_respects_profile():
    rows = [_row("litert", "fp16", fps=31, pq=40, threads=2, imgsz=384),
            _row("litert", "fp32", fps=29, pq=48, threads=2, imgsz=384),
            _row("litert", "int8", fps=45, pq=38, threads=2, imgsz=256),
            _row("openvino", "int8", fps=90, pq=60, threads=2, imgsz=512),  # not an rpi5 runtime
            _row("litert", "fp16", fps=60, pq=99, threads=1, imgsz=384, role="teacher")]
    res = select(rows, 30, get_profile("rpi5"))
    assert (res.choice["precision"], res.choice["imgsz"]) == ("fp16", 384)
    assert [r["precision"] for r in res.runners_up] == ["int8"]
    assert res.near_misses[0]["pq"] == 48
    assert any("4 threads" in n for n in res.notes)  # rpi5 runs 4, only 2 were recorded
    assert select(rows, 30).choice["runtime"] == "openvino"  # no profile: every runtime
    with pytest.raises(TuneError, match="fastest measured is litert int8 at 256px"):
        select(rows, 100, get_profile("rpi5"))
    with pytest.raises(TuneError, match="--fps must be > 0"):
        select(rows, 0)


def test_tune_compares_fps_on_one_frame_kind():
    # bench rows time a 1280x720 camera frame and the val image; scaling rows only the val image,
    # which is several times cheaper: mixed, the budget must be read on the val frame for all
    bench_row = _row("openvino", "int8", fps=2.0, fps_val=10.0, pq=69.0, imgsz=512)
    scaling_row = _row("openvino", "fp32", fps=14.0, fps_val=14.0, pq=67.0, imgsz=256, fps_1280x720=None)
    res = select([bench_row, scaling_row], 9)
    assert res.choice["imgsz"] == 512 and res.choice["fps"] == 10.0  # 2 FPS on 1280x720 would miss 9
    assert any("val frame" in n for n in res.notes)
    # all rows with the headline frame: compared on it, no note
    res = select([bench_row, _row("openvino", "fp32", fps=3.0, fps_val=7.0, pq=60.0)], 2.5)
    assert res.choice["fps"] == 3.0 and res.choice["pq"] == 60.0 and not any("frame" in n for n in res.notes)
    with pytest.raises(TuneError, match="no frame in common"):
        select([_row(fps_1280x720=None)], 1)


def test_tune_reads_results_files_and_names_bad_ones(tmp_path):
    good = tmp_path / "bench.json"
    good.write_text(json.dumps({"rows": [_row()], "machine": {"cpu": "x"}}))
    rows, machines = load_rows([good])
    assert rows[0]["source"] == str(good) and machines == [{"cpu": "x"}]
    with pytest.raises(TuneError, match="not found"):
        load_rows([tmp_path / "missing.json"])
    (tmp_path / "other.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(TuneError, match="other.json: not an edgeseg benchmark"):
        load_rows([tmp_path / "other.json"])


def test_profiles_presets_and_yaml(tmp_path):
    assert set(PROFILES) == {"rpi5", "jetson-orin-nano", "android", "intel-cpu"}
    assert get_profile("jetson-orin-nano").load_kwargs()["providers"][0] == "TensorrtExecutionProvider"
    with pytest.raises(ConfigError, match="unknown device profile 'pi'.*rpi5"):
        get_profile("pi")
    f = tmp_path / "board.yaml"
    f.write_text("format: onnx\nprecision: int8\nthreads: 8\nimgsz: 320\ncandidates: [[onnx, int8]]\nsizes: [320]\n")
    p = get_profile(f)
    assert (p.name, p.candidates, p.sizes) == ("board", (("onnx", "int8"),), (320,))
    f.write_text("format: onnx\nprecision: fp32\nthreads: 1\nimgsz: 300\n")
    with pytest.raises(ConfigError, match="300 must be a multiple of 32"):
        get_profile(f)
    f.write_text("format: onnx\nprecision: fp32\nthreads: 1\nimgsz: 320\ngpu: yes\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) \\['gpu'\\]"):
        get_profile(f)


def test_shipped_student_loads_by_name_and_predicts():
    from edgeseg.backends import load

    path = resolve_weights(SHIPPED_MODEL.replace("_", "-"))
    assert path == asset_dir("models") / f"{SHIPPED_MODEL}.pt" and path.stat().st_size < 20e6  # FP16 weights
    calibrated = load_checkpoint(path)["calibration"]["object_mask_threshold"]
    predictor = load(SHIPPED_MODEL, input_size=128)
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    result = predictor.predict(image)
    assert result.panoptic.shape == (96, 128) and predictor.thresholds.object_mask_threshold == calibrated
    with pytest.raises(ConfigError, match=f"no shipped model named 'nope'.*{SHIPPED_MODEL}"):
        resolve_weights("nope")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory, tiny_data) -> Path:
    run = tmp_path_factory.mktemp("bench_run")
    train(tiny_model_config(dec_layers=2), tiny_train_config(tiny_data, steps=2), run, progress=False)
    return run / "model.pt"


def test_strip_checkpoint_halves_and_keeps_outputs(tiny_weights, tmp_path):
    import torch

    from edgeseg.checkpoint import load_checkpoint, strip_checkpoint
    from edgeseg.modeling.build import load_model

    r = strip_checkpoint(tiny_weights, tmp_path / "s.pt")
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert "optimizer" not in ckpt and "history" not in ckpt and ckpt["stored_dtype"] == "float16"
    assert r["bytes_out"] < r["bytes_in"]
    (a, _), (b, _) = load_model(tiny_weights), load_model(tmp_path / "s.pt")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        oa, ob = a(x), b(x)
    assert torch.allclose(oa["pred_masks"], ob["pred_masks"], atol=0.1)
    assert (tmp_path / "s.pt").stat().st_mode & 0o044  # an ordinary readable file, not mkstemp's 0600


def test_bench_times_predict_on_camera_frames_and_records_failures(shipped_data, shipped_exports, tmp_path,
                                                                   monkeypatch):
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.evaluate import evaluate

    reuse_session_onnx(monkeypatch, shipped_exports)  # bench's own export step, parity and cache still run
    # onnx:int8 with 2 calibration images cannot be built: it must become a row with its reason
    cfg = BenchConfig(weights=(SHIPPED_MODEL,), combos=(("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8")),
                      threads=(1,), imgsz=(SMALL,), data=str(shipped_data), val_images=4, runs=6, warmup=1,
                      parity_images=2, calibration_images=2, work=str(tmp_path / "work"), progress=False)
    doc = bench(cfg)
    rows = {(r["format"], r["precision"]): r for r in doc["rows"]}
    assert rows[("onnx", "int8")]["status"] == "export failed" and "below the minimum" in rows[("onnx", "int8")]["reason"]
    assert doc["timed"]["frames"] == {"val": [256, 256], "1280x720": [1280, 720], "640x480": [640, 480]}
    assert "Predictor.predict" in doc["timed"]["call"]
    # the PQ a row reports is exactly what evaluate() gives for the same model and images
    expected = evaluate(load(SHIPPED_MODEL, input_size=128), CocoPanoptic(shipped_data, "val"), max_images=4,
                        progress=False)
    for key in (("torch", "fp32"), ("onnx", "fp32")):
        r = rows[key]
        assert r["timed_runs"] == 6 and [r["runs_val"], r["runs_1280x720"], r["runs_640x480"]] == [2, 2, 2]
        assert r["fps"] == r["fps_1280x720"] and r["frame_ms"] == r["frame_1280x720_ms"]  # the headline frame
        assert r["val_images"] == 4 and r["peak_rss_mb"] > 50 and r["gmacs"] > 0
        assert r["pq"] == pytest.approx(expected["pq"], abs=0.3 if key[0] == "onnx" else 0.01)
        assert r["pq"] > 20
        lo, hi = r["pq_ci95"]
        assert lo <= r["pq"] <= hi and hi - lo > 0  # four different images: a real interval
    assert rows[("onnx", "fp32")]["status"] == "passed" and rows[("onnx", "fp32")]["file_mb"] > 10
    # second run reuses the cached export
    again = bench(cfg)
    assert [r["cached"] for r in again["rows"] if r["format"] == "onnx"] == [True, False]  # the failed row is retried
    assert "| onnxruntime | fp32 | 128 | 1 | passed |" in markdown_table(doc)
    # an FP32 artifact is reused only for the same checkpoint, format and size
    from edgeseg.assets import resolve_weights
    from edgeseg.export import ExportError, check_fp32_artifact

    onnx = Path(rows[("onnx", "fp32")]["artifact"])
    weights = resolve_weights(SHIPPED_MODEL)
    assert check_fp32_artifact(onnx, weights, "onnx", 128) == onnx
    with pytest.raises(ExportError, match="cannot be reused.*needed \\('onnx', 'fp32', 96\\)"):
        check_fp32_artifact(onnx, weights, "onnx", 96)
    # a cached export is reused only when this edgeseg made it (another one's exporters may differ)
    from edgeseg.benchmark import artifacts
    from edgeseg.checkpoint import file_sha256

    sha = file_sha256(weights, 64)
    assert artifacts._cached(onnx.parent, sha) is not None
    monkeypatch.setattr(artifacts, "__version__", "0.0.0-another")
    assert artifacts._cached(onnx.parent, sha) is None


def test_bench_config_rejects_bad_input(tmp_path):
    with pytest.raises(EdgesegError, match="onnx supports precisions .* got .int4."):
        BenchConfig(combos=(("onnx", "int4"),), data=str(tmp_path)).validate()
    with pytest.raises(EdgesegError, match="torch supports precisions \\('fp32',\\), got 'fp16'"):
        BenchConfig(combos=(("torch", "fp16"),), data=str(tmp_path)).validate()
    with pytest.raises(EdgesegError, match="input size 500"):
        BenchConfig(imgsz=(500,), data=str(tmp_path)).validate()
    with pytest.raises(EdgesegError, match="data set .*nowhere not found"):
        BenchConfig(data=str(tmp_path / "nowhere")).validate()
    with pytest.raises(EdgesegError, match="--teacher-combos needs --teacher"):
        BenchConfig(teacher_combos=(("onnx", "fp32"),), data=str(tmp_path)).validate()
    with pytest.raises(EdgesegError, match="tflite supports precisions .* got .int4."):
        BenchConfig(teacher="t.pt", teacher_combos=(("tflite", "int4"),), data=str(tmp_path)).validate()


def test_teacher_runs_its_own_combos_after_the_students():
    from edgeseg.benchmark.bench import bench_jobs

    students = [Path("a.pt"), Path("b.pt")]
    grid = (("onnx", "fp32"), ("tflite", "int8"))
    same = bench_jobs(BenchConfig(combos=grid, imgsz=(256, 512), teacher="t.pt"), students)
    assert [j for j in same if j[0] == Path("t.pt")] == [(Path("t.pt"), f, p, s) for s in (256, 512) for f, p in grid]
    assert same[:4] == [(Path("a.pt"), f, p, s) for s in (256, 512) for f, p in grid]
    own = bench_jobs(BenchConfig(combos=grid, imgsz=(512,), teacher="t.pt", teacher_combos=(("onnx", "fp32"),)), students)
    assert own == [(Path("a.pt"), "onnx", "fp32", 512), (Path("a.pt"), "tflite", "int8", 512),
                   (Path("b.pt"), "onnx", "fp32", 512), (Path("b.pt"), "tflite", "int8", 512),
                   (Path("t.pt"), "onnx", "fp32", 512)]
    assert bench_jobs(BenchConfig(combos=grid, imgsz=(512,)), students) == own[:4]


def test_results_record_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    from edgeseg.benchmark.bench import _shown

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    inside = tmp_path / "models" / "m.pt"
    assert _shown(inside) == str(Path("models") / "m.pt")
    outside = tmp_path.parent / "elsewhere.pt"
    assert _shown(outside) == str(outside)


def test_artifact_that_converts_but_fails_parity_is_a_check_failed_row(tiny_weights, tiny_data, tmp_path, monkeypatch):
    """Ultralytics-style status: a converter crash is 'export failed', a file that converted but
    disagrees with torch is 'exported, check failed' with the measured parity, and nothing of it
    is left in the cache."""
    from edgeseg.benchmark.artifacts import CHECK_FAILED, EXPORT_FAILED, PASSED, build_artifact
    from edgeseg.export import parity

    ok = build_artifact(tiny_weights, "onnx", "fp32", 64, tmp_path / "work", tiny_data, parity_images=2)
    assert ok.status == PASSED and ok.ok and ok.parity["mask_agreement"] >= 99.5
    monkeypatch.setitem(parity.TOLERANCES, "fp16", (100.5, 0.0))  # an agreement no export can reach
    refused = build_artifact(tiny_weights, "onnx", "fp16", 64, tmp_path / "work", tiny_data, parity_images=2,
                             fp32_model=ok.path)  # derived from the FP32 file, as bench does
    assert refused.status == CHECK_FAILED and not refused.ok and refused.path is None
    assert "failed the parity check" in refused.reason and refused.parity["min_agreement"] == 100.5
    # the recorded reason names the model file, not where it lies on this machine
    assert Path(tiny_weights).name in refused.reason and str(tiny_weights) not in refused.reason
    assert not list((tmp_path / "work").glob("*/onnx_fp16_64*"))
    broken = build_artifact(tiny_weights, "torch", "int8", 64, tmp_path / "work", tiny_data)
    assert broken.status == EXPORT_FAILED and "FP32 only" in broken.reason
