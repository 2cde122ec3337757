"""Why is things PQ low? Separate "mask not found" from "class not recognised".

    python benchmarks/diagnose_things.py --weights runs/quick/model.pt --images 50 \
        --json benchmarks/results/things_diagnosis_quick.json

For every non-crowd ground-truth thing in the first val images: the best-overlapping query's
mask IoU (raw, mask > 0.5, before panoptic merging), whether its class argmax is right, and
the probabilities of the true class and of no-object. With a silhouette shape head, also that
head's own accuracy on ground-truth silhouettes and on the predicted masks of found things.
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


def _shape_head_accuracy(predictor, ds: CocoPanoptic, images: int) -> dict | None:
    """The silhouette head alone: accuracy on ground-truth thing silhouettes and on the predicted
    mask that best overlaps each found thing (IoU > 0.5), both at the mask resolution."""
    import torch
    import torch.nn.functional as F

    model = getattr(predictor.adapter, "model", None)
    head = getattr(getattr(model, "decoder", None), "shape_head", None)
    if head is None:
        return None
    gt_hits, pred_hits = [], []
    for i in range(min(images, len(ds))):
        s = ds.load_raw(i)
        x, _ = predictor.preprocess(s.image)
        masks, labels, _ = ds.targets(s)
        keep = np.array([ds.isthing[c] for c in labels], bool)
        if not keep.any():
            continue
        with torch.no_grad():
            out = model(torch.from_numpy(x))
            pm = out["pred_masks"][0]
            gt = F.adaptive_avg_pool2d(torch.from_numpy(masks[keep]).float()[:, None], pm.shape[-2:])[:, 0]
            gt_logits = head.classify(gt)[:, :-1]
            pred_logits = head(out["pred_masks"])[0, :, :-1]
            pb, gb = (pm.sigmoid() > 0.5).float(), (gt > 0.5).float()
            inter = torch.einsum("qhw,ghw->gq", pb, gb)
            iou = inter / (pb.sum((1, 2))[None] + gb.sum((1, 2))[:, None] - inter).clamp(min=1)
        for g, label in enumerate(labels[keep]):
            gt_hits.append(int(gt_logits[g].argmax()) == label)
            q = int(iou[g].argmax())
            if iou[g, q] > 0.5:
                pred_hits.append(int(pred_logits[q].argmax()) == label)
    return {"on_ground_truth_silhouettes": float(np.mean(gt_hits)) if gt_hits else 0.0,
            "on_predicted_masks_of_found_things": float(np.mean(pred_hits)) if pred_hits else 0.0,
            "found_things": len(pred_hits)}


def diagnose(weights: str, data: str, images: int) -> dict:
    predictor = load(weights)
    ds = CocoPanoptic(data, "val")
    rows = []
    for i in range(min(images, len(ds))):
        s = ds.load_raw(i)
        x, lb = predictor.preprocess(s.image)
        out = predictor.infer(x)
        cls, masks = out["class_logits"], out["mask_logits"]
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
        "shape_head_accuracy": _shape_head_accuracy(predictor, ds, images),
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
