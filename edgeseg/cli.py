"""``edgeseg`` command line. Each sub-command parses flags and calls one public function."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# TOOLCHAIN.md: OpenMP spin-waiting collapses multi-threaded torch on shared cores. Must be
# set before torch is imported anywhere.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _apply_overrides(model_cfg, train_cfg, overrides: list[str]):
    """``--set train.steps=300 model.num_queries=50``: values parsed as YAML scalars."""
    import yaml

    from edgeseg.config import config_to_dict, model_config_from_dict, train_config_from_dict
    from edgeseg.errors import ConfigError

    data = config_to_dict(model_cfg, train_cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or parts[0] not in data or len(parts) < 2:
            raise ConfigError(f"--set expects model.KEY=VALUE or train.KEY=VALUE, got {item!r}")
        node = data[parts[0]]
        for p in parts[1:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return model_config_from_dict(data["model"]), train_config_from_dict(data["train"])


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
    from edgeseg.config import load_config, resolve_config

    model_cfg, train_cfg = load_config(resolve_config(config))
    overrides = list(args.set or []) + list(extra)
    if args.data:
        overrides.append(f"train.data={args.data}")
    return _apply_overrides(model_cfg, train_cfg, overrides)


def cmd_train(args: argparse.Namespace) -> None:
    from edgeseg.training.trainer import train

    model_cfg, train_cfg = _train_configs(args.config or args.model, args)
    metrics = train(model_cfg, train_cfg, args.out, resume=not args.no_resume, time_limit_min=args.time_limit)
    _report_training(metrics, args.out)


def cmd_distill(args: argparse.Namespace) -> None:
    from edgeseg.training.trainer import train

    model_cfg, train_cfg = _train_configs(args.student_config, args, [f"train.kd.teacher={args.teacher}"])
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
    print(f"mIoU {metrics['miou']:.2f}")


def _thresholds(args: argparse.Namespace):
    from edgeseg.inference.predictor import Thresholds

    if args.conf is None and args.overlap is None:
        return None
    t = Thresholds()
    return Thresholds(args.conf if args.conf is not None else t.object_mask_threshold,
                      args.overlap if args.overlap is not None else t.overlap_threshold)


def _add_threshold_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf", type=float, help="object score threshold (Mask2Former: 0.8)")
    p.add_argument("--overlap", type=float, help="overlap-area threshold (Mask2Former: 0.8)")


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

    predictor = load(args.weights, input_size=args.imgsz, threads=args.threads, thresholds=_thresholds(args))
    for path in predict_files(predictor, args.images, args.out):
        print(f"wrote {path}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from edgeseg.evaluation.calibrate import calibrate_checkpoint

    record = calibrate_checkpoint(args.weights, args.data, split=args.split, images=args.images)
    print(f"PQ on {record['images']} {record['split']} images by object-score threshold: {record['pq_by_threshold']}")
    print(f"stored object_mask_threshold={record['object_mask_threshold']} in {args.weights}")


def cmd_export(args: argparse.Namespace) -> None:
    from edgeseg.export import export

    result = export(args.weights, format=args.format, precision=args.precision, imgsz=args.imgsz, out=args.out,
                    data=args.data, check=not args.no_check, parity_images=args.parity_images,
                    overwrite=args.overwrite)
    print(f"wrote {result.path}")


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
    from edgeseg.config import load_config
    from edgeseg.modeling.complexity import model_info

    from edgeseg.config import resolve_config

    model_cfg, _ = load_config(resolve_config(args.config))
    if args.num_classes:
        import dataclasses

        model_cfg = dataclasses.replace(model_cfg, num_classes=args.num_classes)
    info = model_info(model_cfg, args.imgsz)
    for key, value in info.items():
        print(f"{key:>24}: {value}")


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run directory (checkpoints, log, metrics)")
    p.add_argument("--data", help="COCO-panoptic root (overrides train.data)")
    p.add_argument("--set", nargs="*", metavar="KEY=VALUE", help="override config fields, e.g. train.steps=300")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--time-limit", type=float, default=0.0, help="stop (resumable) after N minutes")


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
    which.add_argument("--model", help="a config under models/ by name, e.g. pem-mnv3l-512, teacher-swint")
    _add_run_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="train a student with ground-truth + KD losses from a teacher")
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.pt) or transformers checkpoint directory")
    p.add_argument("--student-config", required=True, help="YAML file or config name under models/")
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
    p.add_argument("--weights", required=True)
    p.add_argument("--out", default="predictions")
    p.add_argument("--imgsz", type=int)
    p.add_argument("--threads", type=int)
    _add_threshold_flags(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("calibrate", help="choose the object-score threshold on training images; stored in the checkpoint")
    p.add_argument("--weights", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="train", help="never the split you report on (default: train)")
    p.add_argument("--images", type=int, default=100)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("export", help="export a checkpoint to ONNX / OpenVINO IR / TFLite, checked against torch")
    p.add_argument("--weights", required=True)
    p.add_argument("--format", required=True, choices=["onnx", "openvino", "tflite"])
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    p.add_argument("--imgsz", type=int, default=512, help="fixed input size S (multiple of 32)")
    p.add_argument("--out", help="output folder (default: beside the weights)")
    p.add_argument("--data", help="COCO-panoptic root for the parity check (default: the checkpoint's)")
    p.add_argument("--parity-images", type=int, default=8)
    p.add_argument("--no-check", action="store_true", help="skip the parity check (not recommended)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("quantize", help="INT8 with NNCF / ONNX Runtime / ai-edge-quantizer, refused past a PQ budget")
    p.add_argument("--weights", required=True)
    p.add_argument("--format", required=True, choices=["openvino", "onnx", "tflite"])
    p.add_argument("--data", help="COCO-panoptic root: train split calibrates, val split checks PQ (default: the checkpoint's)")
    p.add_argument("--subset", type=int, help="calibration images (default: the recipe's, 300)")
    p.add_argument("--max-pq-drop", type=float, help="PQ budget in points; turns on NNCF accuracy control (OpenVINO, ONNX)")
    p.add_argument("--recipe", help="quantize/NAME.yaml (default: the runtime's built-in recipe)")
    p.add_argument("--imgsz", type=int, default=512)
    p.add_argument("--out", help="output folder (default: beside the weights)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("info", help="parameters and GMACs of a config")
    p.add_argument("--config", required=True)
    p.add_argument("--imgsz", type=int, default=512)
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edgeseg.errors import EdgesegError

    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EdgesegError as exc:
        print(f"edgeseg: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
