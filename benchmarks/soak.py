"""Soak test: stream many frames through each runtime adapter and watch resident memory.

    python benchmarks/soak.py MODEL_FOLDER... [--frames 10000] [--every 500]

Each MODEL_FOLDER is an export folder (``edgeseg export`` output); its model file is run
through the full ``Predictor`` (numpy preprocess -> runtime -> numpy postprocess) on val images
in a loop. RSS is sampled every ``--every`` frames; growth is measured from the first sample
after warm-up (frame ``--every``) to the last. Goal: growth < 5 %. Adds its rows
to ``benchmarks/results/soak.json``. RSS is per process: for a clean per-runtime figure run one
folder per invocation (a later runtime otherwise starts from the earlier one's footprint).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.backends import load  # noqa: E402
from edgeseg.data.coco_panoptic import CocoPanoptic  # noqa: E402
from edgeseg.export.metadata import read_metadata  # noqa: E402


def rss_mb() -> float:
    """Current resident set size (Linux /proc), in MB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 1e6


def soak(model_file: Path, images: list, frames: int, every: int, threads: int | None) -> dict:
    predictor = load(model_file, threads=threads)
    samples = []
    t0 = time.perf_counter()
    for i in range(1, frames + 1):
        predictor.predict(images[i % len(images)])
        if i % every == 0:
            samples.append({"frame": i, "rss_mb": round(rss_mb(), 1), "seconds": round(time.perf_counter() - t0, 1)})
            print(f"{model_file.parent.name}: frame {i} rss {samples[-1]['rss_mb']} MB", flush=True)
    base, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    growth = 100.0 * (last - base) / base
    return {"model": str(model_file), "format": read_metadata(model_file).format,
            "precision": read_metadata(model_file).precision, "frames": frames,
            "rss_after_warmup_mb": base, "rss_last_mb": last, "growth_percent": round(growth, 2),
            "flat": growth < 5.0, "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ds = CocoPanoptic(args.data, "val")
    images = [ds.load_raw(i).image for i in range(min(16, len(ds)))]
    rows = []
    for folder in args.folders:
        meta_model = next(p for p in Path(folder).iterdir() if p.suffix in (".onnx", ".xml", ".tflite"))
        rows.append(soak(meta_model, images, args.frames, args.every, args.threads))
    # One invocation per runtime gives clean per-process RSS; rows accumulate in one file
    # (a re-run of the same format/precision replaces its row).
    out = ROOT / "benchmarks" / "results" / "soak.json"
    doc = json.loads(out.read_text()) if out.exists() else {"rows": []}
    command = "python benchmarks/soak.py " + " ".join(sys.argv[1:])
    for r in rows:
        r["command"] = command
        doc["rows"] = [o for o in doc["rows"] if (o["format"], o["precision"]) != (r["format"], r["precision"])] + [r]
    doc["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores"
    out.write_text(json.dumps(doc, indent=2))
    for r in rows:
        print(f"{r['format']} {r['precision']}: {r['rss_after_warmup_mb']} -> {r['rss_last_mb']} MB "
              f"({r['growth_percent']:+.1f} %) {'flat' if r['flat'] else 'GROWING'}")


if __name__ == "__main__":
    main()
