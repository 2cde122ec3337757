"""Backbone choice by PQ against latency: four PEM students at the same training budget.

MobileNetV3-Large from random init (today's backbone) against the ImageNet MobileNetV2,
MobileNetV3-Small (TF) and EfficientNet-Lite0 students, all with PEM as published (the four
edgeseg additions off) and the equal budget of ``benchmarks/ablation_pretrained.py`` (same
steps, batch, crop, schedule, protocol: threshold calibrated on train images, PQ on the whole
val split at the serving size). The Lite0 student *is* that ablation's ``plain`` run (same
config, budget and seed), so it is reused when present.

The timing stage times the four trained students in one ``edgeseg bench`` run: OpenVINO and
LiteRT, FP32 and INT8 (calibrated on train images, PQ-checked on val images), at 384 and 512,
interleaved, on an otherwise idle machine, apart from the trainings. Trained weights matter to
the timing: ``forward_ms`` is measured inside ``Predictor.predict``, and a random-init network's
hundreds of noise segments make post-processing (and the runtime's thread wake-ups after it)
unlike a trained one's. A student whose run is missing is timed as a random-init twin (same
config and label space) and marked so.

    python benchmarks/backbone_choice.py --weights-dir DIR --train   # DIR holds the two timm files below
    python benchmarks/backbone_choice.py --bench                     # the timed run (idle machine)
    python benchmarks/backbone_choice.py                             # re-read both, write the tables

``DIR`` must hold ``mobilenetv2_100*.pth`` and ``tf_mobilenetv3_small_100*.pth`` (timm state
dicts of the ImageNet classifiers; docs/training.md "Pretrained backbones"). Writes
benchmarks/results/backbone_choice.json and .md; a later stage keeps what an earlier one
recorded there.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from ablation_pretrained import STEPS, run_one, schedule

_OFF = ["model.mask_pooled_class=false", "model.semantic_aux=false", "model.mask_coords=false",
        "model.mask_shape_class=false", "train.loss.semantic_weight=0.0", "train.loss.shape_weight=0.0",
        "train.shape_pretrain_steps=0"]
# student -> (config, overrides, weight-file glob in --weights-dir or None)
STUDENTS: dict[str, tuple[str, list[str], str | None]] = {
    "mnv3l_random": ("models/pem_mnv3l_512.yaml", _OFF, None),
    "mnv2_imagenet": ("models/pem_mnv2_512.yaml", [], "mobilenetv2_100*.pth"),
    "mnv3s_tf_imagenet": ("models/pem_mnv3s_tf_512.yaml", [], "tf_mobilenetv3_small_100*.pth"),
    "lite0_imagenet": ("models/pem_lite0_512.yaml", [], None),
}
COMBOS = (("openvino", "fp32"), ("openvino", "int8"), ("tflite", "fp32"), ("tflite", "int8"))
SIZES = (384, 512)


def run_dir(name: str, seed: int, args) -> Path:
    if name == "lite0_imagenet":  # the ablation's plain run: same config, budget and seed
        return Path(args.ablation_root) / f"plain_s{seed}"
    return Path(args.root) / f"{name}_s{seed}"


def overrides_of(name: str, args) -> list[str]:
    _, overrides, weights_glob = STUDENTS[name]
    if weights_glob:
        found = sorted(Path(args.weights_dir or ".").glob(weights_glob)) if args.weights_dir else []
        if not found:
            raise SystemExit(f"{name}: no {weights_glob} in --weights-dir {args.weights_dir!r}")
        overrides = [*overrides, f"model.backbone_weights={found[0].resolve()}"]
    return overrides


def _machine_line(machine: str | dict) -> str:
    if isinstance(machine, str):
        return machine
    return f"{machine.get('cpu')} ({machine.get('arch')}, {machine.get('cores')} cores, {' '.join(machine.get('isa', []))})"


def record(args) -> None:
    from edgeseg.data.image_io import atomic_write_bytes
    from edgeseg.formats import RUNTIME_OF

    dest = ROOT / "benchmarks" / "results" / "backbone_choice.json"
    old = json.loads(dest.read_text()) if dest.exists() else {}
    rows = {n: r for n, r in old.get("training", {}).items() if n in STUDENTS}
    for name in STUDENTS:
        score = run_dir(name, args.seed, args) / "score.json"
        if score.exists():
            text = score.read_text()
            if args.weights_dir:  # the record names the weight folder as the command line does: DIR
                text = text.replace(str(Path(args.weights_dir).resolve()), "DIR")
            rows[name] = json.loads(text)
    bench_path = Path(args.root) / "bench.json"
    bench = json.loads(bench_path.read_text()) if bench_path.exists() else None
    latency: dict[str, list[dict]] = old.get("latency", {})
    timing = old.get("timing")
    if bench:
        latency = {}
        by_weights = {str(timed_weights(n, args)): n for n in STUDENTS} | {str(twin_path(n, args)): n for n in STUDENTS}
        for r in bench["rows"]:
            name = by_weights.get(r["weights"])
            if name:
                latency.setdefault(name, []).append(
                    {k: r.get(k) for k in ("runtime", "precision", "imgsz", "threads", "status", "reason", "forward_ms",
                                           "forward_p90_ms", "frame_ms", "gmacs", "file_mb")})
        timing = {"machine": bench["machine"], "seconds": bench["seconds"],
                  **{k: bench["config"][k] for k in ("threads", "runs", "warmup", "calibration_images")},
                  "weights": {n: timed_weights(n, args).name for n in STUDENTS}}
    doc = {
        "what": "PEM students (four additions off) on four backbones at the same training budget: PQ against "
                "OpenVINO and LiteRT latency, FP32 and INT8, at 384 and 512, one timed run",
        "steps": args.steps, "seed": args.seed, "students": {n: {"config": c, "overrides": o} for n, (c, o, _) in STUDENTS.items()},
        "training_machine": old.get("training_machine") if not args.train else
        f"{platform.machine()}, {os.cpu_count()} CPU cores, {args.threads} thread(s) per run, {args.parallel} run(s) at a time",
        "commands": {"train": f"python benchmarks/backbone_choice.py --weights-dir DIR --train --seed {args.seed}",
                     "bench": "python benchmarks/backbone_choice.py --bench", "record": "python benchmarks/backbone_choice.py"},
        "training": rows, "timing": timing, "latency": latency,
    }
    atomic_write_bytes(dest, json.dumps(doc, indent=2).encode())
    lines = ["| student | PQ | things | stuff | s / step |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {r['pq']} | {r['pq_things']} | {r['pq_stuff']} | {r['seconds_per_step']} |" for n, r in rows.items()]
    threads = sorted({x["threads"] for rows_ in latency.values() for x in rows_})
    timed = (timing or {}).get("weights")
    what = ("the trained students" if isinstance(timed, dict) and all(not w.endswith(f"{n}.pt") for n, w in timed.items())
            else "random-init twins where marked in the JSON")
    lines += ["", (f"forward ms: the runtime's share of `Predictor.predict` on the val image, median, {what}; "
                   "PQ / ms = the student's PQ over its 512 forward ms"), "",
              "| student | runtime | precision | threads | " + " | ".join(f"{s} ms" for s in SIZES) + " | PQ / ms at 512 |",
              "|---|---|---|---|" + "---|" * (len(SIZES) + 1)]
    for name, r in rows.items():
        for rt, p in COMBOS:
            for t in threads:
                cells, per_ms = [], "-"
                for s in SIZES:
                    hit = next((x for x in latency.get(name, []) if (x["runtime"], x["precision"], x["imgsz"], x["threads"])
                                == (RUNTIME_OF[rt], p, s, t)), None)
                    if hit and hit["forward_ms"]:
                        cells.append(f"{hit['forward_ms']:.0f}")
                        if s == 512:
                            per_ms = f"{r['pq'] / hit['forward_ms']:.3f}"
                    else:
                        cells.append(f"{hit['status']}: {hit['reason']}" if hit else "-")
                lines.append(f"| {name} | {RUNTIME_OF[rt]} | {p} | {t} | " + " | ".join(cells) + f" | {per_ms} |")
    lines += ["", f"training: {args.steps} steps, seed {args.seed}, {doc['training_machine']}; command: {doc['commands']['train']}"]
    if timing:
        lines += [(f"timing: median of {timing['runs']} after {timing['warmup']} warm-up, all artifacts interleaved in one run, "
                   f"INT8 calibrated on {timing['calibration_images']} train images; {_machine_line(timing['machine'])}; "
                   f"command: {doc['commands']['bench']}")]
    atomic_write_bytes(dest.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    print(f"-> {dest}")


def twin_path(name: str, args) -> Path:
    return Path(args.root) / "timing" / f"{name}.pt"


def timed_weights(name: str, args) -> Path:
    """The trained student's checkpoint, or its random-init twin when the run is missing."""
    trained = run_dir(name, args.seed, args) / "model.pt"
    return trained if trained.exists() else twin_path(name, args)


