"""Equal-budget ablation of edgeseg's four student additions on a pretrained backbone.

PEM as published (``models/pem_lite0_512.yaml``: ImageNet EfficientNet-Lite0, the four additions
off) against each addition switched on alone and all four together. Every run has the same
steps, batch, crop and schedule; only the switches (and the loss or warm start an addition
brings with it) differ. Every finished run gets the recipe protocol: object-score threshold
calibrated on 100 *train* images, then PQ on the whole val split at the serving size. The
per-image PQ statistics are kept, so that each variant is compared with the plain one by a
paired bootstrap over the same val images (``edgeseg.evaluation.panoptic_quality.paired_bootstrap``).

    python benchmarks/ablation_pretrained.py                       # 6 variants x seeds 0 1, 2 at a time
    python benchmarks/ablation_pretrained.py --seeds 2 --variants plain all   # a third seed, one pair
    python benchmarks/ablation_pretrained.py --time-steps 10 --threads 2   # ms per step, side by side
    python benchmarks/ablation_pretrained.py --record-only         # re-read finished runs, write tables

Runs live in ``runs/ablation_pretrained/<variant>_s<seed>`` and resume from their last
checkpoint when the script is started again. Each training process gets ``--threads`` threads.
Writes benchmarks/results/ablation_pretrained.json and .md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "models/pem_lite0_512.yaml"
CALIBRATION_IMAGES = 100
# the budget of every run (the config's batch 8 at 256 px, lr 1e-3, backbone 0.1x, poly)
STEPS = 400
BUDGET = ["train.warmup_steps=50", "train.checkpoint_every=50"]
_SHAPE = ["model.mask_shape_class=true", "train.loss.shape_weight=1.0",
          "train.shape_pretrain_steps=2400", "train.shape_pretrain_images=600"]
# variant -> --set overrides on top of the config (which has all four off)
VARIANTS: dict[str, list[str]] = {
    "plain": [],
    "semantic_aux": ["model.semantic_aux=true", "train.loss.semantic_weight=1.0"],
    "mask_pooled_class": ["model.mask_pooled_class=true"],
    "mask_coords": ["model.mask_coords=true"],
    "mask_shape_class": _SHAPE,
    "all": ["model.semantic_aux=true", "train.loss.semantic_weight=1.0", "model.mask_pooled_class=true",
            "model.mask_coords=true", *_SHAPE],
}


def train_argv(config: str, overrides: list[str], seed: int, data: str, out: Path, steps: int = STEPS) -> list[str]:
    return ["train", "--config", config, "--out", str(out), "--data", data, "--set", f"train.steps={steps}", *BUDGET,
            f"train.seed={seed}", *overrides]


def run_one(name: str, config: str, overrides: list[str], seed: int, data: str, out: Path, steps: int = STEPS) -> None:
    """Train (or resume) one run of ``config`` + ``overrides`` at the equal budget, then calibrate on
    train images and score val; writes score.json and per_image.npy (per val image and class:
    IoU sum, TP, FP, FN) in the run directory. Shared with benchmarks/backbone_choice.py."""
    from edgeseg.backends import load
    from edgeseg.cli import main as cli_main
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.calibrate import calibrate_checkpoint
    from edgeseg.evaluation.evaluate import score_split, summarise

    if not (out / "metrics.json").exists() and cli_main(train_argv(config, overrides, seed, data, out, steps)) != 0:
        sys.exit(2)
    weights = out / "model.pt"
    calibration = calibrate_checkpoint(str(weights), data, split="train", images=CALIBRATION_IMAGES)
    score = score_split(load(weights), CocoPanoptic(data, "val"), progress=False)
    m = summarise(score)
    steps, per_step, warm = run_timing(out)
    pan = m["panoptic"]
    record = {
        "variant": name, "config": config, "seed": seed, "steps": steps,
        "pq": round(pan["all"]["pq"], 2), "sq": round(pan["all"]["sq"], 2), "rq": round(pan["all"]["rq"], 2),
        "pq_things": round(pan["things"]["pq"], 2), "pq_stuff": round(pan["stuff"]["pq"], 2),
        "miou": round(m["miou"], 2), "pq_ci95": m["pq_ci95"], "val_images": m["images"],
        "threshold": calibration["object_mask_threshold"],
        "train_minutes": round((per_step * steps + warm) / 60, 1),
        # the main loop's wall-clock per step (the shape head's warm start, if any, apart)
        "seconds_per_step": per_step,
        "warm_start_seconds": warm,
        "command": "edgeseg " + " ".join(train_argv(config, overrides, seed, data, out, steps)),
    }
    np.save(out / "per_image.npy", np.stack(score.pq.per_image))
    np.save(out / "isthing.npy", score.pq.isthing)
    (out / "score.json").write_text(json.dumps(record, indent=2))


def run_timing(out: Path) -> tuple[int, float, float]:
    """(steps, main-loop seconds per step, warm-start seconds) of a finished run. The shape head's
    warm start is in the checkpoint's history (and in train_seconds), not in log.jsonl."""
    from edgeseg.checkpoint import load_checkpoint

    trained = json.loads((out / "metrics.json").read_text())
    history = load_checkpoint(out / "model.pt").get("history", [])
    warm = next((r["shape_pretrain"]["seconds"] for r in history if "shape_pretrain" in r), 0.0)
    steps = int(trained["step"])
    return steps, round((trained["train_seconds"] - warm) / max(steps, 1), 3), round(warm, 1)


