"""PQ of the shipped student with the previous bilinear (cv2.INTER_LINEAR) against the bit-exact one
(cv2.INTER_LINEAR_EXACT) that preprocessing now uses when it enlarges an image: how far the results
recorded before the change move.

    python benchmarks/resize_exact.py [--model runs/bench/.../onnx_fp32_512/model.onnx] [--val-images 200]

Writes benchmarks/results/resize_exact.json. Both arms score the same val images through the same
model file; only the resize of the (enlarged) input differs.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import cv2

    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.evaluation.evaluate import evaluate
    from edgeseg.inference import preprocess as pre

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an exported model (its runtime scores both arms)")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "resize_exact.json"))
    args = ap.parse_args()
    dataset = CocoPanoptic(args.data, "val")
    predictor = load(args.model, threads=2)
    rows = {}
    exact = cv2.INTER_LINEAR_EXACT
    for arm, flag in (("INTER_LINEAR (before)", cv2.INTER_LINEAR), ("INTER_LINEAR_EXACT (now)", exact)):
        pre.cv2.INTER_LINEAR_EXACT = flag  # the constant preprocess reads when it enlarges
        try:
            m = evaluate(predictor, dataset, max_images=args.val_images, progress=False)
        finally:
            pre.cv2.INTER_LINEAR_EXACT = exact
        rows[arm] = {k: round(float(m[k]), 2) for k in ("pq", "pq_things", "pq_stuff", "miou")}
        print(arm, rows[arm], flush=True)
    doc = {"command": "python benchmarks/resize_exact.py " + " ".join(sys.argv[1:]), "model": Path(args.model).name,
           "val_images": args.val_images, "arms": rows}
    atomic_write_bytes(Path(args.out), json.dumps(doc, indent=1).encode())


if __name__ == "__main__":
    main()
