"""``edgeseg`` command line. Each sub-command parses flags and calls one public function.

Importing this module changes nothing in the process; :func:`main` sets up logging and, for
torch, ``OMP_WAIT_POLICY=PASSIVE`` (unless the user set it): OpenMP's default spin-wait made
2-thread torch runs 4-7x slower on shared 2-core machines.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from edgeseg.assets import SHIPPED_MODEL
from edgeseg.formats import EXPORT_FORMATS, PRECISIONS

logger = logging.getLogger("edgeseg")


def cmd_data_synth(args: argparse.Namespace) -> None:
    from edgeseg.data.synth import SynthConfig, generate_synthetic

    cfg = SynthConfig(image_size=args.image_size, num_train=args.num_train, num_val=args.num_val)
    workers = args.workers or os.cpu_count() or 1
    path = generate_synthetic(args.out, seed=args.seed, config=cfg, overwrite=args.overwrite, workers=workers)
    print(f"wrote {path}")


def cmd_data_stats(args: argparse.Namespace) -> None:
    from edgeseg.data.stats import dataset_stats, format_stats

    stats = dataset_stats(args.root, split=args.split)
    print(format_stats(stats))
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=2))


def _train_configs(config: str, args: argparse.Namespace, extra: list[str] = ()):
    from edgeseg.config import load_config
    from edgeseg.assets import resolve_config

    from edgeseg.config import apply_overrides

    model_cfg, train_cfg = load_config(resolve_config(config))
    overrides = list(args.set or []) + list(extra)
    if args.data:
        overrides.append(f"train.data={args.data}")
    if getattr(args, "backbone_weights", None):
        overrides.append(f"model.backbone_weights={args.backbone_weights}")
    if getattr(args, "amp", None):
        overrides.append(f"train.amp={args.amp}")
    return apply_overrides(model_cfg, train_cfg, overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from edgeseg.training.trainer import train

    model_cfg, train_cfg = _train_configs(args.config or args.model, args)
    metrics = train(model_cfg, train_cfg, args.out, resume=not args.no_resume, time_limit_min=args.time_limit)
    _report_training(metrics, args.out)


def cmd_distill(args: argparse.Namespace) -> None:
    from edgeseg.training.trainer import train

    extra = [f"train.kd.teacher={args.teacher}"]
    if args.unlabelled:
        extra.append(f"train.unlabelled={args.unlabelled}")
    if args.unlabelled_fraction is not None:
        extra.append(f"train.unlabelled_fraction={args.unlabelled_fraction}")
    model_cfg, train_cfg = _train_configs(args.student_config, args, extra)
    metrics = train(model_cfg, train_cfg, args.out, resume=not args.no_resume, time_limit_min=args.time_limit)
    _report_training(metrics, args.out)


def cmd_teacher_import(args: argparse.Namespace) -> None:
    from edgeseg.modeling.teacher import import_hf_teacher

    path = import_hf_teacher(args.hf_dir, args.data, args.out, image_size=args.imgsz)
    print(f"wrote {path}")


def _report_training(metrics: dict, out: str) -> None:
    if metrics.get("finished"):
        _print_metrics(metrics)
        print(f"weights: {Path(out) / 'model.pt'}")
    else:
        print(f"stopped at step {metrics['step']}; run the same command again to resume")


def _print_metrics(metrics: dict) -> None:
    from edgeseg.evaluation.panoptic_quality import format_pq_table

    print(format_pq_table(metrics["panoptic"]))
    ci = metrics.get("pq_ci95")
    if ci:
        print(f"PQ 95% interval (bootstrap over {ci['images']} images): all {ci['all']}, things {ci['things']}, "
              f"stuff {ci['stuff']}")
    print(f"mIoU {metrics['miou']:.2f}")


def _thresholds(args: argparse.Namespace) -> dict[str, float | None]:
    """Only the flags given override the model's stored (calibrated) thresholds."""
    return {"object_mask_threshold": args.conf, "overlap_threshold": args.overlap, "mask_threshold": args.mask_threshold,
            "instance_score_threshold": args.instance_conf}