def schedule(jobs: list[tuple[str, int]], args, script: str = __file__, extra: tuple[str, ...] = ()) -> None:
    """Run the (name, seed) jobs ``args.parallel`` at a time, each a ``script --one NAME SEED``
    process with ``args.threads`` threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < args.parallel:
            variant, seed = pending.pop(0)
            out = Path(args.root) / f"{variant}_s{seed}"
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "run.log", "a")  # noqa: SIM115 (the child process writes it until it exits)
            cmd = [sys.executable, script, "--one", variant, str(seed), "--data", args.data, "--root", args.root,
                   "--steps", str(args.steps), *extra]
            running.append((variant, seed, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
            print(f"started {variant} seed {seed}", flush=True)
        time.sleep(5)
        for item in list(running):
            if item[2].poll() is not None:
                running.remove(item)
                print(f"{item[0]} seed {item[1]}: exit {item[2].returncode}", flush=True)


def time_steps(args) -> dict:
    """Wall-clock of one training step (batch, crop and loss of the budget) for every variant,
    measured side by side in one process: the same fixed batch, rounds interleaved, median of
    ``args.time_steps`` after warm-up. The training runs' own ``seconds_per_step`` include data
    loading and whatever else shared the machine; this is the like-for-like cost."""
    import torch

    from edgeseg.assets import resolve_config
    from edgeseg.benchmark.measure import (
        machine_description,
        summarize_ms,
        time_interleaved,
    )
    from edgeseg.config import apply_overrides, load_config
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.modeling.build import build_model, num_aux_outputs
    from edgeseg.training.data_stream import TrainStream, collate
    from edgeseg.training.losses import SetCriterion
    from edgeseg.training.trainer import build_optimizer, label_space_of

    torch.set_num_threads(args.threads)
    dataset = CocoPanoptic(args.data, "train")
    labels = label_space_of(dataset)
    things = [i for i, t in enumerate(labels.isthing) if t]
    steps = {}
    for variant in args.variants:
        model_cfg, train_cfg = apply_overrides(*load_config(resolve_config(CONFIG)), VARIANTS[variant])
        model_cfg = dataclasses.replace(model_cfg, num_classes=labels.num_classes)
        stream = TrainStream(dataset, train_cfg.image_size, train_cfg.scale_range, 0,
                             mean=model_cfg.pixel_mean, std=model_cfg.pixel_std)
        images, targets = collate([stream[i] for i in range(train_cfg.batch_size)])
        torch.manual_seed(0)
        model = build_model(model_cfg, image_size=train_cfg.image_size).train()
        criterion = SetCriterion(model_cfg.num_classes, train_cfg.loss, num_aux=num_aux_outputs(model), shape_classes=things)
        optimizer = build_optimizer(model, train_cfg)
        gt = [t["masks"] for t in targets] if model_cfg.mask_shape_class else None

        def step(model=model, criterion=criterion, optimizer=optimizer, images=images, targets=targets, gt=gt):
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            losses = criterion(model(images, gt), targets, float(sum(len(t["labels"]) for t in targets)))
            sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict).backward()
            optimizer.step()
            return {"step": time.perf_counter() - t0}

        steps[variant] = step
    times = time_interleaved(steps, args.time_steps, warmup=2)
    out = {"threads": args.threads, "machine": machine_description(),
           "step_ms": {v: summarize_ms(t["step"]) for v, t in times.items()}}
    Path(args.root).mkdir(parents=True, exist_ok=True)
    (Path(args.root) / "step_timing.json").write_text(json.dumps(out, indent=2))
    return out


RESULTS = ROOT / "benchmarks" / "results"
# every recorded run's per-image PQ statistics, so that a later seed pairs with the runs already in
# the table without training them again
PER_IMAGE = RESULTS / "ablation_pretrained_per_image.npz"


def recorded_table(steps: int) -> dict:
    """The committed table, when it was made at ``steps`` steps per run (else empty)."""
    recorded = RESULTS / "ablation_pretrained.json"
    old = json.loads(recorded.read_text()) if recorded.exists() else {}
    return old if old.get("steps") == steps else {}


def collect_runs(root: Path, old: dict) -> tuple[dict[str, list[dict]], dict[str, list[np.ndarray | None]], np.ndarray | None]:
    """Every finished run of the table, by variant and seed: the ones under ``root`` and the ones
    already recorded in ``old`` (with their per-image statistics from ``PER_IMAGE`` where it has
    them, else ``None``: such a run counts in the means but cannot be paired again); ``root``
    wins a tie."""
    found: dict[tuple[str, int], tuple[dict, np.ndarray | None]] = {}
    isthing = None
    saved = dict(np.load(PER_IMAGE)) if PER_IMAGE.exists() else {}
    for row in old.get("runs", []):
        found[(row["variant"], row["seed"])] = (row, saved.get(f"{row['variant']}_s{row['seed']}"))
    isthing = saved.get("isthing")
    for variant in VARIANTS:
        for run in sorted(root.glob(f"{variant}_s*")):
            if (run / "score.json").exists():
                row = json.loads((run / "score.json").read_text())
                row["variant"] = variant  # backbone_choice.py trains the plain run under its own name
                done, per_step, warm = run_timing(run)  # re-read: older score files lacked the warm start
                row.update(seconds_per_step=per_step, warm_start_seconds=warm, train_minutes=round((per_step * done + warm) / 60, 1))
                earlier = found.get((variant, row["seed"]), ({}, None))[0]
                if earlier and earlier.get("pq") != row["pq"]:
                    # the same run trained again (training is not bit-reproducible across machines):
                    # the new one, with its statistics, takes the row; the earlier one stays on record
                    row["replaces"] = earlier.get("replaces", []) + [{k: earlier.get(k) for k in (
                        "pq", "pq_things", "pq_stuff", "miou", "threshold")}]
                found[(variant, row["seed"])] = (row, np.load(run / "per_image.npy"))
                isthing = np.load(run / "isthing.npy")
    runs: dict[str, list[dict]] = {}
    stats: dict[str, list[np.ndarray | None]] = {}
    for (variant, _), (row, per_image) in sorted(found.items(), key=lambda kv: (list(VARIANTS).index(kv[0][0]), kv[0][1])):
        runs.setdefault(variant, []).append(row)
        stats.setdefault(variant, []).append(per_image)
    return runs, stats, isthing


def record(args) -> None:
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.evaluation.panoptic_quality import paired_bootstrap

    old = recorded_table(args.steps)
    runs, stats, isthing = collect_runs(Path(args.root), old)
    summary = {}
    for variant, rows in runs.items():
        summary[variant] = {
            "seeds": [r["seed"] for r in rows],
            **{f"{k}_mean": round(statistics.mean(r[k] for r in rows), 2) for k in ("pq", "pq_things", "pq_stuff", "miou")},
            "seconds_per_step": round(statistics.mean(r["seconds_per_step"] for r in rows), 3),
            "warm_start_seconds": round(statistics.mean(r["warm_start_seconds"] for r in rows), 1),
        }
        if variant == "plain" or "plain" not in runs:
            continue
        # pair only the seeds both arms have statistics for, so that seed noise is paired as well
        have = {v: {r["seed"] for r, a in zip(runs[v], stats[v]) if a is not None} for v in ("plain", variant)}
        seeds = sorted(have["plain"] & have[variant])
        earlier = old.get("summary", {}).get(variant, {}).get("vs_plain")
        if earlier and len(earlier["seeds"]) > len(seeds):
            # a pairing recorded before per-image statistics were kept covers more seeds: keep it
            # (against the plain runs of that time: a retrained plain run lists them in "replaces")
            summary[variant]["vs_plain"] = earlier
            if seeds:  # the seeds with statistics on both arms, paired on their own as well
                plain = [a for a, r in zip(stats["plain"], runs["plain"]) if r["seed"] in seeds]
                mine = [a for a, r in zip(stats[variant], rows) if r["seed"] in seeds]
                summary[variant]["vs_plain_other_seeds"] = {"seeds": seeds, **paired_bootstrap(plain, mine, isthing)}
        elif seeds:
            plain = [a for a, r in zip(stats["plain"], runs["plain"]) if r["seed"] in seeds]
            mine = [a for a, r in zip(stats[variant], rows) if r["seed"] in seeds]
            summary[variant]["vs_plain"] = {"seeds": seeds, **paired_bootstrap(plain, mine, isthing)}
        if "vs_plain" in summary[variant]:
            summary[variant]["helps_beyond_interval"] = summary[variant]["vs_plain"]["all"]["ci"][0] > 0
    from edgeseg.config import load_config

    timing_path = Path(args.root) / "step_timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else old.get("step_timing_side_by_side")
    for variant, s in summary.items():
        if timing and variant in timing["step_ms"]:
            s["step_ms_side_by_side"] = timing["step_ms"][variant]["median_ms"]
    out = {
        "what": "equal-budget ablation of the four edgeseg additions on ImageNet EfficientNet-Lite0, PEM as published = plain",
        "config": CONFIG, "steps": args.steps, "budget": BUDGET, "variants": VARIANTS,
        "train": {k: v for k, v in load_config(ROOT / CONFIG)[1].__dict__.items() if k in ("batch_size", "image_size", "lr", "backbone_lr_mult", "schedule")},
        "protocol": f"threshold calibrated on {CALIBRATION_IMAGES} train images; PQ on the whole val split at the config's serving size; "
                    "paired bootstrap (2000 resamples of the same val images) of the variant's seed mean minus plain's",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} thread(s) per run, {args.parallel} run(s) at a time",
        # what reproduces every run in the table (each run's own train command is in "runs")
        "command": "python benchmarks/ablation_pretrained.py --seeds "
                   + " ".join(map(str, sorted({r["seed"] for rows in runs.values() for r in rows}))),
        "step_timing_side_by_side": timing,
        "runs": [r for rows in runs.values() for r in rows], "summary": summary,
    }
    dest = RESULTS / "ablation_pretrained.json"
    arrays = {f"{r['variant']}_s{r['seed']}": a for v, rows in runs.items() for r, a in zip(rows, stats[v]) if a is not None}
    if arrays:
        tmp = PER_IMAGE.with_name(PER_IMAGE.stem + ".tmp.npz")
        np.savez_compressed(tmp, isthing=isthing, **arrays)
        tmp.replace(PER_IMAGE)
    atomic_write_bytes(dest, json.dumps(out, indent=2).encode())
    lines = ["| variant | seeds | PQ | things | stuff | mIoU | PQ - plain [95 % paired] | things - plain | s / step (run) | ms / step (side by side) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, s in summary.items():
        vs = s.get("vs_plain")
        warm = f" (+{s['warm_start_seconds']:.0f} s warm start)" if s["warm_start_seconds"] else ""
        gap = {k: f"{vs[k]['diff']:+.2f} [{vs[k]['ci'][0]:+.2f}, {vs[k]['ci'][1]:+.2f}]" if vs else "-" for k in ("all", "things")}
        if vs:  # which seeds the paired interval is over, and the other seeds' own pairing
            gap["all"] += f" (seeds {', '.join(map(str, vs['seeds']))})"
            other = s.get("vs_plain_other_seeds")
            if other and set(other["seeds"]) - set(vs["seeds"]):
                o = other["all"]
                gap["all"] += f"; seeds {', '.join(map(str, other['seeds']))}: {o['diff']:+.2f} [{o['ci'][0]:+.2f}, {o['ci'][1]:+.2f}]"
        lines.append(f"| {variant} | {', '.join(map(str, s['seeds']))} | {s['pq_mean']} | {s['pq_things_mean']} | "
                     f"{s['pq_stuff_mean']} | {s['miou_mean']} | {gap['all']} | {gap['things']} | {s['seconds_per_step']}{warm} | {s.get('step_ms_side_by_side', '-')} |")
    lines += ["", f"budget: {args.steps} steps, {' '.join(BUDGET)} on {CONFIG}; {out['machine']}", f"command: {out['command']}"]
    atomic_write_bytes(dest.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    print(f"-> {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--parallel", type=int, default=2, help="runs at a time")
    ap.add_argument("--threads", type=int, default=1, help="threads per run")
    ap.add_argument("--root", default="runs/ablation_pretrained")
    ap.add_argument("--steps", type=int, default=STEPS, help="steps per run (the recorded table: %(default)s)")
    ap.add_argument("--record-only", action="store_true")
    ap.add_argument("--time-steps", type=int, default=0, metavar="N",
                    help="instead of training: time N training steps of every variant side by side")
    ap.add_argument("--one", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        variant, seed = args.one[0], int(args.one[1])
        run_one(variant, CONFIG, VARIANTS[variant], seed, args.data, Path(args.root) / f"{variant}_s{seed}", args.steps)
        return
    if args.time_steps:
        print(json.dumps(time_steps(args)["step_ms"], indent=2))
        return
    if not Path(args.data).exists():
        from edgeseg.data.synth import generate_synthetic

        generate_synthetic(args.data, seed=0, workers=os.cpu_count() or 1)
    if not args.record_only:
        # seed-major order: every variant's first seed finishes before any second seed starts
        jobs = [(v, s) for s in args.seeds for v in args.variants
                if not (Path(args.root) / f"{v}_s{s}" / "score.json").exists()]
        schedule(jobs, args)
    record(args)


if __name__ == "__main__":
    main()
