"""Train a recorded recipe (a student or the teacher) and write its result JSON.

    python benchmarks/train_recipe.py quick      # <= 20 min on 2 CPU cores (the earlier demo student, additions on)
    python benchmarks/train_recipe.py default    # <= 2 h on 2 CPU cores; resumable: re-run to continue
    python benchmarks/train_recipe.py default_1500   # the shipped student's run (about 1 h)
    python benchmarks/train_recipe.py teacher    # Mask2Former Swin-T teacher, about 1 h 10 min here
    python benchmarks/train_recipe.py lite0_default --time-limit 110   # plain PEM on ImageNet Lite0, same budget

Each recipe is the config file plus ``--set`` overrides, exactly what the printed ``command``
runs. A recipe of several stages runs them in order in one run directory: each later stage
resumes the last checkpoint with a longer ``train.steps`` (the poly schedule is re-drawn to
the new end, so the learning rate re-warms to where that schedule would be; see ``default``). The JSON (benchmarks/results/recipe_<name>.json) holds PQ / SQ / RQ (all, things, stuff),
per-class PQ, mIoU, wall-clock training time, the data statistics and the command.
``--record-only`` re-reads an existing run directory without training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "models/pem_mnv3l_additions_512.yaml"  # the earlier demo student (four additions on)
TEACHER_CONFIG = "models/teacher_swint.yaml"
CALIBRATION_IMAGES = 100
_SHAPE = ["train.shape_pretrain_steps=2400", "train.shape_pretrain_images=600"]
_EDGE_HEAD = ["model.upsample=bilinear", "model.dec_layers=3", "model.name=pem_mnv3s_512"]
# recipe -> stages, each the ``--set`` overrides of one ``edgeseg train`` call on the same --out
RECIPES = {
    "quick": [["train.steps=450", "train.warmup_steps=50", *_SHAPE]],
    # 2500 steps (102 min), then the horizon extended to 2900: 400 more steps from lr 1.7e-4
    # down to 0, which fit the 2 h budget (the 2500-step run alone is recipe default_2500)
    "default": [["train.steps=2500", *_SHAPE], ["train.steps=2900", *_SHAPE]],
    "default_2500": [["train.steps=2500", *_SHAPE]],
    # an earlier shipped demo student (MobileNetV3-L, additions on) was stripped from this run
    "default_1500": [["train.steps=1500", *_SHAPE]],
    # what fits two hours on 2 CPU cores (6 s / step at batch 4): see README "Teacher"
    "teacher": [["train.steps=600", "train.eval_every=150"]],
    # the Mask2Former teacher on ImageNet EfficientNet-Lite2 (its config's 3000 steps, over as many
    # resumed runs as it takes: --time-limit stops it resumably, the curve is recorded every 250 steps)
    "teacher_lite2": [["train.steps=3000"]],
    # the same teacher on a schedule that ends within about 75 min of 2 CPU cores (10-12 s / step
    # at 256 px, batch 4, on an AVX2-only EPYC), the curve every 125 steps. The recorded run's
    # first 175 steps ran on a 500-step horizon, then the horizon was shortened to 375 to leave
    # time for the benchmark (the poly schedule re-drawn from step 175: lr 8.3e-5 -> 7.5e-5)
    "teacher_lite2_375": [["train.steps=375", "train.eval_every=125"]],
    # PEM as published on ImageNet EfficientNet-Lite0 (pip weights) at the shipped student's
    # budget: 2900 steps x 8 at 256 px, no warm start (the plain student has no shape head)
    "lite0_default": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100"]],
    # the edge-sized heads of benchmarks/head_sizing.py on ImageNet MobileNetV3-Small (TF), at the
    # same budget: bilinear x2 in the pixel decoder, 3 decoder layers, pixel / mask width 96 or 128
    "mnv3s_p96_d3": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100", *_EDGE_HEAD,
                      "model.pixel_dim=96", "model.mask_dim=96"]],
    "mnv3s_p128_d3": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100", *_EDGE_HEAD]],
    # the same with the backbone at the full learning rate (the small backbone's ImageNet
    # features need more adapting), and with 6 decoder layers
    "mnv3s_p96_d3_bb1": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100", *_EDGE_HEAD,
                          "model.pixel_dim=96", "model.mask_dim=96", "train.backbone_lr_mult=1.0"]],
    "mnv3s_p96_d6_bb1": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100", *_EDGE_HEAD,
                          "model.pixel_dim=96", "model.mask_dim=96", "train.backbone_lr_mult=1.0", "model.dec_layers=6"]],
    # EfficientNet-Lite0 depth-pruned to 9 of its 16 blocks with a 64-wide decoder (mask width 96),
    # the head_sizing candidate that fits YOLO26n-seg's forward time; the Lite0 recipe otherwise
    "lite0k_p64_m96_h64_d3": [["train.steps=2900", "train.eval_every=500", "train.eval_images=100",
                               "model.upsample=bilinear", "model.dec_layers=3", "model.name=pem_lite0k_512",
                               "model.backbone_blocks=[1,2,2,1,1,1,1]", "model.pixel_dim=64", "model.mask_dim=96",
                               "model.hidden_dim=64", "model.nheads=4", "model.ffn_dim=512"]],
}
# the same pruned-Lite0 head at twice the budget (its curve was still rising at 2900)
RECIPES["lite0k_p64_m96_h64_d3_5800"] = [
    ["train.steps=5800", *RECIPES["lite0k_p64_m96_h64_d3"][0][1:]]]
# the same at 2900 steps, distilled from the shipped Lite0 student as a teacher-assistant
# (matched-query class + mask KD, the default weights)
RECIPES["lite0k_p64_m96_h64_d3_kd"] = [[*RECIPES["lite0k_p64_m96_h64_d3"][0], "train.kd.teacher=models/pem_lite0_512.pt"]]
# the distilled run extended to 5800 steps: its 2900-step run, then the horizon re-drawn to 5800
# (the learning rate re-warms to 0.54x its peak and decays to 0 over 2900 more KD steps)
RECIPES["lite0k_p64_m96_h64_d3_kd_5800"] = [
    RECIPES["lite0k_p64_m96_h64_d3_kd"][0],
    ["train.steps=5800", *RECIPES["lite0k_p64_m96_h64_d3_kd"][0][1:]]]
# the distilled 2900-step run with its 9 backbone blocks started from the shipped student's (trained
# on this data) instead of from ImageNet; the narrower heads start as built (no tensor has a twin)
RECIPES["lite0k_p64_m96_h64_d3_kd_init"] = [[*RECIPES["lite0k_p64_m96_h64_d3_kd"][0],
                                             "train.init_from=models/pem_lite0_512.pt"]]
# that run extended to 5800 steps the way _kd_5800 extends the ImageNet start (its 2900-step run,
# then the horizon re-drawn to 5800; init_from acts only at step 0, so the resume keeps training)
RECIPES["lite0k_p64_m96_h64_d3_kd_init_5800"] = [
    RECIPES["lite0k_p64_m96_h64_d3_kd_init"][0],
    ["train.steps=5800", *RECIPES["lite0k_p64_m96_h64_d3_kd_init"][0][1:]]]
# the shipped student cut to fit YOLO26n-seg's forward time (head_sizing candidate
# lite0m_bilinear_s8_d3: 12 of Lite0's 16 blocks, mask stride 8, 3 decoder layers, a bilinear
# x2, its own widths), started from the shipped student's weights (every tensor of the cut model
# has a same-named twin there) and distilled from it: 1500 steps at 0.3x the learning rate
_CUT = ["model.upsample=bilinear", "model.dec_layers=3", "model.mask_stride=8", "model.name=pem_lite0m_512",
        "model.backbone_blocks=[1,2,2,2,2,2,1]"]
RECIPES["lite0m_s8_d3_cut_kd"] = [["train.steps=1500", "train.eval_every=500", "train.eval_images=100",
                                   "train.lr=0.0003", "train.warmup_steps=50", *_CUT,
                                   "train.init_from=models/pem_lite0_512.pt",
                                   "train.kd.teacher=models/pem_lite0_512.pt"]]
# the same cut one step further (head_sizing candidate lite0k_bilinear_s8_d3: 9 of Lite0's 16
# blocks, the first of each stage's, with the shipped widths, so every tensor still has a twin),
# at twice the steps: the cut loses more, and the 1500-step run above was still rising
RECIPES["lite0k_s8_d3_cut_kd"] = [["train.steps=3000", "train.eval_every=500", "train.eval_images=100",
                                   "train.lr=0.0003", "train.warmup_steps=50",
                                   *[o for o in _CUT if not o.startswith(("model.backbone_blocks", "model.name"))],
                                   "model.name=pem_lite0k_s8_512", "model.backbone_blocks=[1,2,2,1,1,1,1]",
                                   "train.init_from=models/pem_lite0_512.pt",
                                   "train.kd.teacher=models/pem_lite0_512.pt"]]
# recipes on another config than the default student's
RECIPE_CONFIGS = {"teacher": TEACHER_CONFIG, "teacher_lite2": "models/teacher_lite2.yaml",
                  "teacher_lite2_375": "models/teacher_lite2.yaml", "lite0_default": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3_5800": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3_kd": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3_kd_5800": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3_kd_init": "models/pem_lite0_512.yaml",
                  "lite0k_p64_m96_h64_d3_kd_init_5800": "models/pem_lite0_512.yaml",
                  "lite0m_s8_d3_cut_kd": "models/pem_lite0_512.yaml",
                  "lite0k_s8_d3_cut_kd": "models/pem_lite0_512.yaml",
                  **{r: "models/pem_mnv3s_tf_512.yaml" for r in RECIPES if r.startswith("mnv3s_")}}
# recipes whose config names no weights it can fetch offline: --backbone-weights FILE is required
NEEDS_WEIGHTS_FILE = tuple(r for r in RECIPES if r.startswith("mnv3s_"))


def config_of(recipe: str) -> str:
    return RECIPE_CONFIGS.get(recipe, CONFIG)


def planned_steps(recipe: str) -> int:
    from edgeseg.config import load_config

    steps = load_config(ROOT / config_of(recipe))[1].steps
    for item in RECIPES[recipe][-1]:
        if item.startswith("train.steps="):
            steps = int(item.split("=")[1])
    return steps


def _stage_steps(overrides: list[str]) -> int:
    return next(int(item.split("=")[1]) for item in overrides if item.startswith("train.steps="))


def _checkpoint_step(run: Path) -> int:
    """Step of the run's last checkpoint (0 when there is none)."""
    last = run / "last.pt"
    if not last.exists():
        return 0
    from edgeseg.checkpoint import load_checkpoint

    return int(load_checkpoint(last)["step"])


