"""A PEM head sized for the edge: candidates timed side by side with YOLO26n-seg, then trained.

    python benchmarks/head_sizing.py --time --yolo-onnx runs/peer_latency/yolo/yolo26n-seg.onnx
    python benchmarks/head_sizing.py --train --only NAME ... [--seeds 0 1]
    python benchmarks/head_sizing.py                      # re-read both stages, write the tables

The candidates change sizes, not PEM's idea (prototype cross-attention, CSM pixel decoder):
the pixel decoder's x2 step (PEM's transposed conv or a fixed bilinear resize), its width,
the decoder's layers and FFN width, the number of queries, and the backbone (EfficientNet-Lite0
or MobileNetV3-Small, both ImageNet). The timing stage exports a random-init twin of each
candidate to ONNX and times its FP32 forward in ONNX Runtime and OpenVINO at 1 and 2 threads,
interleaved with YOLO26n-seg in one process (``benchmarks/peer_latency.py``). The training
stage trains each at the equal budget of ``--steps`` (same data, crop, batch, schedule; PQ on
the whole val split at 512 after a threshold calibrated on train images), the protocol of
``benchmarks/ablation_pretrained.py``. Writes benchmarks/results/head_sizing.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

STEPS = 1200
_BILINEAR = ["model.upsample=bilinear"]
_MNV3S = "models/pem_mnv3s_tf_512.yaml"
_LITE0 = "models/pem_lite0_512.yaml"
# name -> (config, --set overrides); "lite0_pem" is the shipped student's head as it was.
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "lite0_pem": (_LITE0, []),
    "lite0_bilinear": (_LITE0, _BILINEAR),
    "lite0_bilinear_d3": (_LITE0, [*_BILINEAR, "model.dec_layers=3"]),
    "lite0_bilinear_p64_d3": (_LITE0, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3"]),
    "lite0_bilinear_p64_d3_q30_f512": (_LITE0, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3",
                                                "model.num_queries=30", "model.ffn_dim=512"]),
    "mnv3s_bilinear_d3": (_MNV3S, [*_BILINEAR, "model.dec_layers=3"]),
    "mnv3s_bilinear_p64_d3": (_MNV3S, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3"]),
    "mnv3s_bilinear_p64_d3_q30_f512": (_MNV3S, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3",
                                                "model.num_queries=30", "model.ffn_dim=512"]),
}


def twin(name: str, root: Path) -> Path:
    """A random-init checkpoint of candidate ``name`` with the shipped label space (timing only)."""
    from scaling import random_checkpoint

    from edgeseg.assets import SHIPPED_MODEL, resolve_weights

    path = root / "timing" / f"{name}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config, overrides = CANDIDATES[name]
        random_checkpoint(str(ROOT / config), resolve_weights(SHIPPED_MODEL), path, overrides)
    return path


def run_timing(args) -> dict:
    from peer_latency import student_onnx, time_models

    from edgeseg.benchmark.measure import machine_description
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.modeling.build import config_from_checkpoint
    from edgeseg.modeling.complexity import model_info

    start = time.perf_counter()
    root = Path(args.root)
    names = args.only or list(CANDIDATES)
    models = {"yolo26n-seg": Path(args.yolo_onnx)}
    info = {}
    for name in names:
        weights = twin(name, root)
        models[name] = student_onnx(weights, args.imgsz, root / "timing")
        cfg = config_from_checkpoint(load_checkpoint(weights), str(weights))
        mi = model_info(cfg, args.imgsz)
        info[name] = {"params_m": mi["params_inference_m"], "gmacs": mi["gmacs"]}
    rows = time_models(models, args.imgsz, args.threads, args.runs, args.warmup)
    doc = {"machine": machine_description(), "imgsz": args.imgsz, "runs": args.runs, "warmup": args.warmup,
           "complexity": info, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    (root / "timing.json").write_text(json.dumps(doc, indent=2))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", action="store_true", help="time random-init twins beside YOLO26n-seg")
    ap.add_argument("--yolo-onnx", help="YOLO26n-seg ONNX at --imgsz (benchmarks/peer_latency.py exports it)")
    ap.add_argument("--only", nargs="+", choices=list(CANDIDATES), help="a subset of the candidates")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--root", default="runs/head_sizing")
    args = ap.parse_args()
    if args.time:
        if not args.yolo_onnx:
            raise SystemExit("--time needs --yolo-onnx")
        run_timing(args)


if __name__ == "__main__":
    main()
