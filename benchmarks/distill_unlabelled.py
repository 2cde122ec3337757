"""Few labels, many frames: 500 labelled images alone against the same 500 plus 2,000 unlabelled
images labelled by a teacher (``edgeseg distill --unlabelled``), at equal steps.

    python benchmarks/distill_unlabelled.py                        # 3 arms, seed 0
    python benchmarks/distill_unlabelled.py --arms labelled kd_unlabelled --seeds 0 1
    python benchmarks/distill_unlabelled.py --record-only          # re-read finished runs

Data (built-in generator, every image depends only on (seed, split, index)):
- labelled: the first 500 train images of the built-in set (seed 0) and its 200 val images
  (``data/synth_500``; the same val split as every other table);
- unlabelled: 2,000 *new* images (seed 1, ``data/synth_frames/train``), their labels never read.

Arms, all the shipped student's config (``models/pem_lite0_512.yaml``, ImageNet Lite0) at the
same steps, batch and schedule:
- ``labelled``: ground truth on the 500 only (what a user without a teacher does);
- ``kd``: the same plus matched-query KD from the teacher (the teacher's help on labelled images);
- ``kd_unlabelled``: the same plus the 2,000 frames with the teacher's labels, half of each
  batch (``train.unlabelled_fraction`` 0.5).

The teacher is the best one this project has: by default the shipped student
(``pem_lite0_512``), trained on all 2,000 labelled train images. So this measures what a
teacher's labels on new frames give a student that has few labels of its own, not a teacher
trained from the same 500. Each run: object-score threshold calibrated on train images, then
PQ on the 200 val images at 512, per-image statistics kept for a paired bootstrap against
``labelled``. Runs in ``runs/distill_unlabelled/<arm>_s<seed>``, resumable. Writes
benchmarks/results/distill_unlabelled.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from ablation_pretrained import CONFIG, run_one  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ARMS = ("labelled", "kd", "kd_unlabelled")


def arm_overrides(arm: str, teacher: str, frames: Path, fraction: float) -> list[str]:
    kd = [f"train.kd.teacher={teacher}"]
    return {"labelled": [], "kd": kd,
            "kd_unlabelled": [*kd, f"train.unlabelled={frames}", f"train.unlabelled_fraction={fraction}"]}[arm]


def make_data(root: Path, labelled: int, unlabelled: int) -> tuple[Path, Path]:
    """The labelled subset (seed 0) and the unlabelled frames (seed 1, images only), generated once."""
    from edgeseg.data.synth import SynthConfig, generate_synthetic

    few = root / f"synth_{labelled}"
    if not (few / "annotations" / "panoptic_val.json").exists():
        generate_synthetic(few, seed=0, config=SynthConfig(image_size=256, num_train=labelled, num_val=200))
    frames = root / "synth_frames"
    if not (frames / "annotations" / "panoptic_train.json").exists():
        generate_synthetic(frames, seed=1, config=SynthConfig(image_size=256, num_train=unlabelled, num_val=1))
    return few, frames / "train"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", default="pem_lite0_512", help="teacher checkpoint, shipped name or transformers dir")
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--labelled", type=int, default=500)
    ap.add_argument("--unlabelled", type=int, default=2000)
    ap.add_argument("--fraction", type=float, default=0.5, help="train.unlabelled_fraction of the kd_unlabelled arm")
    ap.add_argument("--data-root", default="data")
    ap.add_argument("--root", default="runs/distill_unlabelled")
    ap.add_argument("--record-only", action="store_true")
    args = ap.parse_args()

    few, frames = make_data(Path(args.data_root), args.labelled, args.unlabelled)
    root = Path(args.root)
    if not args.record_only:
        for seed in args.seeds:
            for arm in args.arms:
                out = root / f"{arm}_s{seed}"
                if not (out / "score.json").exists():
                    t0 = time.time()
                    run_one(arm, CONFIG, arm_overrides(arm, args.teacher, frames, args.fraction), seed, str(few), out,
                            args.steps)
                    print(f"{arm} seed {seed}: {(time.time() - t0) / 60:.1f} min", flush=True)
    record(args, few, frames)


def record(args, few: Path, frames: Path) -> None:
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.evaluation.panoptic_quality import paired_bootstrap

    rows, stats, isthing = [], {}, None
    for arm in ARMS:
        for run in sorted(Path(args.root).glob(f"{arm}_s*")):
            if not (run / "score.json").exists():
                continue
            row = json.loads((run / "score.json").read_text())
            row["arm"] = arm
            row.pop("variant", None)
            history = load_checkpoint(run / "model.pt").get("history", [])
            row["unlabelled"] = next((h["unlabelled"] for h in history if "unlabelled" in h), None)
            rows.append(row)
            stats.setdefault(arm, []).append(np.load(run / "per_image.npy"))
            isthing = np.load(run / "isthing.npy")
    summary = {}
    for arm in ARMS:
        arm_rows = [r for r in rows if r["arm"] == arm]
        if not arm_rows:
            continue
        summary[arm] = {"runs": len(arm_rows), "seeds": [r["seed"] for r in arm_rows],
                        **{k: round(statistics.mean(r[k] for r in arm_rows), 2) for k in ("pq", "pq_things", "pq_stuff", "miou")},
                        "minutes_per_run": round(statistics.mean(r["train_minutes"] for r in arm_rows), 1)}
        if arm != "labelled" and "labelled" in stats:
            summary[arm]["vs_labelled"] = paired_bootstrap(stats["labelled"], stats[arm], isthing)
    if "kd" in stats and "kd_unlabelled" in stats:
        summary["kd_unlabelled"]["vs_kd"] = paired_bootstrap(stats["kd"], stats["kd_unlabelled"], isthing)
    command = "python benchmarks/distill_unlabelled.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in (("teacher", args.teacher), ("steps", args.steps), ("seeds", args.seeds),
                     ("labelled", args.labelled), ("unlabelled", args.unlabelled), ("fraction", args.fraction)))
    from edgeseg.benchmark.measure import machine_description

    doc = {"what": "500 labelled images alone vs + 2,000 teacher-labelled frames, equal steps",
           "student_config": CONFIG, "teacher": args.teacher, "steps": args.steps,
           "labelled_data": f"built-in set seed 0, first {args.labelled} train images; 200 val images",
           "unlabelled_data": f"{args.unlabelled} new images of the built-in generator (seed 1), labels not read",
           "machine": machine_description(), "command": command, "runs": rows, "summary": summary}
    dest = RESULTS / "distill_unlabelled.json"
    atomic_write_bytes(dest, json.dumps(doc, indent=2).encode())
    lines = ["| arm | seed | PQ | things | stuff | mIoU | train min | vs labelled: PQ (95% paired) | things |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vs = summary[r["arm"]].get("vs_labelled")
        gap = f"{vs['all']['diff']:+.2f} {vs['all']['ci']}" if vs else ""
        things = f"{vs['things']['diff']:+.2f} {vs['things']['ci']}" if vs else ""
        lines.append(f"| {r['arm']} | {r['seed']} | {r['pq']} | {r['pq_things']} | {r['pq_stuff']} | {r['miou']} | "
                     f"{r['train_minutes']} | {gap} | {things} |")
    lines += ["", f"{CONFIG}, {args.steps} steps x 8 at 256, teacher {args.teacher}; PQ on 200 val images at 512; "
              f"{doc['machine']['cpu']}; command: {command}"]
    atomic_write_bytes(dest.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