def evaluate_unfinished(last: Path, data: str) -> dict:
    """Metrics of an interrupted run's last checkpoint (recorded as unfinished)."""
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.evaluate import evaluate
    from edgeseg.checkpoint import load_checkpoint

    ckpt = load_checkpoint(last)
    metrics = evaluate(load(last), CocoPanoptic(data, "val"))
    metrics.update(step=int(ckpt["step"]), train_seconds=float(ckpt["train_seconds"]))
    return metrics


def _curve(run: Path) -> list[dict]:
    rows = []
    log = run / "log.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            if "eval" in row:
                rows.append({"step": row["step"], **{k: round(v, 2) for k, v in row["eval"].items()}})
    return rows


def _backbone_weights(out) -> dict | None:
    from edgeseg.checkpoint import load_checkpoint

    last = Path(out) / "last.pt"
    record = load_checkpoint(last).get("backbone_weights") if last.is_file() else None
    if record and record.get("file"):  # the file's name (the sha256 identifies it), not this machine's path
        record = {**record, "file": Path(record["file"]).name}
    return record


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe", choices=sorted(RECIPES))
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--out", help="run directory (default runs/<recipe>)")
    ap.add_argument("--time-limit", type=float, default=0.0, help="stop once the run's total training time (every resumed invocation together) reaches N minutes (resumable)")
    ap.add_argument("--record-only", action="store_true")
    ap.add_argument("--backbone-weights", metavar="FILE",
                    help="ImageNet backbone weights as a timm state-dict file (model.backbone_weights)")
    args = ap.parse_args()
    out = args.out or f"runs/{args.recipe}"
    stages = RECIPES[args.recipe]
    if args.recipe in NEEDS_WEIGHTS_FILE and not args.backbone_weights and not args.record_only:
        raise SystemExit(f"recipe {args.recipe} needs --backbone-weights FILE (docs/training.md, 'Pretrained backbones')")
    weights_set = [f"model.backbone_weights={args.backbone_weights}"] if args.backbone_weights else []
    argvs = [["train", "--config", config_of(args.recipe), "--out", out, "--data", args.data, "--set", *overrides,
              *weights_set] for overrides in stages]
    shown = ["model.backbone_weights=FILE"] if args.recipe in NEEDS_WEIGHTS_FILE else weights_set
    command = (" && ".join("edgeseg " + " ".join(shlex.quote(a) for a in [*argv[:len(argv) - len(weights_set)], *shown])
                           for argv in argvs)
               + f" && edgeseg calibrate --weights {out}/model.pt --data {args.data} --images {CALIBRATION_IMAGES}"
               + f" && edgeseg eval --weights {out}/model.pt --data {args.data}")
    if not Path(args.data).exists():
        from edgeseg.data.synth import generate_synthetic

        generate_synthetic(args.data, seed=0, workers=os.cpu_count() or 1)
    if not args.record_only:
        from edgeseg.cli import main as cli_main

        extra = ["--time-limit", str(args.time_limit)] if args.time_limit else []
        for overrides, argv in zip(stages, argvs):
            if len(stages) > 1 and _checkpoint_step(Path(out)) >= _stage_steps(overrides):
                continue  # this stage is done; the next one resumes from its checkpoint
            if cli_main(argv + extra) != 0:
                sys.exit(2)
            if _checkpoint_step(Path(out)) < _stage_steps(overrides):
                break  # stopped by --time-limit: run again to resume
    metrics_path = Path(out) / "metrics.json"
    finished = metrics_path.exists() and json.loads(metrics_path.read_text())["step"] >= planned_steps(args.recipe)
    calibration = None
    if finished:
        # second step of every recipe: pick the object-score threshold on training images
        # (edgeseg/evaluation/calibrate.py), then score val with it
        from edgeseg.backends import load
        from edgeseg.data.coco_panoptic import CocoPanoptic
        from edgeseg.evaluation.calibrate import calibrate_checkpoint
        from edgeseg.evaluation.evaluate import evaluate

        weights = Path(out) / "model.pt"
        calibration = calibrate_checkpoint(str(weights), args.data, split="train", images=CALIBRATION_IMAGES)
        m = json.loads(metrics_path.read_text())
        m["mask2former_threshold_metrics"] = {k: m[k] for k in ("pq", "pq_things", "pq_stuff", "miou")}
        m.update(evaluate(load(weights), CocoPanoptic(args.data, "val"), progress=False))
        # the same checkpoint and threshold served at the model's export size (the shipped
        # default exports at 512; the val images are 256 px, letterboxed up)
        from edgeseg.checkpoint import load_checkpoint

        export_size = int(load_checkpoint(weights)["model_config"]["image_size"])
        at_export = evaluate(load(weights, input_size=export_size), CocoPanoptic(args.data, "val"), progress=False)
        m["at_export_size"] = {"input_size": export_size, "pq": at_export["panoptic"]["all"],
                               "things": at_export["panoptic"]["things"], "stuff": at_export["panoptic"]["stuff"],
                               "miou": at_export["miou"], "pq_ci95": at_export["pq_ci95"]}
    elif args.record_only and (Path(out) / "last.pt").exists():
        m = evaluate_unfinished(Path(out) / "last.pt", args.data)
    else:
        print(f"{out}: not finished yet (no metrics.json); run again to resume")
        return
    from edgeseg.data.stats import dataset_stats

    pan = m["panoptic"]
    record = {
        "recipe": args.recipe,
        "command": command,
        "config": config_of(args.recipe),
        "overrides": stages[-1] if len(stages) == 1 else stages,
        "finished": finished,
        "steps": m["step"],
        "steps_planned": planned_steps(args.recipe),
        "train_minutes": round(m["train_seconds"] / 60, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "val_images": m["images"],
        "pq": pan["all"], "things": pan["things"], "stuff": pan["stuff"],
        "per_class_pq": {k: round(v["pq"], 2) for k, v in pan["per_class"].items()},
        "miou": m["miou"],
        # 95 % bootstrap interval over the val images (PQAccumulator.bootstrap_ci)
        "pq_ci95": m.get("pq_ci95"),
        "calibration": calibration,
        # the ImageNet weights the run started from (spec, file, sha256); None: random init
        "backbone_weights": _backbone_weights(out),
        "at_mask2former_threshold_0.8": m.get("mask2former_threshold_metrics"),
        "at_export_size": m.get("at_export_size"),
        # PQ on eval_images val images during training (train.eval_every), then the final row
        "curve": _curve(Path(out)),
        "data_stats": {"train": dataset_stats(args.data, "train"), "val": dataset_stats(args.data, "val")},
    }
    dest = ROOT / "benchmarks" / "results" / f"recipe_{args.recipe}.json"
    dest.write_text(json.dumps(record, indent=2))
    print(f"{'finished' if finished else 'UNFINISHED'} at step {m['step']}: PQ {pan['all']['pq']:.1f}  things {pan['things']['pq']:.1f}  stuff {pan['stuff']['pq']:.1f}  "
          f"mIoU {m['miou']:.1f}  in {record['train_minutes']} min -> {dest}")
    if record["pq_ci95"]:
        print(f"95% bootstrap intervals: {record['pq_ci95']}")
    if record["at_export_size"]:
        e = record["at_export_size"]
        print(f"at the export size {e['input_size']}: PQ {e['pq']['pq']:.1f}  things {e['things']['pq']:.1f}  stuff {e['stuff']['pq']:.1f}"
              f"  (95% intervals {e['pq_ci95']})")


if __name__ == "__main__":
    main()
