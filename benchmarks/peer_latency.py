"""Forward latency of edgeseg students beside YOLO26n-seg, the edge model users would take instead.

    python benchmarks/peer_latency.py --yolo-python ULTRALYTICS_VENV/bin/python
    python benchmarks/peer_latency.py --yolo-onnx yolo26n-seg.onnx [--student models/pem_lite0_512.pt ...]

YOLO26n-seg (instance segmentation only) is built from Ultralytics' ``yolo26n-seg.yaml`` with
random weights and exported to ONNX at 512 by ``--yolo-python``, a Python with ``ultralytics``
installed in its own virtual environment (``pip install ultralytics``): nothing of it enters
edgeseg, and weights do not change a forward time. Each student checkpoint is exported to ONNX
FP32 by edgeseg; both ONNX files are converted to OpenVINO IR the same way
(``openvino.convert_model``), so every model runs the same route in each runtime.

Timing: forward only, one random 1x3x512x512 input, every model of one (runtime, threads)
cell interleaved round robin in one process, median of ``--runs`` after ``--warmup``, with the
sessions edgeseg's adapters build (ONNX Runtime: spinning off; OpenVINO: latency hint, f32
inference precision for all models alike). Writes benchmarks/results/peer_latency.json (one
row per model x runtime x precision x threads) and peer_latency.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.assets import SHIPPED_MODEL

RUNTIMES = ("onnxruntime", "openvino")
YOLO_MODEL = "yolo26n-seg.yaml"

# Run by --yolo-python in its own environment: build from the YAML (random weights), export ONNX.
_YOLO_EXPORT = """
import sys
from ultralytics import YOLO
model = YOLO(sys.argv[1])
print(model.export(format="onnx", imgsz=int(sys.argv[2]), opset=18, simplify=True, dynamic=False))
"""


def export_yolo(python: str, model: str, imgsz: int, work: Path) -> Path:
    """``model`` (an Ultralytics YAML) as ONNX at ``imgsz``, exported by ``python`` in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([python, "-c", _YOLO_EXPORT, model, str(imgsz)], cwd=work, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines or not Path(work, lines[-1]).exists():
        raise SystemExit(f"{python}: Ultralytics export of {model} failed:\n{proc.stderr[-2000:]}")
    return Path(work, lines[-1]).resolve()


def yolo_stats(python: str, model: str, imgsz: int) -> dict:
    """Parameters and GMACs at ``imgsz`` as Ultralytics reports them (``model_info``)."""
    code = ("import sys, json; from ultralytics import YOLO; from ultralytics.utils.torch_utils import get_flops;"
            "m = YOLO(sys.argv[1]).model; print(json.dumps({'params': sum(p.numel() for p in m.parameters()),"
            "'gflops': get_flops(m, int(sys.argv[2]))}))")
    proc = subprocess.run([python, "-c", code, model, str(imgsz)], capture_output=True, text=True)
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {}
    return {"params_m": round(info["params"] / 1e6, 2), "gmacs": round(info["gflops"] / 2, 2)}


def ultralytics_version(python: str) -> str | None:
    proc = subprocess.run([python, "-c", "import ultralytics; print(ultralytics.__version__)"], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else None


def student_onnx(weights: Path, imgsz: int, work: Path) -> Path:
    from edgeseg.export import export

    return export(weights, "onnx", "fp32", imgsz, out=work / weights.stem / "onnx", check=False, overwrite=True).path


def forward_steps(models: dict[str, Path], runtime: str, threads: int, imgsz: int, ov_models: dict | None = None):
    """name -> a zero-argument callable that runs one forward and returns ``{"forward": seconds}``.
    ``ov_models`` caches each ONNX file's OpenVINO conversion across calls (one per thread count)."""
    import numpy as np

    x = np.random.default_rng(0).standard_normal((1, 3, imgsz, imgsz)).astype(np.float32)
    steps = {}
    for name, onnx_path in models.items():
        if runtime == "onnxruntime":
            import onnxruntime as ort

            from edgeseg.backends.onnxruntime_backend import session_options

            sess = ort.InferenceSession(str(onnx_path), sess_options=session_options(threads),
                                        providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x}

            def step(sess=sess, feed=feed):
                t0 = time.perf_counter()
                sess.run(None, feed)
                return {"forward": time.perf_counter() - t0}
        else:
            import openvino as ov

            from edgeseg.backends.openvino_backend import compile_config
            from edgeseg.export.to_openvino import onnx_to_openvino

            cache = {} if ov_models is None else ov_models
            if name not in cache:
                cache[name] = onnx_to_openvino(Path(onnx_path), imgsz)
            compiled = ov.Core().compile_model(cache[name], "CPU",
                                               compile_config("CPU", "LATENCY", threads, "f32"))
            request = compiled.create_infer_request()

            def step(request=request):
                t0 = time.perf_counter()
                request.infer({0: x})
                return {"forward": time.perf_counter() - t0}
        steps[name] = step
    return steps


def time_models(models: dict[str, Path], imgsz: int, threads: list[int], runs: int, warmup: int,
                runtimes: tuple[str, ...] = RUNTIMES) -> list[dict]:
    """FP32 forward rows for every model in every (runtime, threads) cell, models interleaved."""
    from edgeseg.benchmark.measure import summarize_ms, time_interleaved

    rows = []
    ov_models: dict = {}
    for runtime in runtimes:
        for t in threads:
            times = time_interleaved(forward_steps(models, runtime, t, imgsz, ov_models), runs=runs, warmup=warmup)
            for name in models:
                s = summarize_ms(times[name]["forward"])
                rows.append({"model": name, "runtime": runtime, "precision": "fp32", "threads": t, "imgsz": imgsz,
                             "median_ms": s["median_ms"], "p90_ms": s["p90_ms"], "runs": s["runs"]})
                print(f"{name:28s} {runtime:12s} {t}t {s['median_ms']:8.1f} ms", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--yolo-python", help="a Python with ultralytics installed (its own venv): exports the peer")
    src.add_argument("--yolo-onnx", help="an already exported YOLO26n-seg ONNX file at --imgsz")
    ap.add_argument("--student", nargs="+", default=[f"models/{SHIPPED_MODEL}.pt"], help="edgeseg checkpoints")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--work", default="runs/peer_latency")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "peer_latency.json"))
    args = ap.parse_args()

    from edgeseg.benchmark.measure import machine_description
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.modeling.build import config_from_checkpoint
    from edgeseg.modeling.complexity import model_info

    start = time.perf_counter()
    work = Path(args.work)
    peer: dict = {"model": "yolo26n-seg", "source": YOLO_MODEL, "weights": "random (latency only)",
                  "task": "instance segmentation (no stuff, no panoptic)"}
    if args.yolo_python:
        yolo = export_yolo(args.yolo_python, YOLO_MODEL, args.imgsz, work / "yolo")
        peer |= yolo_stats(args.yolo_python, YOLO_MODEL, args.imgsz)
        peer["ultralytics"] = ultralytics_version(args.yolo_python)
    else:
        yolo = Path(args.yolo_onnx)
    models = {"yolo26n-seg": yolo}
    students = {}
    for w in args.student:
        weights = Path(w)
        cfg = config_from_checkpoint(load_checkpoint(weights), str(weights))
        info = model_info(cfg, args.imgsz)
        name = cfg.name if cfg.name not in models else weights.stem
        models[name] = student_onnx(weights, args.imgsz, work)
        students[name] = {"weights": str(weights), "params_m": info["params_inference_m"], "gmacs": info["gmacs"]}
    rows = time_models(models, args.imgsz, args.threads, args.runs, args.warmup)
    ratios = []
    for r in rows:
        if r["model"] == "yolo26n-seg":
            continue
        ref = next(x for x in rows if x["model"] == "yolo26n-seg" and (x["runtime"], x["threads"]) == (r["runtime"], r["threads"]))
        ratios.append({"model": r["model"], "runtime": r["runtime"], "threads": r["threads"],
                       "student_over_yolo": round(r["median_ms"] / ref["median_ms"], 3),
                       "no_slower": r["median_ms"] <= ref["median_ms"]})
    doc = {"what": "forward latency, FP32, side by side in one process: edgeseg students against YOLO26n-seg",
           "command": "python benchmarks/peer_latency.py --yolo-python ULTRALYTICS_VENV/bin/python "
                      + "--student " + " ".join(args.student),
           "machine": machine_description(), "imgsz": args.imgsz, "runs": args.runs, "warmup": args.warmup,
           "peer": peer, "students": students, "rows": rows, "student_over_yolo": ratios,
           "seconds": round(time.perf_counter() - start, 1)}
    out = Path(args.out)
    atomic_write_bytes(out, json.dumps(doc, indent=2).encode())
    m = doc["machine"]
    lines = ["| model | runtime | threads | median ms | p90 ms | x YOLO26n-seg |", "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = next((x["student_over_yolo"] for x in ratios if (x["model"], x["runtime"], x["threads"])
                      == (r["model"], r["runtime"], r["threads"])), None)
        lines.append(f"| {r['model']} | {r['runtime']} | {r['threads']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}'} |")
    lines += ["", f"FP32 forward at {args.imgsz}, median of {args.runs} after {args.warmup} warm-up, models interleaved; "
              f"{m['cpu']} ({m['arch']}, {m['cores']} cores, {' '.join(m['isa'])}); YOLO26n-seg: {peer}; "
              f"students: {students}; command: {doc['command']}"]
    atomic_write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
