"""INT8 against FP32 for every runtime: latency side by side, size, PQ, layers kept in float.

    python benchmarks/int8.py [--weights models/pem_lite0_512.pt] [--imgsz 512] [--runs 50]
                              [--formats openvino onnx tflite] [--accuracy-control-demo]
                              [--extra-recipes quantize/X.yaml ...] [--merge]

For each format: ``edgeseg quantize`` with the model's recipe for the runtime from ``quantize/``
(``quantize/<model name>_<format>.yaml``) (PQ of the INT8
artifact vs FP32 torch on 50 held-out val images, refused past 1.0 point), plus the FP32 export.
Latency: both models loaded through ``edgeseg.load`` and timed interleaved in one process
(warm-up, then ``--runs`` timed forwards each, 1 and 2 threads), median and p90.
``--accuracy-control-demo`` adds an OpenVINO row quantized *without* the sensitive scope and with
``--max-pq-drop 1.0``: NNCF must find and revert the layers itself.
``--extra-recipes`` adds a row per recipe file (named after its suffix, e.g. ``tflite_weightonly``);
``--merge`` keeps the rows already in int8.json that this run does not redo.
Writes ``benchmarks/results/int8.json`` and ``int8.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from edgeseg.assets import SHIPPED_MODEL, resolve_recipe_file  # noqa: E402
from edgeseg.backends import load  # noqa: E402
from edgeseg.benchmark.measure import machine_description  # noqa: E402
from edgeseg.checkpoint import load_checkpoint  # noqa: E402
from edgeseg.data.image_io import atomic_write_bytes  # noqa: E402
from edgeseg.errors import EdgesegError  # noqa: E402
from edgeseg.export import export  # noqa: E402
from edgeseg.quantization import quantize  # noqa: E402
from edgeseg.quantization.recipe import load_recipe  # noqa: E402

# The targets: INT8 >= 1.5x FP32 in OpenVINO, "faster" in ONNX Runtime and LiteRT. Faster
# is counted from 1.05x: interleaved medians on these shared cores move by a few percent.
TARGET_SPEEDUP = {"openvino": 1.5, "onnx": 1.05, "tflite": 1.05}


def time_interleaved(models: dict, x: np.ndarray, runs: int, warmup: int = 5) -> dict:
    times = {k: [] for k in models}
    for i in range(warmup + runs):
        for k, predictor in models.items():
            t = time.perf_counter()
            predictor.infer(x)
            if i >= warmup:
                times[k].append(time.perf_counter() - t)
    return {k: {"median_ms": round(1000 * float(np.median(v)), 2), "p90_ms": round(1000 * float(np.percentile(v, 90)), 2)}
            for k, v in times.items()}


def model_bytes(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=f"models/{SHIPPED_MODEL}.pt")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--formats", nargs="+", default=["openvino", "onnx", "tflite"])
    ap.add_argument("--work", default="runs/int8_bench", help="where the FP32/INT8 artifacts are written")
    ap.add_argument("--accuracy-control-demo", action="store_true")
    ap.add_argument("--extra-recipes", nargs="*", default=[], help="more recipe files, one row each")
    ap.add_argument("--merge", action="store_true", help="keep int8.json rows this run does not redo")
    ap.add_argument("--validation-images", type=int, default=0, metavar="N",
                    help="PQ check on N val images instead of the recipe's (200: the whole split)")
    ap.add_argument("--results", default="int8", help="results file stem under benchmarks/results (default int8)")
    args = ap.parse_args()
    work = Path(args.work)
    weights = Path(args.weights)
    x = None
    rows = []
    name = str(load_checkpoint(weights)["model_config"].get("name", ""))

    def recipe_of(fmt: str) -> Path:
        found = resolve_recipe_file(name, fmt)
        if found is None:
            raise SystemExit(f"{weights}: no recipe quantize/{name}_{fmt}.yaml for its model {name!r}")
        return found.resolve()

    jobs = [(fmt, recipe_of(fmt), None, fmt) for fmt in args.formats]
    if args.accuracy_control_demo:
        jobs.append(("openvino", recipe_of("openvino_noscope"), 1.0, "openvino_noscope_ac"))
    for extra in args.extra_recipes:
        path = (ROOT / extra).resolve()
        fmt = load_recipe(path).format
        jobs.append((fmt, path, None, path.stem.replace(f"{name}_", "")))
    for fmt, recipe_path, max_drop, name in jobs:
        row: dict = {"name": name, "format": fmt, "recipe": str(recipe_path.relative_to(ROOT))}
        print(f"== {name}", flush=True)
        try:
            fp32 = export(weights, fmt, "fp32", args.imgsz, out=work / f"{fmt}_fp32", check=False, overwrite=True)
            recipe = load_recipe(recipe_path)
            if args.validation_images:
                recipe = dataclasses.replace(recipe, validation_images=args.validation_images)
            q = quantize(weights, fmt, data=args.data, recipe=recipe, max_pq_drop=max_drop, imgsz=args.imgsz,
                         out=work / f"{name}_int8", overwrite=True)
        except EdgesegError as exc:
            row.update(status="failed", reason=str(exc))
            rows.append(row)
            print(f"{name}: FAILED {exc}", flush=True)
            continue
        r = q.report
        row.update(status="ok", pq_fp32_torch=round(r["pq_fp32_torch"], 2), pq_int8=round(r["pq_int8"], 2),
                   pq_drop=r["pq_drop"], mask_agreement=round(r["parity"]["mask_agreement"], 2),
                   validation_images=r["parity"]["images"], size_fp32_mb=round(model_bytes(fp32.path) / 1e6, 2),
                   size_int8_mb=round(model_bytes(q.path) / 1e6, 2), engine=r["engine"].get("engine"),
                   calibration_images=r["engine"].get("calibration_images"),
                   kept_float=r["engine"].get("ignored_scope") or r["engine"].get("kept_float_modules", []),
                   accuracy_control_log=r["engine"].get("accuracy_control_log", []),
                   kept_float_nodes=r["engine"].get("kept_float_nodes"),
                   xnnpack_partitions=r["engine"].get("xnnpack_partitions"), quantize_seconds=r["seconds"])
        row["size_ratio"] = round(row["size_int8_mb"] / row["size_fp32_mb"], 3)
        if x is None:
            from edgeseg.data.coco_panoptic import CocoPanoptic

            sample = CocoPanoptic(args.data, "val").load_raw(0)
            x = load(fp32.path).preprocess(sample.image)[0]
        for threads in (1, 2):
            models = {"fp32": load(fp32.path, threads=threads), "int8": load(q.path, threads=threads)}
            t = time_interleaved(models, x, args.runs)
            row[f"threads_{threads}"] = {**t, "speedup": round(t["fp32"]["median_ms"] / t["int8"]["median_ms"], 3)}
            print(f"{name} {threads} thread(s): FP32 {t['fp32']['median_ms']} ms, INT8 {t['int8']['median_ms']} ms "
                  f"(x{row[f'threads_{threads}']['speedup']})", flush=True)
        best = max(row["threads_1"]["speedup"], row["threads_2"]["speedup"])
        row["targets"] = {"pq_drop<=1.0": row["pq_drop"] <= 1.0, f"speedup>={TARGET_SPEEDUP[fmt]}": best >= TARGET_SPEEDUP[fmt],
                          "size<=0.35x": row["size_ratio"] <= 0.35}
        rows.append(row)
    out = ROOT / "benchmarks" / "results"
    command = "python benchmarks/int8.py " + " ".join(sys.argv[1:])
    for r in rows:
        r["command"] = command
    dest = out / f"{args.results}.json"
    if args.merge and dest.exists():
        done = {r["name"] for r in rows}
        old = json.loads(dest.read_text())
        rows = [r for r in old["rows"] if r["name"] not in done] + rows
        for r in rows:
            r.setdefault("command", old.get("command"))
    doc = {"command": "python benchmarks/int8.py " + " ".join(sys.argv[1:]), "weights": str(weights),
           "machine": machine_description(),
           "date": time.strftime("%Y-%m-%d"), "input_size": args.imgsz, "timed_runs": args.runs, "rows": rows}
    atomic_write_bytes(dest, json.dumps(doc, indent=2).encode())
    lines = ["| runtime | recipe | PQ FP32 torch | PQ INT8 | drop | FP32 ms 1t / 2t | INT8 ms 1t / 2t | speed-up 1t / 2t | "
             "size FP32 -> INT8 MB | kept float |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {r['recipe']} | failed: {r['reason'][:120]} |||||||| ")
            continue
        t1, t2 = r["threads_1"], r["threads_2"]
        lines.append(f"| {r['name']} | {Path(r['recipe']).name} | {r['pq_fp32_torch']:.2f} | {r['pq_int8']:.2f} | {r['pq_drop']:+.2f} | "
                     f"{t1['fp32']['median_ms']:.1f} / {t2['fp32']['median_ms']:.1f} | {t1['int8']['median_ms']:.1f} / {t2['int8']['median_ms']:.1f} | "
                     f"x{t1['speedup']:.2f} / x{t2['speedup']:.2f} | {r['size_fp32_mb']:.1f} -> {r['size_int8_mb']:.1f} (x{r['size_ratio']:.2f}) | "
                     f"{r.get('kept_float_nodes') or len(r['kept_float'])} nodes |")
    m = doc["machine"]
    lines += ["", (f"{weights}, {args.imgsz} px, median of {args.runs} after warm-up, FP32 and INT8 interleaved; "
                   f"{m['cpu']} ({m['arch']}, {m['cores']} cores, {' '.join(m['isa'])}); command: {doc['command']}")]
    atomic_write_bytes(dest.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
