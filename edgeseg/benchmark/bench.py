"""``edgeseg bench``: FPS against PQ for every (model, format, precision, runtime, threads, size).

One call, one process, one machine state:
1. build or reuse each artifact (export with parity / quantize with its PQ check; failures
   become rows with their reason);
2. score each artifact on the val split through its runtime (PQ / SQ / RQ, things / stuff, mIoU);
3. peak RSS of each artifact in a fresh process;
4. per thread count, load every artifact and time them *interleaved*: warm-up, then ``runs``
   rounds of (preprocess -> forward -> postprocess), median and p90 of the forward and of the
   whole frame; FPS is frames per second of the whole frame, what a device delivers;
5. GMACs from the model config, and compute efficiency: 2 x GMACs / forward latency against
   this CPU's measured single-core FP32 GEMM peak x threads.
The document (rows, machine, the student-vs-teacher comparison) is written as JSON, a markdown
table and a Pareto PNG by :mod:`edgeseg.benchmark.report`.
"""
from __future__ import annotations

import itertools
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.assets import SHIPPED_MODEL
from edgeseg.benchmark.artifacts import CHECK_FAILED, Artifact, build_artifact
from edgeseg.benchmark.measure import (HEADLINE_FRAME, machine_description, peak_rss_mb, sgemm_peak_gflops_per_core,
                                       summarize_ms, time_interleaved)
from edgeseg.errors import EdgesegError
from edgeseg.formats import RUNTIME_OF, check_combo, model_bytes

logger = logging.getLogger(__name__)

# The default grid: the student in torch FP32 (the training framework, the baseline a user has)
# and every exported runtime at every precision.
DEFAULT_COMBOS: tuple[tuple[str, str], ...] = (
    ("torch", "fp32"),
    ("onnx", "fp32"), ("onnx", "fp16"), ("onnx", "int8"),
    ("openvino", "fp32"), ("openvino", "fp16"), ("openvino", "int8"),
    ("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8"),
)
# --quick: the baseline and one fast row per runtime.
QUICK_COMBOS: tuple[tuple[str, str], ...] = (("torch", "fp32"), ("onnx", "fp32"), ("openvino", "int8"),
                                             ("tflite", "fp16"))


@dataclass(frozen=True)
class BenchConfig:
    """What to measure. ``weights``: student checkpoints (paths or shipped model names)."""

    weights: tuple[str, ...] = (SHIPPED_MODEL,)
    combos: tuple[tuple[str, str], ...] = DEFAULT_COMBOS
    threads: tuple[int, ...] = (1, 2)
    imgsz: tuple[int, ...] = (512,)
    teacher: str | None = None  # a teacher checkpoint: exported, scored and timed beside the students
    # the teacher's combos (default: the students'); only pairs both have get a student-vs-teacher ratio.
    # A subset keeps a slow teacher row (e.g. LiteRT INT8, hours of calibration) out of one run.
    teacher_combos: tuple[tuple[str, str], ...] | None = None
    data: str = "data/synth"
    val_images: int = 0  # 0 = the whole val split
    runs: int = 50
    warmup: int = 5
    parity_images: int = 8
    calibration_images: int | None = None  # INT8 calibration subset (default: the recipe's)
    quant_validation_images: int | None = None  # INT8 PQ-check images (default: the recipe's)
    work: str = "runs/bench"  # artifact cache
    memory: bool = True  # peak RSS per artifact (a child process each)
    progress: bool = True
    # photos to make the camera-sized frames from (default: the first val image, resized)
    frames: tuple[str, ...] = ()

    def validate(self) -> "BenchConfig":
        if not self.weights:
            raise EdgesegError("bench needs at least one student checkpoint (--weights)")
        for fmt, prec in self.combos + (self.teacher_combos or ()):
            check_combo(fmt, prec)
        if self.teacher_combos is not None and not self.teacher:
            raise EdgesegError("bench: --teacher-combos needs --teacher")
        for s in self.imgsz:
            if int(s) % 32 or int(s) < 64:
                raise EdgesegError(f"bench: input size {s} must be a multiple of 32 and >= 64")
        if any(t < 1 for t in self.threads):
            raise EdgesegError(f"bench: thread counts must be >= 1, got {self.threads}")
        if self.runs < 1:
            raise EdgesegError(f"bench: --runs must be >= 1, got {self.runs}")
        if not Path(self.data).is_dir():
            raise EdgesegError(f"bench: data set {self.data} not found (generate it: edgeseg data synth --out {self.data})")
        return self


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _model_name(weights: Path) -> tuple[str, str, dict]:
    from edgeseg.checkpoint import load_checkpoint

    ckpt = load_checkpoint(weights)
    cfg = ckpt["model_config"]
    role = "teacher" if cfg.get("arch") == "mask2former" else "student"
    return str(cfg.get("name", weights.stem)), role, cfg


def _gmacs(cfg: dict, imgsz: int) -> float | None:
    try:
        from edgeseg.config import model_config_from_dict
        from edgeseg.modeling.complexity import model_info

        return float(model_info(model_config_from_dict(cfg), imgsz)["gmacs"])
    except ImportError:  # device install without torch
        return None



