"""What cutting the shipped student costs before any training: PQ of its weights in cut
configs (fewer decoder layers, a depth-pruned backbone), on train images at 512.

The decoder's class and mask heads are shared by every layer and trained on each layer's output
(deep supervision), so a decoder cut to its first layers still predicts; backbone blocks after a
stage's first are residual, so dropping them keeps every shape. This says which cut the
fine-tuning has to repair. Train images: the probe steers the choice of a candidate.

    python benchmarks/cut_probe.py --images 50    # -> benchmarks/results/cut_probe.json
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

# name -> ModelConfig changes applied to the shipped student's config
_BB12 = [1, 2, 2, 2, 2, 2, 1]  # 12 of EfficientNet-Lite0's [1, 2, 2, 3, 3, 4, 1] blocks
CUTS: dict[str, dict] = {
    "as_shipped": {},
    "decoder_3_layers": {"dec_layers": 3},
    "backbone_12_of_16_blocks": {"backbone_blocks": _BB12},
    "backbone_13_stage6_halved": {"backbone_blocks": [1, 2, 2, 3, 3, 2, 1]},
    "backbone_13_stages_4_5_6": {"backbone_blocks": [1, 2, 2, 2, 3, 3, 1]},
    "mask_stride_8": {"mask_stride": 8},
    "mask_stride_8_bilinear": {"mask_stride": 8, "upsample": "bilinear"},
    "decoder_3_backbone_12": {"dec_layers": 3, "backbone_blocks": _BB12},
    "decoder_3_mask_stride_8": {"dec_layers": 3, "mask_stride": 8},
    "decoder_3_backbone_12_mask_stride_8": {"dec_layers": 3, "backbone_blocks": _BB12, "mask_stride": 8},
    "decoder_3_backbone_12_mask_stride_8_bilinear": {"dec_layers": 3, "backbone_blocks": _BB12, "mask_stride": 8,
                                                     "upsample": "bilinear"},
}


def main() -> None:
    import torch

    from edgeseg.assets import SHIPPED_MODEL, resolve_weights
    from edgeseg.backends import predictor_for_checkpoint
    from edgeseg.backends.torch_backend import TorchAdapter
    from edgeseg.benchmark.measure import machine_description
    from edgeseg.checkpoint import init_from_checkpoint, load_checkpoint
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.evaluation.evaluate import evaluate
    from edgeseg.inference.predictor import Thresholds
    from edgeseg.modeling.build import build_model, config_from_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=SHIPPED_MODEL)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "cut_probe.json"))
    args = ap.parse_args()

    path = resolve_weights(args.weights)
    ckpt = load_checkpoint(path)
    base = dataclasses.replace(config_from_checkpoint(ckpt, str(path)), backbone_weights=None)
    thresholds = Thresholds(**ckpt.get("thresholds", {}))  # the shipped student's calibrated ones (recorded)
    data = CocoPanoptic(args.data, "train")
    rows = []
    for name, change in CUTS.items():
        model = build_model(dataclasses.replace(base, **change), args.imgsz)
        loaded = init_from_checkpoint(model, path)
        predictor = predictor_for_checkpoint(TorchAdapter(model.eval(), args.imgsz), ckpt)
        start = time.perf_counter()
        with torch.inference_mode():
            m = evaluate(predictor, data, max_images=args.images, progress=False)
        rows.append({"cut": name, "changes": change, "tensors_loaded": loaded["loaded"], "pq": round(m["pq"], 2),
                     "things": round(m["pq_things"], 2), "stuff": round(m["pq_stuff"], 2),
                     "seconds": round(time.perf_counter() - start, 1)})
        print(rows[-1], flush=True)
    doc = {"command": "python benchmarks/cut_probe.py --images " + str(args.images), "weights": str(args.weights),
           "split": "train", "images": args.images, "imgsz": args.imgsz, "thresholds": dataclasses.asdict(thresholds),
           "machine": machine_description(), "rows": rows}
    atomic_write_bytes(Path(args.json), json.dumps(doc, indent=2).encode())
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
