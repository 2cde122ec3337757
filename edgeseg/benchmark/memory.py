"""``python -m edgeseg.benchmark.memory MODEL``: load a model, predict a few images, print the
process's peak RSS as JSON. Run in a fresh process by ``measure.peak_rss_mb`` so each row's
memory is its own, not what earlier rows left behind."""
from __future__ import annotations

import argparse
import json
import resource
import sys

import numpy as np


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--imgsz", type=int)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    from edgeseg.backends import load

    predictor = load(args.model, threads=args.threads,
                     input_size=None if args.model.endswith((".onnx", ".xml", ".tflite")) else args.imgsz)
    image = np.random.default_rng(0).integers(0, 256, (predictor.input_size, predictor.input_size, 3), dtype=np.uint8)
    for _ in range(args.runs):
        predictor.predict(image)
    print(json.dumps({"peak_rss_mb": round(peak_rss_bytes() / 2**20, 1)}))


def peak_rss_bytes() -> int:
    """This process's peak RSS. Linux: ``VmHWM`` of /proc/self/status, because ``ru_maxrss`` is
    inherited across fork + exec and would report the (larger) parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


if __name__ == "__main__":
    main()
