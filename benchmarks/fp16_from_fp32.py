"""FP16 derived from the FP32 file against a fresh FP16 conversion, per format.

    python benchmarks/fp16_from_fp32.py [--weights pem_lite0_512] [--imgsz 128]

For ONNX and OpenVINO, exports the checkpoint to FP32, then to FP16 twice: converting the
network again, and from the FP32 file (``export(..., fp32_model=...)``, what ``bench`` and
``demo`` do). Records the export times and whether the two FP16 files hold the same graph (ONNX:
the serialized graph; OpenVINO: the ``.bin`` weights and the outputs on one random input).
No parity check runs (``check=False``): the comparison is file against file. Writes
benchmarks/results/fp16_from_fp32.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _same_onnx(a: Path, b: Path) -> dict:
    import onnx

    ga, gb = onnx.load(str(a)).graph, onnx.load(str(b)).graph
    return {"graph_identical": ga.SerializeToString() == gb.SerializeToString(), "nodes": [len(ga.node), len(gb.node)]}


def _same_openvino(a: Path, b: Path, size: int) -> dict:
    import numpy as np
    import openvino as ov

    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    core = ov.Core()
    ra, rb = (list(core.compile_model(str(p), "CPU")(x).values()) for p in (a, b))
    return {"bin_identical": a.with_suffix(".bin").read_bytes() == b.with_suffix(".bin").read_bytes(),
            "max_abs_output_diff": max(float(np.abs(u - v).max()) for u, v in zip(ra, rb))}


def main() -> None:
    from edgeseg.benchmark.measure import machine_description
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.export import export

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="pem_lite0_512")
    ap.add_argument("--imgsz", type=int, default=128)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("onnx", "openvino"):
            kw = {"imgsz": args.imgsz, "check": False}
            fp32 = export(args.weights, fmt, "fp32", out=Path(tmp, f"{fmt}_fp32"), **kw).path
            t0 = time.perf_counter()
            fresh = export(args.weights, fmt, "fp16", out=Path(tmp, f"{fmt}_fp16_fresh"), **kw).path
            t1 = time.perf_counter()
            derived = export(args.weights, fmt, "fp16", out=Path(tmp, f"{fmt}_fp16_derived"), fp32_model=fp32, **kw).path
            t2 = time.perf_counter()
            same = _same_onnx(fresh, derived) if fmt == "onnx" else _same_openvino(fresh, derived, args.imgsz)
            rows.append({"format": fmt, "fresh_s": round(t1 - t0, 1), "from_fp32_s": round(t2 - t1, 1), **same})
            print(rows[-1])
    doc = {"weights": args.weights, "imgsz": args.imgsz, "machine": machine_description(),
           "command": " ".join(["python benchmarks/fp16_from_fp32.py", *sys.argv[1:]]), "rows": rows}
    atomic_write_bytes(ROOT / "benchmarks" / "results" / "fp16_from_fp32.json", json.dumps(doc, indent=2).encode())


if __name__ == "__main__":
    main()
