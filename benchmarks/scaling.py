"""How cost grows with the work: latency (and PQ where a trained checkpoint exists) of the student
against input size and backbone.

    python benchmarks/scaling.py [--sizes 256 384 512 640] [--threads 2] [--runs 30]
                                 [--trained pem_lite0_512=models/pem_lite0_512.pt]

Backbones: the configs ``models/pem_mnv3s_384.yaml`` (MobileNetV3-Small), ``pem_lite0_512.yaml``
(EfficientNet-Lite0), ``pem_mnv3l_512.yaml`` (MobileNetV3-Large) and
``pem_swint_512.yaml`` (Swin-T), each built at every size. A backbone
with a trained checkpoint (``--trained``) is timed and scored with it; the others are timed
with random weights (latency does not depend on the weights) and have no PQ. Each
(backbone, size) runs in torch FP32 and in OpenVINO FP32 (exported without parity check: the
bench checks parity), all models of one runtime timed interleaved. Rows share ``edgeseg bench``'s
schema, so ``edgeseg tune --results benchmarks/results/scaling.json`` can choose among them.
Writes ``benchmarks/results/scaling.json`` and ``scaling.png``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKBONES = {"mobilenetv3_small_100": "pem_mnv3s_384", "tf_efficientnet_lite0": "pem_lite0_512",
             "mobilenetv3_large_100": "pem_mnv3l_512", "swin_tiny_patch4_window7_224": "pem_swint_512"}


def random_checkpoint(config_name: str, like: Path, dst: Path, overrides: list[str] = ()) -> Path:
    """A checkpoint of ``models/<config_name>.yaml`` (+ ``--set`` style ``overrides``) with random
    weights and the shipped student's label space and thresholds (for timing only)."""
    import dataclasses

    from edgeseg.assets import resolve_config
    from edgeseg.checkpoint import load_checkpoint, save_checkpoint
    from edgeseg.config import apply_overrides, config_to_dict, load_config
    from edgeseg.modeling.build import build_model

    ref = load_checkpoint(like)
    cfg, train_cfg = apply_overrides(*load_config(resolve_config(config_name)), list(overrides))
    cfg = dataclasses.replace(cfg, num_classes=len(ref["label_space"]["class_names"]), backbone_weights=None)
    model = build_model(cfg)
    save_checkpoint(dst, {"model": model.state_dict(), "model_config": config_to_dict(cfg, train_cfg)["model"],
                          "label_space": ref["label_space"], "thresholds": ref.get("thresholds", {}),
                          "train_config": {"data": str(ROOT / "data" / "synth")}, "untrained": True})
    return dst


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5), dpi=110)
    colors = {"mobilenetv3_small_100": "tab:green", "tf_efficientnet_lite0": "tab:orange",
              "mobilenetv3_large_100": "tab:blue", "swin_tiny_patch4_window7_224": "tab:red"}
    styles = {"torch": "--", "openvino": "-"}
    names = {"mobilenetv3_small_100": "MobileNetV3-S", "tf_efficientnet_lite0": "EfficientNet-Lite0",
             "mobilenetv3_large_100": "MobileNetV3-L",
             "swin_tiny_patch4_window7_224": "Swin-T"}
    for bb, color in colors.items():
        for rt, ls in styles.items():
            pts = sorted((r for r in rows if r["backbone"] == bb and r["runtime"] == rt and r.get("forward_ms")),
                         key=lambda r: r["gmacs"])
            if pts:
                ax1.plot([r["gmacs"] for r in pts], [r["forward_ms"] for r in pts], ls, marker="o", color=color,
                         label=f"{names[bb]} {rt}")
                for r in pts:
                    ax1.annotate(str(r["imgsz"]), (r["gmacs"], r["forward_ms"]), fontsize=7, xytext=(3, -9),
                                 textcoords="offset points")
        pts = sorted((r for r in rows if r["backbone"] == bb and r["runtime"] == "openvino" and r.get("pq") is not None),
                     key=lambda r: r["imgsz"])
        if pts:
            ax2.plot([r["imgsz"] for r in pts], [r["pq"] for r in pts], marker="o", color=color,
                     label=f"{names[bb]} PQ")
            ax2.plot([r["imgsz"] for r in pts], [r["pq_things"] for r in pts], ":", marker=".", color=color,
                     label=f"{names[bb]} things PQ")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("GMACs per image (labels: input size)")
    ax1.set_ylabel("forward latency, ms (median)")
    ax1.set_title("latency against work")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.set_xlabel("input size S")
    ax2.set_ylabel("PQ on val (trained checkpoints only)")
    ax2.set_title("accuracy against input size")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    from edgeseg.assets import SHIPPED_MODEL, resolve_weights
    from edgeseg.benchmark.artifacts import Artifact
    from edgeseg.benchmark.bench import _accuracy, _frame_step, _gmacs, _load
    from edgeseg.benchmark.measure import (
        machine_description,
        summarize_ms,
        time_interleaved,
    )
    from edgeseg.benchmark.report import mark_pareto, write_report
    from edgeseg.checkpoint import file_sha256, load_checkpoint
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.export import export
    from edgeseg.formats import RUNTIME_OF

    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", type=int, default=[256, 384, 512, 640])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--val-images", type=int, default=200)
    ap.add_argument("--trained", nargs="*", default=[f"{SHIPPED_MODEL}=models/{SHIPPED_MODEL}.pt"],
                    help="CONFIG=CHECKPOINT pairs of trained students")
    ap.add_argument("--work", default="runs/scaling")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shipped = resolve_weights(SHIPPED_MODEL)
    trained = dict(item.split("=", 1) for item in args.trained)
    dataset = CocoPanoptic(args.data, "val")
    arts: list[tuple[str, Artifact, bool]] = []
    for backbone, config in BACKBONES.items():
        weights = Path(trained[config]) if config in trained else work / f"{config}_random.pt"
        if config not in trained and not weights.exists():
            random_checkpoint(config, shipped, weights)
        for size in args.sizes:
            arts.append((backbone, Artifact(weights, "torch", "fp32", size, weights, "reference"), config in trained))
            # the folder names the checkpoint's hash: a retrained checkpoint must not reuse
            # (and be scored through) an export of the old one
            folder = work / f"{config}-{file_sha256(weights, 64)[:8]}_openvino_{size}"
            if not (folder / "model.xml").exists():
                print(f"export {config} openvino {size}", flush=True)
                export(weights, "openvino", "fp32", size, out=folder, check=False, overwrite=True)
            arts.append((backbone, Artifact(weights, "openvino", "fp32", size, folder / "model.xml", "exported"),
                         config in trained))
    rows = []
    frames = {"val": dataset.load_raw(0).image}  # the network's scaling: one frame kind, the val image
    for runtime in ("torch", "openvino"):
        group = [(bb, a, t) for bb, a, t in arts if a.format == runtime]
        steps = {i: _frame_step(_load(a, args.threads), frames) for i, (_, a, _) in enumerate(group)}
        print(f"timing {len(steps)} {runtime} models, {args.runs} runs each", flush=True)
        times = time_interleaved(steps, args.runs, args.warmup)
        for i, (bb, a, is_trained) in enumerate(group):
            ckpt_cfg = load_checkpoint(a.weights)["model_config"]
            fwd, frame = summarize_ms(times[i]["forward"]), summarize_ms(times[i]["frame_val"])
            fps_val = round(1000 / frame["median_ms"], 2)
            row = {"model": ckpt_cfg["name"], "backbone": bb, "role": "student", "weights": str(a.weights),
                   "trained": is_trained, "format": a.format, "runtime": RUNTIME_OF[a.format], "precision": "fp32",
                   "imgsz": a.imgsz, "threads": args.threads, "status": a.status, "reason": "",
                   "gmacs": _gmacs(ckpt_cfg, a.imgsz), "forward_ms": fwd["median_ms"], "forward_p90_ms": fwd["p90_ms"],
                   # the one frame timed here is the val image: named as such, so that tune and the
                   # tables never read it as bench's 1280x720 camera frame
                   "frame_ms": frame["median_ms"], "frame_p90_ms": frame["p90_ms"],
                   "frame_val_ms": frame["median_ms"], "frame_val_p90_ms": frame["p90_ms"],
                   "fps": fps_val, "fps_val": fps_val,
                   "timed_runs": fwd["runs"]}
            if is_trained and runtime == "openvino":
                row.update(_accuracy(a, args.threads, dataset, args.val_images))
                print(f"{row['model']} {a.imgsz}: PQ {row['pq']:.1f}", flush=True)
            rows.append(row)
            print(f"{row['model']} {runtime} {a.imgsz}: {row['gmacs']:.2f} GMACs, forward {row['forward_ms']:.1f} ms",
                  flush=True)
        del steps
    mark_pareto(rows)
    doc = {"command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]), "machine": machine_description(),
           "timed": {"call": "Predictor.predict(frame) with its defaults (tasks: all)",
                     "frames": {"val": list(frames["val"].shape[1::-1])}, "headline": "val"},
           "threads": args.threads, "timed_runs": args.runs, "rows": rows,
           "seconds": round(time.perf_counter() - start, 1)}
    out = ROOT / "benchmarks" / "results"
    write_report(doc, out, stem="scaling")  # scaling.json / .md (+ a Pareto plot of the trained rows)
    plot(rows, out / "scaling.png")
    print(f"wrote {out / 'scaling.json'} and scaling.png in {doc['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
