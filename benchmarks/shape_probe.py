"""How fast can a head learn thing classes from mask silhouettes, with and without scale
normalisation?

Trains the silhouette CNN of ``SilhouetteShapeHead`` alone on ground-truth thing silhouettes,
area-downsampled to the stride-4 mask resolution of a 256 px input (64x64), two ways:

- ``full``: the CNN reads the whole 64x64 map (objects at their own size and place; what the
  earlier, un-normalised ``MaskShapeHead`` did);
- ``normalised``: the CNN reads the head's own scale-normalised 24x24 crop (moments + separable
  bilinear resampling, ``edgeseg/modeling/shape_head.py``).

    python benchmarks/shape_probe.py --json benchmarks/results/shape_probe.json

Val accuracy over steps (8 thing classes, chance 12.5 %), also for objects >= 256 px. This is an
upper bound for what the head reads off *predicted* masks.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgeseg.data.coco_panoptic import CocoPanoptic  # noqa: E402
from edgeseg.modeling.shape_head import SilhouetteShapeHead  # noqa: E402


def silhouettes(ds: CocoPanoptic, n: int, res: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    xs, ys, areas = [], [], []
    for i in range(min(n, len(ds))):
        masks, labels, _ = ds.targets(ds.load_raw(i))
        keep = np.array([ds.isthing[c] for c in labels], bool)
        if keep.any():
            t = torch.from_numpy(masks[keep]).float()[:, None]
            xs.append(F.adaptive_avg_pool2d(t, (res, res))[:, 0])
            ys.append(torch.from_numpy(labels[keep]))
            areas.append(torch.from_numpy(masks[keep].sum((1, 2))))
    return torch.cat(xs), torch.cat(ys), torch.cat(areas)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, val = CocoPanoptic(args.data, "train"), CocoPanoptic(args.data, "val")
    xt, yt, _ = silhouettes(train, 600, 64)
    xv, yv, av = silhouettes(val, 100, 64)
    out = {"train_silhouettes": len(xt), "val_silhouettes": len(xv), "resolution": 64,
           "steps": args.steps, "batch": args.batch, "runs": {}}
    for mode in ("full", "normalised"):
        torch.manual_seed(0)
        head = SilhouetteShapeHead(len(train.categories) + 1)
        head.fc.reset_parameters()
        inputs = (lambda p: p[:, None]) if mode == "full" else head.crops  # noqa: E731
        opt = torch.optim.AdamW(head.parameters(), 2e-3)
        curve, t0 = [], time.time()
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(xt), (args.batch,))
            loss = F.cross_entropy(head.classify_crops(inputs(xt[idx])), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 300 == 0 or step == args.steps:
                with torch.no_grad():
                    hit = head.classify_crops(inputs(xv)).argmax(-1) == yv
                row = {"step": step, "val_acc": round(float(hit.float().mean()), 4),
                       "val_acc_area_ge_256": round(float(hit[av >= 256].float().mean()), 4),
                       "val_acc_area_lt_256": round(float(hit[av < 256].float().mean()), 4),
                       "seconds": round(time.time() - t0)}
                curve.append(row)
                print(mode, row, flush=True)
        out["runs"][mode] = curve
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
