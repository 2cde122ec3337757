"""Export the default student to every format x precision and record the parity table.

    python benchmarks/parity.py [--weights models/pem_lite0_512.pt] [--imgsz 512] [--images 8]

Writes ``benchmarks/results/parity.json`` and ``parity.md``: per export, the file size, max abs
difference of both outputs, mask agreement, PQ of torch and of the artifact on the same val
images, and whether it passed the tolerance. A failed export is recorded with its reason (and
leaves no files). TFLite rows need litert-torch; without it they are recorded as not run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.assets import SHIPPED_MODEL  # noqa: E402
from edgeseg.export import export  # noqa: E402
from edgeseg.errors import EdgesegError  # noqa: E402

COMBOS = [("onnx", "fp32"), ("onnx", "fp16"), ("openvino", "fp32"), ("openvino", "fp16"),
          ("tflite", "fp32"), ("tflite", "fp16")]


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".onnx", ".xml", ".bin", ".tflite"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default=f"models/{SHIPPED_MODEL}.pt", help="default: the shipped student")
    ap.add_argument("--data", default=None)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--only", nargs="*", help="format:precision pairs, e.g. onnx:fp32")
    args = ap.parse_args()
    combos = [tuple(c.split(":")) for c in args.only] if args.only else COMBOS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, precision in combos:
            t0 = time.perf_counter()
            row = {"format": fmt, "precision": precision}
            try:
                res = export(args.weights, fmt, precision, imgsz=args.imgsz, out=Path(tmp) / f"{fmt}_{precision}",
                             data=args.data, parity_images=args.images)
                row.update(status="parity ok", size_mb=round(folder_size(res.path.parent) / 1e6, 2), **res.parity,
                           extra=res.metadata.extra)
            except EdgesegError as exc:
                row.update(status="failed", reason=str(exc))
            row["export_seconds"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "extra"}))
    record = {"weights": args.weights, "imgsz": args.imgsz, "images": args.images,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
              "command": "python benchmarks/parity.py " + " ".join(sys.argv[1:]), "rows": rows}
    out = ROOT / "benchmarks" / "results"
    (out / "parity.json").write_text(json.dumps(record, indent=2))
    lines = ["| format | precision | status | size (MB) | max abs diff class / mask | mask agreement | PQ torch | PQ artifact | XNNPACK partitions |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"| {r['format']} | {r['precision']} | failed: {r['reason'][:120]} | | | | | | |")
            continue
        lines.append(f"| {r['format']} | {r['precision']} | {r['status']} | {r['size_mb']} | "
                     f"{r['max_abs_class_logits']:.1e} / {r['max_abs_mask_logits']:.1e} | {r['mask_agreement']:.2f} % | "
                     f"{r['pq_reference']:.2f} | {r['pq_artifact']:.2f} | {r['extra'].get('xnnpack_partitions', '')} |")
    (out / "parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
