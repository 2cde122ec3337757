"""Where the student's forward time goes, per block, in OpenVINO and ONNX Runtime (FP32).

    python benchmarks/profile_blocks.py [--weights models/pem_lite0_512.pt] [--imgsz 512] [--threads 1 2] [--runs 40]

The checkpoint is exported to ONNX once and the same file converted to OpenVINO IR, so both
runtimes' per-op counters map back to the torch module scopes the exporter recorded
(``edgeseg/benchmark/profile.py``): backbone, pixel decoder, transformer decoder, heads, and
what no scope can be found for (layout reorders). GMACs per group from torch's FlopCounterMode.
Writes benchmarks/results/profile.json and profile.md. (Not named profile.py: this folder is
on sys.path when its scripts run, and it must not shadow the stdlib ``profile`` torch imports.)
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

from edgeseg.assets import SHIPPED_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=f"models/{SHIPPED_MODEL}.pt")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--work", default="runs/profile")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()

    import openvino as ov

    from edgeseg.benchmark.measure import machine_description
    from edgeseg.benchmark.profile import (
        GROUPS,
        UNPLACED,
        gmacs_by_group,
        onnx_node_groups,
        profile_onnxruntime,
        profile_openvino,
    )
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.export import export
    from edgeseg.export.to_openvino import onnx_to_openvino
    from edgeseg.modeling.build import build_model, config_from_checkpoint

    start = time.perf_counter()
    work = Path(args.work)
    onnx_path = export(args.weights, "onnx", "fp32", args.imgsz, out=work / "onnx", check=False, overwrite=True).path
    xml_path = work / "openvino" / "model.xml"
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(onnx_to_openvino(Path(onnx_path), args.imgsz), str(xml_path))  # same node names as the ONNX
    groups = onnx_node_groups(onnx_path)

    cfg = config_from_checkpoint(load_checkpoint(args.weights), str(args.weights))
    cfg = dataclasses.replace(cfg, backbone_weights=None)
    gmacs = gmacs_by_group(build_model(cfg, args.imgsz).eval(), args.imgsz)

    rows = []
    for threads in args.threads:
        for runtime, fn, path in (("openvino", profile_openvino, xml_path), ("onnxruntime", profile_onnxruntime, onnx_path)):
            r = fn(path, groups, threads, runs=args.runs, warmup=args.warmup)
            rows.append({"runtime": runtime, "precision": "fp32", "threads": threads, "imgsz": args.imgsz, **r})
            print(f"{runtime} {threads}t: " + ", ".join(f"{g} {ms:.1f} ms" for g, ms in r["groups_ms"].items())
                  + f" (counted {r['counted_ms']:.1f}, wall {r['wall_ms']:.1f})", flush=True)
    doc = {"command": "python benchmarks/profile_blocks.py " + " ".join(sys.argv[1:]), "weights": str(args.weights),
           "model": cfg.name, "machine": machine_description(), "gmacs_by_group": gmacs,
           "timed_runs": args.runs, "warmup": args.warmup, "rows": rows,
           "seconds": round(time.perf_counter() - start, 1)}
    out = Path(args.out)
    atomic_write_bytes(out / "profile.json", json.dumps(doc, indent=2).encode())

    cols = [*GROUPS, UNPLACED]
    lines = ["| runtime | threads | " + " | ".join(f"{g} ms (%)" for g in cols) + " | counted ms | wall ms |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = [f"{r['groups_ms'].get(g, 0.0):.1f} ({r['groups_pct'].get(g, 0.0):.0f} %)" for g in cols]
        lines.append(f"| {r['runtime']} | {r['threads']} | " + " | ".join(cells) + f" | {r['counted_ms']:.1f} | {r['wall_ms']:.1f} |")
    lines.append("| GMACs | | " + " | ".join(f"{gmacs.get(g, 0.0):.2f}" if g in gmacs else "-" for g in cols) + f" | {sum(gmacs.values()):.2f} | |")
    unplaced = "; ".join(f"{r['runtime']} {r['threads']}t: "
                         + ", ".join(f"{k} {v:.1f}" for k, v in list(r["unplaced_by_op_ms"].items())[:4]) for r in rows)
    lines += ["", f"Unplaced time by op type (ms per run): {unplaced}", "",
              "Largest op types per group, 1 thread (mean ms per run):", ""]
    for r in rows:
        if r["threads"] != min(args.threads):
            continue
        for group in cols:
            top = list(r["ops_ms"].get(group, {}).items())[:4]
            if top:
                lines.append(f"- {r['runtime']} {group}: " + ", ".join(f"{op} {ms:.1f}" for op, ms in top))
    m = doc["machine"]
    lines += ["", f"{doc['model']} at {args.imgsz} px, FP32, median of {args.runs} runs after {args.warmup} warm-up; "
              f"{m.get('cpu')} ({m.get('arch')}, {m.get('cores')} cores, {' '.join(m.get('isa', []))}); "
              f"command: {doc['command']}"]
    atomic_write_bytes(out / "profile.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
