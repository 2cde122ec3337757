"""Equal-budget distillation ablation: the same student config, steps and seed, without and with KD.

    python benchmarks/distill_ablation.py --teacher runs/teacher/model.pt            # both arms, seed 0
    python benchmarks/distill_ablation.py --teacher T --seeds 0 1 2                  # 3 seeds per arm
    python benchmarks/distill_ablation.py --teacher T --arms nokd                    # one arm (e.g. in parallel)
    python benchmarks/distill_ablation.py --teacher T --record-only                  # re-read finished runs

Each run is the ``quick`` student recipe (benchmarks/train_recipe.py) in ``runs/ablation/<arm>_s<seed>``,
resumable; KD runs are ``edgeseg distill --teacher T`` with the KD weights of the config
(train.kd). Every finished run gets the recipe's protocol: object-score threshold calibrated on
100 train images, then PQ on the whole val split. Writes benchmarks/results/distill_ablation.json
and .md with per-run PQ, the mean and spread per arm, and KD minus no-KD.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_recipe import CALIBRATION_IMAGES, CONFIG, RECIPES  # noqa: E402

ARMS = ("nokd", "kd")


def run_argv(arm: str, seed: int, teacher: str, data: str, out: str, steps: int) -> list[str]:
    overrides = [o for o in RECIPES["quick"] if not o.startswith("train.steps=")] + [f"train.steps={steps}", f"train.seed={seed}"]
    head = ["train", "--config", CONFIG] if arm == "nokd" else ["distill", "--teacher", teacher, "--student-config", CONFIG]
    return head + ["--out", out, "--data", data, "--set", *overrides]


def score(run: Path, data: str) -> dict:
    """Calibrate the object-score threshold on train images, then PQ on the val split."""
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.calibrate import calibrate_checkpoint
    from edgeseg.evaluation.evaluate import evaluate

    weights = run / "model.pt"
    calibration = calibrate_checkpoint(str(weights), data, split="train", images=CALIBRATION_IMAGES)
    m = evaluate(load(weights), CocoPanoptic(data, "val"), progress=False)
    train_seconds = json.loads((run / "metrics.json").read_text())["train_seconds"]
    pan = m["panoptic"]
    return {"pq": round(pan["all"]["pq"], 2), "sq": round(pan["all"]["sq"], 2), "rq": round(pan["all"]["rq"], 2),
            "pq_things": round(pan["things"]["pq"], 2), "pq_stuff": round(pan["stuff"]["pq"], 2),
            "miou": round(m["miou"], 2), "threshold": calibration["object_mask_threshold"],
            "train_minutes": round(train_seconds / 60, 1)}


def summary(rows: list[dict]) -> dict:
    out = {}
    for arm in ARMS:
        pqs = [r["pq"] for r in rows if r["arm"] == arm]
        if pqs:
            out[arm] = {"runs": len(pqs), "pq_mean": round(statistics.mean(pqs), 2),
                        "pq_spread": round(max(pqs) - min(pqs), 2),
                        "pq_std": round(statistics.stdev(pqs), 2) if len(pqs) > 1 else None}
    if "kd" in out and "nokd" in out:
        out["kd_minus_nokd"] = round(out["kd"]["pq_mean"] - out["nokd"]["pq_mean"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--teacher", required=True, help="teacher checkpoint (.pt) or transformers directory")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--steps", type=int, default=450, help="student steps per run (quick recipe: 450)")
    ap.add_argument("--root", default="runs/ablation")
    ap.add_argument("--record-only", action="store_true")
    args = ap.parse_args()

    from edgeseg.cli import main as cli_main

    if not args.record_only:
        for seed in args.seeds:
            for arm in args.arms:
                out = Path(args.root) / f"{arm}_s{seed}"
                if (out / "metrics.json").exists():
                    continue
                if cli_main(run_argv(arm, seed, args.teacher, args.data, str(out), args.steps)) != 0:
                    sys.exit(2)
    rows = []
    for seed in args.seeds:
        for arm in ARMS:
            run = Path(args.root) / f"{arm}_s{seed}"
            if (run / "metrics.json").exists():
                rows.append({"arm": arm, "seed": seed, **score(run, args.data),
                             "command": "edgeseg " + " ".join(run_argv(arm, seed, args.teacher, args.data, str(run), args.steps))})
    teacher_record = ROOT / "benchmarks" / "results" / "recipe_teacher.json"
    teacher = json.loads(teacher_record.read_text()) if teacher_record.exists() else None
    from edgeseg.config import DistillConfig

    record = {
        "what": "equal-budget KD ablation: same config, steps and seed, without and with distillation",
        "student_config": CONFIG, "steps": args.steps, "seeds": args.seeds,
        "kd_config": DistillConfig().__dict__ | {"teacher": args.teacher},
        "teacher_pq": teacher["pq"]["pq"] if teacher else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "runs": rows, "summary": summary(rows),
    }
    dest = ROOT / "benchmarks" / "results" / "distill_ablation.json"
    dest.write_text(json.dumps(record, indent=2))
    lines = ["| arm | seed | PQ | SQ | RQ | PQ things | PQ stuff | mIoU | train min |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['arm']} | {r['seed']} | {r['pq']} | {r['sq']} | {r['rq']} | {r['pq_things']} | {r['pq_stuff']} | "
              f"{r['miou']} | {r['train_minutes']} |" for r in rows]
    lines += ["", f"summary: {json.dumps(record['summary'])}"]
    (dest.with_suffix(".md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"-> {dest}")


if __name__ == "__main__":
    main()