def bench_jobs(cfg: BenchConfig, students: list[Path]) -> list[tuple[Path, str, str, int]]:
    """(checkpoint, format, precision, size) of every row, in report order: each student in
    ``combos``, then the teacher in ``teacher_combos`` (default the same grid, so that FPS ratios
    are read within one runtime and precision)."""
    grid = [(w, cfg.combos) for w in students]
    if cfg.teacher:
        grid.append((Path(cfg.teacher), cfg.teacher_combos if cfg.teacher_combos is not None else cfg.combos))
    return [(w, fmt, prec, s) for w, combos in grid for s in cfg.imgsz for fmt, prec in combos]


def _load(art: Artifact, threads: int):
    from edgeseg.backends import load

    if art.format == "torch":
        return load(art.path, input_size=art.imgsz, threads=threads)
    return load(art.path, threads=threads)


# Camera-sized frames (width, height) every row is timed on, besides the val images: the cost of
# a frame a device actually gets, letterbox resize and full-resolution upsampling included.
CAMERA_FRAMES: tuple[tuple[int, int], ...] = ((1280, 720), (640, 480))


def bench_frames(dataset, frames: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The images each row is timed on: the first val image (``val``), and a camera frame per
    :data:`CAMERA_FRAMES` size, made from user photos (``frames``, resized to that size) or,
    without them, from the val image resized: a camera's frame size, the data's content."""
    import cv2

    from edgeseg.data.image_io import read_image

    val = dataset.load_raw(0).image
    sources = [read_image(f) for f in frames] or [val]
    out = {"val": val}
    for i, (w, h) in enumerate(CAMERA_FRAMES):
        src = sources[i % len(sources)]
        out[f"{w}x{h}"] = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA if src.shape[1] > w else cv2.INTER_LINEAR)
    return out


def _frame_step(predictor, frames: dict[str, np.ndarray]):
    """One timed call of exactly ``Predictor.predict`` with its defaults (every task), on the next
    frame in turn: the time a user's ``predict`` costs. The network share comes from the
    predictor's own split timing of the same call."""
    names = list(frames)
    calls = itertools.count()

    def step() -> dict[str, float]:
        name = names[next(calls) % len(names)]
        predictor.predict(frames[name])
        t = predictor.last_timing
        return {"forward": t["infer"] / 1e3, f"frame_{name}": t["total"] / 1e3}

    return step


def _accuracy(art: Artifact, threads: int, dataset, val_images: int) -> dict[str, Any]:
    from edgeseg.evaluation.evaluate import evaluate

    m = evaluate(_load(art, threads), dataset, max_images=val_images, progress=False)
    # the 95 % bootstrap intervals say which PQ gaps between rows the val split can resolve
    ci = {f"{key}_ci95": m["pq_ci95"][part] for key, part in (("pq", "all"), ("pq_things", "things"), ("pq_stuff", "stuff"))}
    return {k: round(float(m[k]), 2) for k in ("pq", "sq", "rq", "pq_things", "pq_stuff", "miou")} | ci | {"val_images": m["images"]}


def _shown(path) -> str:
    """A path as the results record it: relative to the working directory when inside it (a
    results file must not carry the measuring machine's folders), else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def bench(cfg: BenchConfig) -> dict[str, Any]:
    """Run the benchmark; returns the document ``report.write_report`` writes (rows + summary).

    On shared cores, start Python with ``OMP_WAIT_POLICY=PASSIVE`` (the ``edgeseg`` command does):
    OpenMP's spin-waiting made 2-thread torch rows 4-7x slower."""
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.assets import resolve_weights

    cfg.validate()
    started = time.perf_counter()
    students = [resolve_weights(w) for w in cfg.weights]
    for w in students + ([Path(cfg.teacher)] if cfg.teacher else []):
        if not Path(w).is_file():
            raise EdgesegError(f"bench: checkpoint not found: {w}")
    dataset = CocoPanoptic(cfg.data, "val")
    n_val = len(dataset) if cfg.val_images <= 0 else min(cfg.val_images, len(dataset))

    jobs = bench_jobs(cfg, students)
    order = {job: i for i, job in enumerate(jobs)}  # the rows' order in the report

    # 1. artifacts
    artifacts: list[Artifact] = []
    fp32_built: dict[tuple, Path] = {}  # FP32 exports, reused by INT8 and FP16 of the same model
    jobs.sort(key=lambda j: j[2] != "fp32")  # FP32 first, so they can be reused
    with _progress(len(jobs), "export", cfg.progress) as bar:
        for w, fmt, prec, s in jobs:
            bar.set_postfix_str(f"{w.stem} {fmt} {prec} {s}")
            art = build_artifact(w, fmt, prec, s, cfg.work, cfg.data, cfg.parity_images, cfg.calibration_images,
                                 cfg.quant_validation_images, fp32_model=fp32_built.get((w, fmt, s)))
            if art.ok and prec == "fp32" and fmt != "torch":
                fp32_built[(w, fmt, s)] = art.path
            artifacts.append(art)
            bar.update()
    artifacts.sort(key=lambda a: order.get((a.weights, a.format, a.precision, a.imgsz), len(order)))
    ok = [a for a in artifacts if a.ok]
    info = {w: _model_name(w) for w in {a.weights for a in artifacts}}
    gmacs = {(a.weights, a.imgsz): None for a in artifacts}
    for key in gmacs:
        gmacs[key] = _gmacs(info[key[0]][2], key[1])

    # 2. accuracy and 3. memory, once per artifact
    accuracy: dict[int, dict] = {}
    memory: dict[int, float | None] = {}
    with _progress(len(ok), f"PQ on {n_val} val images", cfg.progress) as bar:
        for a in ok:
            bar.set_postfix_str(f"{a.weights.stem} {a.format} {a.precision} {a.imgsz}")
            try:
                accuracy[id(a)] = _accuracy(a, max(cfg.threads), dataset, n_val)
            except Exception as exc:  # noqa: BLE001 - a runtime that loads but fails to run is a row
                a.status, a.reason = CHECK_FAILED, f"evaluation failed: {type(exc).__name__}: {exc}"[:400]
            bar.update()
    ok = [a for a in ok if a.ok]
    if cfg.memory:
        with _progress(len(ok), "peak RSS", cfg.progress) as bar:
            for a in ok:
                memory[id(a)] = peak_rss_mb(a.path, 1, a.imgsz if a.format == "torch" else None)
                bar.update()

    # 4. latency, interleaved, per thread count
    frames = bench_frames(dataset, cfg.frames)
    timings: dict[tuple[int, int], dict] = {}
    torch = None
    if any(a.format == "torch" for a in ok):
        import torch  # only for torch rows: the device install benchmarks its runtime without it

    for threads in cfg.threads:
        if torch is not None:
            torch.set_num_threads(threads)
        steps = {}
        for a in ok:
            steps[id(a)] = _frame_step(_load(a, threads), frames)
        with _progress(cfg.warmup + cfg.runs, f"timing {threads} thread(s), {len(steps)} models", cfg.progress) as bar:
            times = time_interleaved(steps, cfg.runs, cfg.warmup, on_round=lambda i: bar.update())
        for key, split in times.items():
            timings[(key, threads)] = {name: summarize_ms(v) for name, v in split.items()}
        del steps

    peak_core = sgemm_peak_gflops_per_core()
    rows = []
    for a in artifacts:
        name, role, _cfg = info[a.weights]
        base = {"model": name, "role": role, "weights": _shown(a.weights), "format": a.format,
                "runtime": RUNTIME_OF[a.format], "precision": a.precision, "imgsz": a.imgsz,
                "status": a.status, "reason": a.reason, "cached": a.cached, "build_seconds": a.build_seconds,
                "artifact": _shown(a.path) if a.path else None,
                "file_mb": round(model_bytes(a.path) / 1e6, 2) if a.ok and a.path else None,
                "gmacs": gmacs[(a.weights, a.imgsz)],
                "parity": {k: a.parity.get(k) for k in ("images", "mask_agreement", "pq_reference", "pq_artifact")}
                if a.parity else None}
        for threads in cfg.threads:
            row = dict(base, threads=threads)
            t = timings.get((id(a), threads))
            if a.ok and t:
                fwd = t["forward"]
                row.update(forward_ms=fwd["median_ms"], forward_p90_ms=fwd["p90_ms"], fps_forward=round(1000.0 / fwd["median_ms"], 2),
                           timed_runs=fwd["runs"])
                for name in frames:
                    f = t[f"frame_{name}"]
                    row.update({f"frame_{name}_ms": f["median_ms"], f"frame_{name}_p90_ms": f["p90_ms"],
                                f"fps_{name}": round(1000.0 / f["median_ms"], 2), f"runs_{name}": f["runs"]})
                # the headline: predict() with its defaults on a 1280x720 camera frame
                row.update(frame_ms=row[f"frame_{HEADLINE_FRAME}_ms"], frame_p90_ms=row[f"frame_{HEADLINE_FRAME}_p90_ms"],
                           fps=row[f"fps_{HEADLINE_FRAME}"], peak_rss_mb=memory.get(id(a)), **accuracy.get(id(a), {}))
                if row["gmacs"] and peak_core:
                    achieved = 2 * row["gmacs"] / (fwd["median_ms"] / 1000.0)
                    row.update(gflops=round(achieved, 1), efficiency_pct=round(100 * achieved / (peak_core * threads), 1))
            rows.append(row)
    doc = {
        "command": "edgeseg bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None,
        "config": asdict(cfg), "timed": {"call": "Predictor.predict(frame) with its defaults (tasks: all)",
                                          "frames": {k: list(v.shape[:2][::-1]) for k, v in frames.items()},
                                          "headline": HEADLINE_FRAME},
        "machine": machine_description() | {"sgemm_gflops_per_core": peak_core},
        "rows": rows, "seconds": round(time.perf_counter() - started, 1),
    }
    from edgeseg.benchmark.report import mark_pareto, student_vs_teacher

    mark_pareto(rows)
    doc["student_vs_teacher"] = student_vs_teacher(rows)
    return doc