def _add_threshold_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf", type=float, help="object score threshold (default: the model's calibrated one)")
    p.add_argument("--overlap", type=float, help="overlap-area threshold (default: the model's, Mask2Former 0.8)")
    p.add_argument("--mask-threshold", type=float, help="mask probability threshold (default: the model's, 0.5)")
    p.add_argument("--instance-conf", type=float,
                   help="instance score threshold (default: the model's, 0: Mask2Former's top 100)")


def cmd_eval(args: argparse.Namespace) -> None:
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.evaluate import evaluate

    predictor = load(args.weights, input_size=args.imgsz, threads=args.threads, thresholds=_thresholds(args))
    dataset = CocoPanoptic(args.data, args.split)
    metrics = evaluate(predictor, dataset, max_images=args.max_images)
    _print_metrics(metrics)
    if args.json:
        from edgeseg.data.image_io import atomic_write_bytes

        atomic_write_bytes(args.json, json.dumps(metrics, indent=2).encode())
        print(f"wrote {args.json}")


def cmd_pq(args: argparse.Namespace) -> None:
    from edgeseg.evaluation.panoptic_quality import format_pq_table, pq_compute

    summary = pq_compute(args.gt_json, args.gt_dir, args.pred_json, args.pred_dir)
    print(format_pq_table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


def cmd_predict(args: argparse.Namespace) -> None:
    from edgeseg.backends import load
    from edgeseg.inference.predict_files import predict_files

    kwargs = _profile(args).load_kwargs() if args.profile else {}
    if args.threads:
        kwargs["threads"] = args.threads
    predictor = load(args.weights, input_size=args.imgsz, thresholds=_thresholds(args), **kwargs)
    for path in predict_files(predictor, args.images, args.out):
        print(f"wrote {path}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from edgeseg.evaluation.calibrate import calibrate_checkpoint

    record = calibrate_checkpoint(args.weights, args.data, split=args.split, images=args.images)
    print(f"PQ on {record['images']} {record['split']} images by object-score threshold: {record['pq_by_threshold']}")
    print(f"stored object_mask_threshold={record['object_mask_threshold']} in {args.weights}")


def _profile(args: argparse.Namespace):
    from edgeseg.profiles import get_profile

    return get_profile(args.profile)


def cmd_export(args: argparse.Namespace) -> None:
    from edgeseg.errors import EdgesegError
    from edgeseg.export import export

    prof = _profile(args) if args.profile else None
    fmt = args.format or (prof.format if prof else None)
    precision = args.precision or (prof.precision if prof else "fp32")
    imgsz = args.imgsz or (prof.imgsz if prof else None)  # None: the size stored with the model
    if not fmt:
        raise EdgesegError("export needs --format onnx|openvino|tflite (or --profile NAME)")
    if precision == "int8":  # INT8 is a quantization: route to it with the model's recipe
        from edgeseg.assets import resolve_recipe_file
        from edgeseg.assets import resolve_weights
        from edgeseg.quantization import quantize
        from edgeseg.checkpoint import load_checkpoint

        weights = resolve_weights(args.weights)
        name = str(load_checkpoint(weights)["model_config"].get("name", ""))
        result = quantize(weights, format=fmt, data=args.data, recipe=resolve_recipe_file(name, fmt), imgsz=imgsz,
                          out=args.out, overwrite=args.overwrite)
    else:
        from edgeseg.assets import resolve_weights

        result = export(resolve_weights(args.weights), format=fmt, precision=precision, imgsz=imgsz, out=args.out,
                        data=args.data, check=not args.no_check, parity_images=args.parity_images,
                        overwrite=args.overwrite)
    print(f"wrote {result.path}")


def cmd_strip(args: argparse.Namespace) -> None:
    from edgeseg.checkpoint import strip_checkpoint

    r = strip_checkpoint(args.weights, args.out, half=not args.fp32)
    print(f"wrote {args.out}: {r['parameters'] / 1e6:.2f}M parameters, {r['bytes_in'] / 1e6:.1f} MB -> {r['bytes_out'] / 1e6:.1f} MB")


def _parse_combos(items: list[str]) -> tuple[tuple[str, str], ...]:
    from edgeseg.errors import EdgesegError

    combos = []
    for item in items:
        fmt, sep, prec = item.partition(":")
        if not sep:
            raise EdgesegError(f"--combos expects FORMAT:PRECISION items (e.g. onnx:int8), got {item!r}")
        combos.append((fmt, prec))
    return tuple(combos)


def _bench_config(args: argparse.Namespace):
    from edgeseg.benchmark import QUICK_COMBOS, BenchConfig

    changes: dict = {"data": args.data, "work": args.work, "progress": not args.no_progress}
    if args.profile:
        prof = _profile(args)
        changes.update(combos=tuple(prof.candidates) or ((prof.format, prof.precision),), imgsz=(prof.imgsz,),
                       threads=(prof.threads or os.cpu_count() or 1,))
    if args.quick:
        changes.update(combos=QUICK_COMBOS, threads=(max(changes.get("threads", BenchConfig.threads)),), val_images=50)
    if args.weights:
        changes["weights"] = tuple(args.weights)
    if args.combos:
        changes["combos"] = _parse_combos(args.combos)
    if args.teacher_combos:
        changes["teacher_combos"] = _parse_combos(args.teacher_combos)
    for key in ("threads", "imgsz", "frames"):
        if getattr(args, key):
            changes[key] = tuple(getattr(args, key))
    for key in ("teacher", "runs", "warmup", "val_images", "calibration_images"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    return BenchConfig(**changes)


def cmd_bench(args: argparse.Namespace) -> None:
    from edgeseg.benchmark import bench, markdown_table, write_report

    doc = bench(_bench_config(args))
    paths = write_report(doc, args.out)
    print(markdown_table(doc))
    print("wrote " + ", ".join(str(p) for p in paths.values()))


def cmd_tune(args: argparse.Namespace) -> None:
    import json as _json

    from edgeseg.benchmark.tune import choice_dict, tune

    prof = _profile(args) if args.profile else None
    result = tune(args.fps, prof, results=args.results, measure=args.measure, weights=args.weights, data=args.data,
                  export_dir=None if args.no_export else args.out, work=args.work,
                  runs=args.runs or 50, val_images=args.val_images or 0)
    print(result.summary())
    if args.json:
        Path(args.json).write_text(_json.dumps(choice_dict(result), indent=2))


def cmd_demo(args: argparse.Namespace) -> None:
    from edgeseg.demo import demo

    report = demo(out=args.out, data=args.data, quick=args.quick, from_scratch=args.from_scratch,
                  weights=args.weights, teacher=args.teacher)
    print(f"report: {report}")


def cmd_quantize(args: argparse.Namespace) -> None:
    from edgeseg.quantization import quantize

    result = quantize(args.weights, format=args.format, data=args.data, subset=args.subset,
                      max_pq_drop=args.max_pq_drop, recipe=args.recipe, imgsz=args.imgsz, out=args.out,
                      overwrite=args.overwrite)
    r = result.report
    kept = r["engine"].get("ignored_scope", [])
    print(f"INT8 {r['format']}: PQ {r['pq_fp32_torch']:.2f} (FP32 torch) -> {r['pq_int8']:.2f} "
          f"(drop {r['pq_drop']:+.2f}, budget {r['recipe']['max_pq_drop']}), size x{r['size_ratio']:.2f}")
    if kept:
        print(f"kept in float by the recipe ({len(kept)} nodes): {', '.join(kept[:8])}{' ...' if len(kept) > 8 else ''}")
    for line in r["engine"].get("accuracy_control_log", []):
        print(f"accuracy control: {line}")
    print(f"wrote {result.path}")


def cmd_info(args: argparse.Namespace) -> None:
    """A model file / shipped model: what it is (torch-free for exports). A config: its size."""
    from edgeseg.assets import find_asset

    target = args.target or args.config
    if target is None:
        raise SystemExit("edgeseg info: give a model file, a shipped model name or a config (--config)")
    is_config = args.config is not None or str(target).endswith((".yaml", ".yml")) or (
        not Path(target).exists() and find_asset("models", str(target), ".pt") is None
        and find_asset("models", str(target), ".yaml") is not None)
    if is_config:
        from edgeseg.assets import resolve_config
        from edgeseg.config import load_config
        from edgeseg.modeling.complexity import model_info

        model_cfg, _ = load_config(resolve_config(target))
        if args.num_classes:
            import dataclasses

            model_cfg = dataclasses.replace(model_cfg, num_classes=args.num_classes)
        info = model_info(model_cfg, args.imgsz or model_cfg.image_size)
    else:
        from edgeseg.backends import describe

        info = describe(target)
    for key, value in info.items():
        if isinstance(value, list) and len(value) > 12:
            value = ", ".join(map(str, value[:12])) + f", ... ({len(value)})"
        print(f"{key:>24}: {value}")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory (checkpoints, log, metrics)")
    p.add_argument("--data", help="COCO-panoptic root (overrides train.data)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. train.steps=300")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--time-limit", type=float, default=0.0, help="stop (resumable) after N minutes")
    p.add_argument("--backbone-weights", metavar="SPEC",
                   help="ImageNet weights for the backbone of a student or a timm-backbone teacher (overrides "
                        "model.backbone_weights): a timm state-dict file, pip:efficientnet-lite0/1/2, or timm (the "
                        "hub; needs a network)")
    p.add_argument("--amp", choices=["off", "bf16", "fp16"], help="mixed precision (overrides train.amp)")


PROFILE_HELP = "device preset: rpi5, jetson-orin-nano, android, intel-cpu, or a YAML file (runtimes/README.md)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeseg", description="Universal segmentation for edge devices.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="built-in data set").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="write the procedural panoptic set (COCO-panoptic format)")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--workers", type=int, default=0, help="processes (default: all cores; output is identical)")
    p.set_defaults(func=cmd_data_synth)
    p = data.add_parser("stats", help="statistics of a COCO-panoptic split")
    p.add_argument("root")
    p.add_argument("--split", default="val")
    p.add_argument("--json", help="also write the statistics here")
    p.set_defaults(func=cmd_data_stats)

    p = sub.add_parser("train", help="train a student (or the Mask2Former teacher) from a YAML config")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="YAML file")
    which.add_argument("--model", help="a config under models/ by name, e.g. pem-lite0-512, teacher-swint")
    _add_run_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="train a student with ground-truth + KD losses from a teacher")
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.pt) or transformers checkpoint directory")
    p.add_argument("--student-config", required=True, help="YAML file or config name under models/")
    p.add_argument("--unlabelled", metavar="DIR",
                   help="a folder of images without labels: the teacher labels them once and they train beside the "
                        "labelled split (train.unlabelled)")
    p.add_argument("--unlabelled-fraction", type=float, metavar="F",
                   help="share of training images drawn from --unlabelled (default 0.5; 0: the pools' own sizes)")
    _add_run_flags(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("teacher-import", help="an official Mask2Former checkpoint directory -> edgeseg teacher .pt")
    p.add_argument("--hf-dir", required=True, help="directory written by save_pretrained (config.json + weights)")
    p.add_argument("--data", required=True, help="COCO-panoptic root whose classes the teacher is mapped to by name")
    p.add_argument("--out", required=True, help="teacher checkpoint to write (.pt)")
    p.add_argument("--imgsz", type=int, default=512)
    p.set_defaults(func=cmd_teacher_import)

    p = sub.add_parser("eval", help="PQ / SQ / RQ / mIoU of a model on a COCO-panoptic split")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="val")
    p.add_argument("--imgsz", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--max-images", type=int, default=0)
    p.add_argument("--json", help="write the metrics here")
    _add_threshold_flags(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("pq", help="score COCO-panoptic prediction files (panopticapi's contract)")
    p.add_argument("gt_json")
    p.add_argument("gt_dir")
    p.add_argument("pred_json")
    p.add_argument("pred_dir")
    p.add_argument("--json")
    p.set_defaults(func=cmd_pq)

    p = sub.add_parser("predict", help="overlay PNG + panoptic PNG + COCO-panoptic JSON per image")
    p.add_argument("images", nargs="+")
    p.add_argument("--weights", default=SHIPPED_MODEL, help=f"model file or shipped model name (default {SHIPPED_MODEL})")
    p.add_argument("--out", default="predictions")
    p.add_argument("--imgsz", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--profile", help=PROFILE_HELP + " (threads, providers, delegate, OpenVINO hint)")
    _add_threshold_flags(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("calibrate", help="choose the object-score threshold on training images; stored in the checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train", help="never the split you report on (default: train)")
    p.add_argument("--images", type=int, default=100)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export", help="export a checkpoint to ONNX / OpenVINO IR / TFLite, checked against torch")
    p.add_argument("--weights", default=SHIPPED_MODEL, help=f"checkpoint or shipped model name (default {SHIPPED_MODEL})")
    p.add_argument("--format", choices=EXPORT_FORMATS, help="default: the --profile's")
    p.add_argument("--precision", choices=PRECISIONS, help="default fp32, or the --profile's; int8 quantizes")
    p.add_argument("--imgsz", type=int,
                   help="fixed input size S (multiple of 32; default: the size stored with the model, or the --profile's)")
    p.add_argument("--profile", help=PROFILE_HELP)
    p.add_argument("--out", help="output folder (default: beside the weights)")
    p.add_argument("--data", help="COCO-panoptic root for the parity check (default: the checkpoint's)")
    p.add_argument("--parity-images", type=int, default=8)
    p.add_argument("--no-check", action="store_true", help="skip the parity check (not recommended)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="INT8 with NNCF / ONNX Runtime / litert-torch PT2E, refused past a PQ budget")
    p.add_argument("--weights", required=True)
    p.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    p.add_argument("--data", help="COCO-panoptic root: train split calibrates, val split checks PQ (default: the checkpoint's)")
    p.add_argument("--subset", type=int, help="calibration images (default: the recipe's, 300)")
    p.add_argument("--max-pq-drop", type=float, help="PQ budget in points; turns on NNCF accuracy control (OpenVINO, ONNX)")
    p.add_argument("--recipe", help="quantize/NAME.yaml (default: the runtime's built-in recipe)")
    p.add_argument("--imgsz", type=int, help="fixed input size (default: the size stored with the model)")
    p.add_argument("--out", help="output folder (default: beside the weights)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("strip", help="deployable copy of a checkpoint: FP16 weights, no optimizer / history")
    p.add_argument("--weights", required=True)
    p.add_argument("--out", required=True, help="e.g. models/pem_lite0_512.pt")
    p.add_argument("--fp32", action="store_true", help="keep FP32 weights")
    p.set_defaults(func=cmd_strip)

    p = sub.add_parser("bench", help="FPS against PQ for every model x format x precision x runtime x threads x size")
    p.add_argument("--weights", nargs="+", help=f"student checkpoints or shipped names (default {SHIPPED_MODEL})")
    p.add_argument("--teacher", help="teacher checkpoint: exported, scored and timed beside the students")
    p.add_argument("--combos", nargs="+", metavar="FORMAT:PRECISION",
                   help="e.g. torch:fp32 onnx:int8 (default: torch FP32 + onnx/openvino/tflite x fp32/fp16/int8)")
    p.add_argument("--teacher-combos", nargs="+", metavar="FORMAT:PRECISION",
                   help="the teacher's combos when they differ from the students' (default: the same)")
    p.add_argument("--threads", nargs="+", type=int, help="thread counts (default 1 2)")
    p.add_argument("--imgsz", nargs="+", type=int, help="input sizes (default 512)")
    p.add_argument("--profile", help=PROFILE_HELP + " (its formats, size and threads)")
    p.add_argument("--quick", action="store_true", help="torch FP32, ONNX FP32, OpenVINO INT8, TFLite FP16; one thread count; 50 val images")
    p.add_argument("--data", default="data/synth")
    p.add_argument("--val-images", type=int, help="val images scored per row (default: all)")
    p.add_argument("--frames", nargs="+", metavar="PHOTO",
                   help="photos for the 1280x720 / 640x480 timing frames (default: a val image resized)")
    p.add_argument("--runs", type=int, help="timed predict() calls per row after warm-up, over the frames in turn (default 50)")
    p.add_argument("--warmup", type=int)
    p.add_argument("--calibration-images", type=int, help="INT8 calibration subset (default: the recipe's)")
    p.add_argument("--work", default="runs/bench", help="artifact cache (reused when the checkpoint is unchanged)")
    p.add_argument("--out", default="runs/bench/report", help="where bench.json, bench.md, pareto.png go")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tune", help="best-PQ configuration that meets an FPS budget on a device profile; exports it")
    p.add_argument("--fps", type=float, required=True)
    p.add_argument("--profile", help=PROFILE_HELP)
    p.add_argument("--results", nargs="+", help="benchmark JSON files (bench.json, scaling.json) to choose from")
    p.add_argument("--measure", action="store_true", help="benchmark the profile's grid on this machine first")
    p.add_argument("--weights", nargs="+", help=f"students for --measure (default {SHIPPED_MODEL})")
    p.add_argument("--data", default="data/synth")
    p.add_argument("--runs", type=int)
    p.add_argument("--val-images", type=int)
    p.add_argument("--work", default="runs/bench")
    p.add_argument("--out", default="runs/tune", help="export folder of the choice")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--json", help="write the choice and runners-up here")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("demo", help="the whole product on the shipped student: export, INT8, parity, benchmark, report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data", default="data/synth", help="built-in data (generated if missing)")
    p.add_argument("--weights", help=f"student checkpoint (default: the shipped {SHIPPED_MODEL})")
    p.add_argument("--teacher", help="teacher checkpoint: its rows beside the student's, in the same runtimes")
    p.add_argument("--quick", action="store_true", help="tiny data set and settings (a CI smoke test, about 3 min)")
    p.add_argument("--from-scratch", action="store_true",
                   help="regenerate data, train the teacher, distil the student, then the demo (hours on a CPU)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("info", help="what a model file is (format, size, classes, thresholds), or a config's size")
    p.add_argument("target", nargs="?", help=f"model file, shipped model name (e.g. {SHIPPED_MODEL}) or config")
    p.add_argument("--config", help="YAML file or config name under models/: parameters and GMACs")
    p.add_argument("--imgsz", type=int, help="input size for a config's GMACs (default: the config's)")
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edgeseg.errors import EdgesegError

    args = build_parser().parse_args(argv)
    # set before any command imports torch (see the module docstring); a user's value wins
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except EdgesegError as exc:
        print(f"edgeseg: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
