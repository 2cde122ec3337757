"""Why is things PQ low? Separate "mask not found" from "class not recognised".

    python benchmarks/diagnose_things.py --weights runs/quick/model.pt --images 50 \
        --json benchmarks/results/things_diagnosis_quick.json

For every non-crowd ground-truth thing in the first val images: the best-overlapping query's
mask IoU (raw, mask > 0.5, before panoptic merging), whether its class argmax is right, and
the probabilities of the true class and of no-object.
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from edgeseg.backends import load  # noqa: E402
from edgeseg.data.coco_panoptic import CocoPanoptic  # noqa: E402
from edgeseg.inference.postprocess import sigmoid, softmax, upsample_masks  # noqa: E402
from edgeseg.inference.preprocess import preprocess  # noqa: E402


def diagnose(weights: str, data: str, images: int) -> dict:
    predictor = load(weights)
    ds = CocoPanoptic(data, "val")
    rows = []
    for i in range(min(images, len(ds))):
        s = ds.load_raw(i)
        x, lb = preprocess(s.image, predictor.input_size)
        cls, masks = predictor.adapter.forward(x)
        prob = softmax(cls[0])
        pred = sigmoid(upsample_masks(masks[0], lb)) > 0.5
        for seg in s.segments:
            ci = ds.cat_id_to_index[seg["category_id"]]
            if seg["iscrowd"] or not ds.isthing[ci]:
                continue
            gt = s.panoptic == seg["id"]
            inter = (pred & gt).sum((1, 2))
            iou = inter / np.maximum((pred | gt).sum((1, 2)), 1)
            q = int(iou.argmax())
            rows.append((float(iou[q]), int(prob[q, :-1].argmax() == ci), float(prob[q, ci]), float(prob[q, -1]), int(gt.sum())))
    a = np.array(rows)
    found = a[:, 0] > 0.5
    return {
        "weights": weights, "val_images": images, "gt_things": len(rows),
        "mask_found_share": float(found.mean()),
        "class_correct_share_of_found": float(a[found, 1].mean()) if found.any() else 0.0,
        "chance_level": 1 / sum(ds.isthing),
        "mean_p_true_class_of_found": float(a[found, 2].mean()) if found.any() else 0.0,
        "mean_p_no_object_of_found": float(a[found, 3].mean()) if found.any() else 0.0,
        "median_area_found_px": float(np.median(a[found, 4])) if found.any() else 0.0,
        "median_area_missed_px": float(np.median(a[~found, 4])) if (~found).any() else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = diagnose(args.weights, args.data, args.images)
    for k, v in out.items():
        print(f"{k:>32}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
