"""How much class signal do mask silhouettes carry, and how fast does the shape head learn it?

Trains ``MaskShapeHead`` alone on ground-truth thing silhouettes, area-downsampled to the
stride-4 mask resolution of a 256 px input (64x64), and reports val accuracy over steps:

    python benchmarks/shape_probe.py --json benchmarks/results/shape_probe.json

This is an upper bound for what the head can read off *predicted* masks in the same budget.
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
from edgeseg.modeling.transformer_decoder import MaskShapeHead  # noqa: E402


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
    ap.add_argument("--width", type=int, nargs="*", default=[16, 32])
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train, val = CocoPanoptic(args.data, "train"), CocoPanoptic(args.data, "val")
    xt, yt, _ = silhouettes(train, 600, 64)
    xv, yv, av = silhouettes(val, 100, 64)
    to_logits = lambda x: torch.logit(x.clamp(1e-3, 1 - 1e-3))  # noqa: E731
    out = {"train_silhouettes": len(xt), "val_silhouettes": len(xv), "resolution": 64, "runs": {}}
    for width in args.width:
        torch.manual_seed(0)
        head = MaskShapeHead(len(train.categories) + 1, width=width)
        opt = torch.optim.AdamW(head.parameters(), 1e-3)
        curve, t0 = [], time.time()
        for step in range(1, args.steps + 1):
            idx = torch.randint(0, len(xt), (args.batch,))
            loss = F.cross_entropy(head(to_logits(xt[idx])[None])[0], yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 300 == 0 or step == args.steps:
                with torch.no_grad():
                    hit = head(to_logits(xv)[None])[0].argmax(-1) == yv
                row = {"step": step, "val_acc": float(hit.float().mean()),
                       "val_acc_area_ge_256": float(hit[av >= 256].float().mean()), "seconds": round(time.time() - t0)}
                curve.append(row)
                print(f"width {width}", row, flush=True)
        out["runs"][f"width_{width}"] = curve
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
