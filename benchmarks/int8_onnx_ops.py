"""ONNX Runtime INT8: which op types get int8, and 7-bit weights, against FP32 on one student.

    python benchmarks/int8_onnx_ops.py --weights runs/X/model.pt [--threads 1] [--runs 30]

Variants of the ``onnxruntime`` engine's recipe (``edgeseg/quantization/recipe.py``):
``conv_matmul`` (Q/DQ pairs only around Conv / MatMul / Gemm, the shipped recipe),
``pixel_side`` (also the activations, pooling, Add / Mul, Resize and Concat of the backbone
and pixel decoder, so int8 tensors flow between the convs; the decoder's additions stay
float) and ``pixel_side_rr`` (the same with ``reduce_range``: 7-bit weights, what ONNX
Runtime advises for x86 CPUs without VNNI). PQ on ``--val`` val images against FP32 torch
(300 train images calibrate); forward time of FP32 and every variant interleaved in one
process. Writes benchmarks/results/int8_onnx_ops.json.
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

PIXEL_SIDE = ["Conv", "MatMul", "Gemm", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add",
              "GlobalAveragePool", "ReduceMean", "Resize", "Concat"]
VARIANTS = {"conv_matmul": {}, "pixel_side": {"onnx_op_types": PIXEL_SIDE},
            "pixel_side_rr": {"onnx_op_types": PIXEL_SIDE, "reduce_range": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--val", type=int, default=50, help="val images for the PQ check")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--work", default="runs/int8_onnx_ops")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "int8_onnx_ops.json"))
    args = ap.parse_args()

    import numpy as np

    from edgeseg.backends import load
    from edgeseg.benchmark.measure import (
        machine_description,
        summarize_ms,
        time_interleaved,
    )
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.export import export
    from edgeseg.quantization import quantize
    from edgeseg.quantization.recipe import default_recipe

    work = Path(args.work)
    fp32 = export(args.weights, "onnx", "fp32", args.imgsz, out=work / "fp32", check=False, overwrite=True).path
    models = {"fp32": load(fp32, threads=args.threads)}
    rows = []
    for name, changes in ((n, VARIANTS[n]) for n in args.variants):
        # the budget is not enforced here: every variant is recorded with its drop
        recipe = dataclasses.replace(default_recipe("onnx"), validation_images=args.val, max_pq_drop=100.0, **changes)
        q = quantize(args.weights, "onnx", data=args.data, recipe=recipe, imgsz=args.imgsz, out=work / name,
                     overwrite=True, fp32_model=fp32)
        rows.append({"variant": name, "changes": changes, "pq_fp32_torch": round(q.report["pq_fp32_torch"], 2),
                     "pq_int8": round(q.report["pq_int8"], 2), "pq_drop": q.report["pq_drop"],
                     "val_images": q.report["parity"]["images"]})
        models[name] = load(q.path, threads=args.threads)
        print(rows[-1], flush=True)
    x = models["fp32"].preprocess(np.zeros((256, 256, 3), np.uint8))[0]

    def step(m):
        def run():
            t0 = time.perf_counter()
            m.infer(x)
            return {"forward": time.perf_counter() - t0}
        return run

    times = time_interleaved({k: step(m) for k, m in models.items()}, runs=args.runs)
    fp32_ms = summarize_ms(times["fp32"]["forward"])["median_ms"]
    for r in rows:
        ms = summarize_ms(times[r["variant"]]["forward"])["median_ms"]
        r.update(int8_ms=ms, fp32_ms=fp32_ms, speedup=round(fp32_ms / ms, 3))
    doc = {"command": "python benchmarks/int8_onnx_ops.py " + " ".join(sys.argv[1:]), "weights": args.weights,
           "machine": machine_description(), "imgsz": args.imgsz, "threads": args.threads, "runs": args.runs, "rows": rows}
    dest = Path(args.json)
    atomic_write_bytes(dest, json.dumps(doc, indent=2).encode())
    for r in rows:
        print(f"{r['variant']:14s} PQ {r['pq_fp32_torch']} -> {r['pq_int8']} (drop {r['pq_drop']:+.2f}), "
              f"{r['fp32_ms']} -> {r['int8_ms']} ms (x{r['speedup']})")
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