def run_bench(args) -> None:
    """One interleaved ``edgeseg bench`` run over the trained students (random-init twins where a
    run is missing)."""
    from scaling import random_checkpoint

    from edgeseg.assets import SHIPPED_MODEL, resolve_weights
    from edgeseg.benchmark.bench import BenchConfig, bench

    for name, (config, overrides, _) in STUDENTS.items():
        twin = twin_path(name, args)
        if timed_weights(name, args) == twin and not twin.exists():
            twin.parent.mkdir(parents=True, exist_ok=True)
            random_checkpoint(config, resolve_weights(SHIPPED_MODEL), twin, overrides)
    weights = tuple(str(timed_weights(n, args)) for n in STUDENTS)
    doc = bench(BenchConfig(weights=weights, combos=COMBOS, threads=tuple(args.bench_threads), imgsz=SIZES,
                            data=args.data, runs=args.runs, val_images=1, memory=False,
                            calibration_images=args.calibration_images,
                            quant_validation_images=args.quant_validation_images,
                            work=str(Path(args.root) / "bench")))
    from edgeseg.data.image_io import atomic_write_bytes

    atomic_write_bytes(Path(args.root) / "bench.json", json.dumps(doc, indent=2).encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--weights-dir", help="folder with the MobileNetV2 / MobileNetV3-Small timm files")
    ap.add_argument("--train", action="store_true", help="train (or resume) the four students, then record")
    ap.add_argument("--bench", action="store_true", help="time the four architectures in one run, then record")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="threads per training run")
    ap.add_argument("--bench-threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per artifact")
    ap.add_argument("--calibration-images", type=int, default=64, help="INT8 calibration images")
    ap.add_argument("--quant-validation-images", type=int, default=16, help="val images of each INT8 PQ check")
    ap.add_argument("--root", default="runs/backbone_choice")
    ap.add_argument("--ablation-root", default="runs/ablation_pretrained")
    ap.add_argument("--one", nargs=2, metavar=("NAME", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        name, seed = args.one[0], int(args.one[1])
        run_one(name, STUDENTS[name][0], overrides_of(name, args), seed, args.data, run_dir(name, seed, args), args.steps)
        return
    if args.train:
        jobs = [(n, args.seed) for n in STUDENTS if not (run_dir(n, args.seed, args) / "score.json").exists()]
        for n, _ in jobs:
            overrides_of(n, args)  # fail now on a missing weight file, not in a child process
        extra = ("--ablation-root", args.ablation_root, *(("--weights-dir", args.weights_dir) if args.weights_dir else ()))
        schedule(jobs, args, script=__file__, extra=extra)
    if args.bench:
        run_bench(args)
    record(args)


if __name__ == "__main__":
    main()
