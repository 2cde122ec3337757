"""``edgeseg demo``: the whole product in one command, on the shipped student and the built-in data.

1. the built-in data set (generated if missing);
2. the student: the trained one under ``models/`` (``--from-scratch``: train the Mask2Former
   teacher, distil the student from it and calibrate it first);
3. ``bench``: export to ONNX / OpenVINO / TFLite in FP32 / FP16, INT8 with NNCF / ONNX Runtime /
   ai-edge-quantizer, parity / PQ-drop check of each, PQ on val and interleaved latency of every
   row (+ the teacher's rows in the same runtimes when there is one);
4. a report folder: ``report.md`` (the table, the teacher comparison), ``bench.json``,
   ``pareto.png``, and ``overlays/`` with the same images through several runtimes side by side.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from edgeseg.assets import SHIPPED_MODEL
from edgeseg.benchmark.bench import QUICK_COMBOS, BenchConfig, bench
from edgeseg.benchmark.report import markdown_table, row_passed, write_report
from edgeseg.errors import EdgesegError



# The demo's rows: torch, and every runtime in FP32 and INT8, TFLite also in FP16 (a weight cast,
# seconds). Left to `edgeseg bench`, measured so (a fresh demo at 512 on a 2-core AVX-512 VNNI
# machine took 14.3 min, 5.8 of them TFLite's full-integer INT8): TFLite INT8 (PT2E calibrates
# 300 images in torch eager), ONNX and OpenVINO FP16 (FP32 speed on CPUs without FP16 math).
DEMO_COMBOS: tuple[tuple[str, str], ...] = (("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"),
                                            ("openvino", "fp32"), ("openvino", "int8"),
                                            ("tflite", "fp32"), ("tflite", "fp16"))


@dataclass(frozen=True)
class DemoSettings:
    """The demo's knobs: the full run (<= 15 min on 2 CPU cores with the cache empty, AVX2-only
    CPUs included: about 1.8x the time of an AVX-512 VNNI one) or ``quick``."""

    combos: tuple[tuple[str, str], ...] = DEMO_COMBOS
    # the size the shipped student and its INT8 recipes were made for: at 384 (measured, a fresh
    # demo) the 512-tuned INT8 recipes drop PQ by 3.5 (OpenVINO) and 1.1 (ONNX Runtime), past the budget
    imgsz: int = 512
    threads: tuple[int, ...] = (2,)  # `edgeseg bench` times 1 and 2
    val_images: int = 30
    runs: int = 15  # predict() calls per row, 5 per frame size; `edgeseg bench` records 50
    warmup: int = 3
    memory: bool = False  # peak RSS per row costs a process each; `edgeseg bench` records it
    parity_images: int = 8
    # None = the recipe's 300: measured, OpenVINO INT8 calibrated on 100 images dropped PQ by 2.35 on
    # 50 val images and was refused; on 300 it is within 0.2 of FP32
    calibration_images: int | None = None
    quant_validation_images: int = 50
    overlay_images: int = 3
    # --from-scratch training budgets (the recorded recipes: benchmarks/train_recipe.py)
    teacher_steps: int = 600
    student_steps: int = 2900  # the shipped student's recipe (lite0_default)


# quick: the CI smoke test of the demo's code path, at 128 px on 24 / 6 tiny images: torch, ONNX
# Runtime and OpenVINO INT8 (TFLite's minute-long conversion is covered by the export tests)
QUICK = DemoSettings(combos=tuple(c for c in QUICK_COMBOS if c[0] != "tflite"), imgsz=128, threads=(1,), val_images=4, runs=5, warmup=1, parity_images=2, calibration_images=8,
                     quant_validation_images=4, overlay_images=1, teacher_steps=2, student_steps=2)


logger = logging.getLogger(__name__)


def _log(msg: str) -> None:
    logger.info("[demo %s] %s", time.strftime("%H:%M:%S"), msg)


def ensure_data(root: str | Path, quick: bool, regenerate: bool = False) -> Path:
    """The built-in data set at ``root``: generated if missing (``quick``: 24 train / 6 val images
    at 128 px, a few seconds; otherwise the fixed 2000 / 200 set at 256 px)."""
    from edgeseg.data.synth import SynthConfig, generate_synthetic

    root = Path(root)
    if (root / "annotations").is_dir() and not regenerate:
        return root
    cfg = SynthConfig(image_size=128, num_train=24, num_val=6) if quick else SynthConfig()
    _log(f"generating the built-in data set in {root} ({cfg.num_train} train / {cfg.num_val} val)")
    return generate_synthetic(root, seed=0, config=cfg, overwrite=regenerate, workers=os.cpu_count() or 1)


def train_from_scratch(data: Path, out: Path, settings: DemoSettings) -> tuple[Path, Path]:
    """Teacher (Mask2Former Swin-T) -> distilled default student -> calibrated threshold.
    Returns ``(student, teacher)`` checkpoints. Resumable: re-running continues both runs."""
    from edgeseg.config import load_config
    from edgeseg.assets import resolve_config
    from edgeseg.evaluation.calibrate import calibrate_checkpoint
    from edgeseg.training.trainer import train

    t_model, t_train = load_config(resolve_config("teacher-swint"))
    t_train = replace(t_train, data=str(data), steps=settings.teacher_steps, eval_every=0)
    _log(f"training the teacher: {settings.teacher_steps} steps -> {out / 'teacher'}")
    train(t_model, t_train, out / "teacher")
    teacher = out / "teacher" / "model.pt"

    s_model, s_train = load_config(resolve_config(SHIPPED_MODEL))
    kd = replace(s_train.kd, teacher=str(teacher))
    s_train = replace(s_train, data=str(data), steps=settings.student_steps, kd=kd,
                      warmup_steps=min(s_train.warmup_steps, max(settings.student_steps // 10, 1)),
                      shape_pretrain_steps=min(s_train.shape_pretrain_steps, 50 * settings.student_steps))
    _log(f"distilling the student: {settings.student_steps} steps -> {out / 'student'}")
    train(s_model, s_train, out / "student")
    student = out / "student" / "model.pt"
    calibrate_checkpoint(str(student), str(data), split="train", images=min(100, 4 * settings.val_images))
    return student, teacher


def _overlays(doc: dict, data: Path, out: Path, n: int) -> list[Path]:
    """Side-by-side overlays of the same val images: input, torch, then one row per exported
    runtime (its fastest precision that passed)."""
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.data.image_io import write_png
    from edgeseg.inference.visualize import draw_panoptic, side_by_side

    ok = [r for r in doc["rows"] if row_passed(r) and r.get("fps") and r["role"] == "student"]
    picks: dict[str, dict] = {}
    for r in sorted(ok, key=lambda r: -r["fps"]):
        picks.setdefault(r["runtime"], r)
    order = [rt for rt in ("torch", "onnxruntime", "openvino", "litert") if rt in picks]
    if not order:
        return []
    models = []
    for rt in order:
        r = picks[rt]
        path = Path(r["artifact"])
        models.append((f"{rt} {r['precision']}", load(path, input_size=r["imgsz"]) if path.suffix == ".pt" else load(path)))
    ds = CocoPanoptic(data, "val")
    (out / "overlays").mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(min(n, len(ds))):
        sample = ds.load_raw(i)
        tiles, titles = [sample.image], ["input"]
        for title, predictor in models:
            tiles.append(draw_panoptic(sample.image, predictor.predict(sample.image)))
            titles.append(title)
        path = out / "overlays" / f"{Path(str(sample.file_name)).stem}.png"
        write_png(path, side_by_side(tiles, titles, height=max(256, sample.image.shape[0])))
        written.append(path)
    return written


def _report(doc: dict, out: Path, overlays: list[Path], command: str, minutes: float) -> Path:
    svt = doc.get("student_vs_teacher") or []
    lines = [
        "# edgeseg demo report", "",
        f"Command: `{command}` ({minutes:.1f} min on {doc['machine'].get('cpu')}, {doc['machine'].get('cores')} cores).",
        f"Student: `{doc['config']['weights'][0]}`; data: `{doc['config']['data']}` "
        f"(PQ on {doc['config']['val_images'] or 'all'} val images per row); artifacts: `{doc['config']['work']}`.", "",
        "## FPS against PQ", "", markdown_table(doc), "![FPS against PQ](pareto.png)", "",
    ]
    if not svt:
        lines += ["No teacher row: pass `--teacher runs/teacher/model.pt` (or run `--from-scratch`) to compare "
                  "against the Mask2Former teacher, runtime by runtime.", ""]
    if overlays:
        lines += ["## The same images through each runtime", ""]
        lines += [f"![{p.stem}](overlays/{p.name})" for p in overlays]
    failed = [r for r in doc["rows"] if not row_passed(r)]
    if failed:
        lines += ["", "## Failed rows", ""]
        lines += sorted({f"- {r['model']} {r['runtime']} {r['precision']} {r['imgsz']}: {r['status']}: {r['reason']}"
                         for r in failed})
    path = out / "report.md"
    tmp = out / ".report.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def demo(out: str | Path = "runs/demo", data: str | Path = "data/synth", quick: bool = False,
         from_scratch: bool = False, weights: str | None = None, teacher: str | None = None,
         settings: DemoSettings | None = None, progress: bool = True) -> Path:
    """Run the demo and return the path of ``report.md``. ``quick``: tiny data and settings, the
    same code path (CI runs it). ``from_scratch``: train teacher + distilled student first."""
    start = time.perf_counter()
    settings = settings or (QUICK if quick else DemoSettings())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data) if not quick or str(data) != "data/synth" else out / "data"
    data = ensure_data(data, quick, regenerate=from_scratch and not quick)
    if from_scratch:
        weights, teacher = map(str, train_from_scratch(data, out / "train", settings))
    weights = weights or SHIPPED_MODEL
    if teacher and not Path(teacher).is_file():
        raise EdgesegError(f"demo: teacher checkpoint not found: {teacher}")
    cfg = BenchConfig(weights=(weights,), combos=settings.combos, threads=settings.threads, imgsz=(settings.imgsz,),
                      teacher=teacher, data=str(data), val_images=settings.val_images, runs=settings.runs,
                      warmup=settings.warmup, parity_images=settings.parity_images,
                      calibration_images=settings.calibration_images,
                      quant_validation_images=settings.quant_validation_images, work=str(out / "artifacts"),
                      memory=settings.memory, progress=progress)
    _log(f"benchmarking {weights} at {settings.imgsz}px: {len(cfg.combos)} format x precision rows, "
         f"threads {settings.threads}{' + teacher' if teacher else ''}")
    doc = bench(cfg)
    doc["command"] = "edgeseg demo" + (" --quick" if quick else "")
    write_report(doc, out)
    overlays = _overlays(doc, data, out, settings.overlay_images)
    command = "edgeseg demo" + (" --quick" if quick else "") + (" --from-scratch" if from_scratch else "")
    report = _report(doc, out, overlays, command, (time.perf_counter() - start) / 60)
    _log(f"done in {(time.perf_counter() - start) / 60:.1f} min: {report}")
    return report
