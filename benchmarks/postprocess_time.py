"""Time edgeseg's numpy post-processing per task on camera-sized frames.

    python benchmarks/postprocess_time.py                       # this edgeseg's postprocess
    git show REV:edgeseg/inference/postprocess.py > old_postprocess.py
    python benchmarks/postprocess_time.py --against old_postprocess.py   # and another one beside it

The network outputs are the shipped student's (ONNX Runtime FP32 at 512) on built-in val images
resized to each ``--frames`` size; only ``postprocess`` is timed (panoptic, instance, semantic and
all three, the shipped thresholds), median of ``--runs`` after one warm-up, both implementations
interleaved. With ``--against`` the outputs are compared too (panoptic / semantic pixels that
differ, instance masks that differ, largest instance-score difference). ``predict()`` on a
1280x720 frame spends most of its time here, not in the network (benchmarks/results/bench.md).
Writes benchmarks/results/postprocess_time.json and .md.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeseg.benchmark.measure import machine_description  # noqa: E402
from edgeseg.benchmark.report import write_record  # noqa: E402
from edgeseg.data.image_io import read_image  # noqa: E402
from edgeseg.inference import postprocess as current  # noqa: E402
from edgeseg.inference.sources import IMAGE_SUFFIXES  # noqa: E402

TASKS = (("panoptic",), ("instance",), ("semantic",), ("panoptic", "instance", "semantic"))


def _module(path: Path):
    spec = importlib.util.spec_from_file_location("postprocess_against", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _compare(a, b) -> dict:
    same_shape = a.instance_masks.shape == b.instance_masks.shape
    return {"panoptic_pixels_differ": float((a.panoptic != b.panoptic).mean()),
            "semantic_pixels_differ": float((a.semantic != b.semantic).mean()),
            "instances": [len(a.instance_scores), len(b.instance_scores)],
            "instance_mask_pixels_differ": float((a.instance_masks != b.instance_masks).mean()) if same_shape else None,
            "instance_score_max_diff": float(np.abs(a.instance_scores - b.instance_scores).max())
            if same_shape and len(a.instance_scores) else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="an ONNX export of the student (default: export the shipped one at 512 here)")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--frames", nargs="+", default=["1280x720", "640x480"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--against", type=Path, help="another postprocess.py to time beside this one")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "postprocess_time.json"))
    args = ap.parse_args()

    from edgeseg.backends import load

    model = args.model
    if model is None:
        from edgeseg.export import export

        model = export("pem_lite0_512", "onnx", "fp32", imgsz=512, out=ROOT / "runs" / "postprocess_time" / "onnx",
                       data=args.data, overwrite=True).path
    predictor = load(model)
    impls = {"this": current}
    if args.against:
        impls["against"] = _module(args.against)
    t = predictor.thresholds
    kw = dict(object_mask_threshold=t.object_mask_threshold, overlap_threshold=t.overlap_threshold,
              mask_threshold=t.mask_threshold)
    paths = sorted(p for p in (Path(args.data) / "val").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[: args.images]
    rows, checks = [], []
    for frame in args.frames:
        w, h = (int(v) for v in frame.split("x"))
        cases = []
        for path in paths:
            image = cv2.resize(read_image(path), (w, h), interpolation=cv2.INTER_LINEAR)
            x, letterbox = predictor.preprocess(image)
            out = predictor.infer(x)
            cases.append((out["class_logits"], out["mask_logits"], letterbox))
        for tasks in TASKS:
            times = {name: [] for name in impls}
            for run in range(args.runs + 1):
                for name, impl in impls.items():
                    for cl, ml, lb in cases:
                        t0 = time.perf_counter()
                        impl.postprocess(cl, ml, lb, predictor.labels, tasks=tasks, **kw)
                        if run:
                            times[name].append(1e3 * (time.perf_counter() - t0))
            row = {"frame": frame, "tasks": "+".join(tasks), "images": len(cases), "runs": args.runs,
                   **{f"{name}_ms": round(statistics.median(v), 1) for name, v in times.items()}}
            if args.against:
                row["speedup"] = round(row["against_ms"] / row["this_ms"], 2)
            rows.append(row)
        if args.against:
            for cl, ml, lb in cases:
                a = current.postprocess(cl, ml, lb, predictor.labels, **kw)
                b = impls["against"].postprocess(cl, ml, lb, predictor.labels, **kw)
                checks.append({"frame": frame, **_compare(a, b)})
    result = {"model": Path(model).name, "machine": machine_description(), "thresholds": kw, "rows": rows,
              "outputs_compared": checks,
              "command": "python benchmarks/postprocess_time.py " + " ".join(
                  a if not a.startswith("/") else Path(a).name for a in sys.argv[1:])}
    md = _markdown(result)
    write_record(args.json, result, md)
    print(md)


def _markdown(result: dict) -> str:
    against = any("against_ms" in r for r in result["rows"])
    head = "| frame | tasks | ms (this) |" + (" ms (against) | speed-up |" if against else "")
    lines = [head, "|---|---|---|" + ("---|---|" if against else "")]
    for r in result["rows"]:
        lines.append(f"| {r['frame']} | {r['tasks']} | {r['this_ms']} |"
                     + (f" {r['against_ms']} | x{r['speedup']} |" if against else ""))
    if result["outputs_compared"]:
        worst = {k: max((c[k] or 0.0) for c in result["outputs_compared"])
                 for k in ("panoptic_pixels_differ", "semantic_pixels_differ", "instance_mask_pixels_differ",
                           "instance_score_max_diff")}
        lines += ["", f"Outputs against the other implementation (worst image): {worst}"]
    mach = result["machine"]
    lines += ["", f"Median per image of {result['rows'][0]['runs']} runs after one warm-up, interleaved; "
              f"{mach.get('cpu')} ({mach.get('arch')}, {mach.get('cores')} cores, {' '.join(mach.get('isa', []))}). "
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
