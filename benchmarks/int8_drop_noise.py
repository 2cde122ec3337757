"""Is an INT8 refusal a real loss or the check's noise? The INT8 drop on the check's 50 images
against all val images, with a paired interval, beside the FP32 student's own one-grey-level noise.

    python benchmarks/int8_drop_noise.py [--formats onnx openvino] [--work runs/int8_drop_noise]

Each INT8 file is made by ``edgeseg quantize`` with the default recipe of its format, except that
the PQ budget is lifted so that the file is written whatever its drop (the drop is what is
measured here). Then FP32 torch, torch with the enlarging resize done by ``INTER_LINEAR`` instead
of ``INTER_LINEAR_EXACT`` (a one-grey-level input change: benchmarks/input_sensitivity.py), and
every INT8 file are scored on every val image at 512; each is compared with FP32 torch on the
first 50 images (what the INT8 check sees) and on all of them, with a paired bootstrap interval
of the difference over the same images (edgeseg.evaluation.panoptic_quality.paired_bootstrap).

Writes benchmarks/results/int8_drop_noise.json and .md.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeseg.assets import SHIPPED_MODEL, resolve_weights  # noqa: E402
from edgeseg.benchmark.measure import machine_description  # noqa: E402
from edgeseg.benchmark.report import write_record  # noqa: E402

CHECK_IMAGES = 50  # the INT8 recipes' validation_images


def _int8(weights: Path, fmt: str, data: str, work: Path) -> Path:
    from edgeseg.assets import resolve_recipe_file
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.quantization import quantize, resolve_recipe

    from edgeseg.checkpoint import file_sha256

    folder = work / f"{weights.stem}-{file_sha256(weights, 8)}" / f"{fmt}_int8"  # reused only for the same checkpoint
    hit = sorted(p for p in folder.glob("model.*") if p.suffix in (".onnx", ".xml"))
    if hit:
        return hit[0]
    name = str(load_checkpoint(weights)["model_config"].get("name", ""))
    recipe = resolve_recipe(fmt, resolve_recipe_file(name, fmt), None, None)
    recipe = dataclasses.replace(recipe, max_pq_drop=100.0)  # written whatever it drops: the drop is measured below
    return quantize(weights, fmt, data=data, recipe=recipe, imgsz=512, out=folder, overwrite=True).path


def _scores(predictor, ds, resize_flag: int | None = None):
    """Per-image PQ statistics of ``predictor`` over ``ds``; ``resize_flag`` replaces the exact enlarging resize."""
    from edgeseg.evaluation.evaluate import score_split
    from input_sensitivity import _with_resize  # the same one-grey-level stand-in (this folder is on sys.path)

    pp, stand_in = _with_resize(resize_flag if resize_flag is not None else cv2.INTER_LINEAR_EXACT)
    real, pp.cv2 = pp.cv2, stand_in
    try:
        return np.stack(score_split(predictor, ds, progress=False).pq.per_image)
    finally:
        pp.cv2 = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=SHIPPED_MODEL)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--formats", nargs="+", default=["onnx", "openvino"], choices=["onnx", "openvino", "tflite"])
    ap.add_argument("--work", default="runs/int8_drop_noise")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "int8_drop_noise.json"))
    args = ap.parse_args()

    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.panoptic_quality import paired_bootstrap, resampled_pq

    weights = resolve_weights(args.weights)
    ds = CocoPanoptic(args.data, "val")
    isthing = np.array([bool(c.isthing) for c in ds.categories])
    files = {fmt: _int8(weights, fmt, args.data, Path(args.work)) for fmt in args.formats}
    reference = load(weights, input_size=512)
    arms = {"fp32 torch, INTER_LINEAR resize": _scores(reference, ds, cv2.INTER_LINEAR)}
    arms.update({f"{fmt} int8": _scores(load(path), ds) for fmt, path in files.items()})
    base = _scores(reference, ds)
    n = base.shape[0]

    def pq(stats: np.ndarray, images: int) -> dict:
        w = np.zeros((1, n), dtype=np.int64)
        w[0, :images] = 1
        return {k: round(float(v[0]), 2) for k, v in resampled_pq(stats, isthing, w).items()}

    rows = [{"model": "fp32 torch", "pq_check_images": pq(base, CHECK_IMAGES), "pq_all": pq(base, n)}]
    for name, stats in arms.items():
        first = paired_bootstrap([base[:CHECK_IMAGES]], [stats[:CHECK_IMAGES]], isthing)
        every = paired_bootstrap([base], [stats], isthing)
        rows.append({"model": name, "pq_check_images": pq(stats, CHECK_IMAGES), "pq_all": pq(stats, n),
                     "vs_fp32_check_images": first, "vs_fp32_all": every})
    result = {"weights": Path(weights).name, "imgsz": 512, "val_images": n, "check_images": CHECK_IMAGES,
              "int8_files": {fmt: f"{path.parent.name}/{path.name}" for fmt, path in files.items()},
              "machine": machine_description(), "rows": rows,
              "command": "python benchmarks/int8_drop_noise.py " + " ".join(
                  a if not a.startswith("/") else Path(a).name for a in sys.argv[1:])}
    md = _markdown(result)
    write_record(args.json, result, md)
    print(md)


def _markdown(result: dict) -> str:
    c, n = result["check_images"], result["val_images"]
    lines = [f"| model | PQ, first {c} | PQ, all {n} | minus FP32, first {c} [95 % paired] | minus FP32, all {n} [95 % paired] | things minus FP32, all |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        a, b = r["pq_check_images"]["all"], r["pq_all"]["all"]
        if "vs_fp32_all" not in r:
            lines.append(f"| {r['model']} | {a} | {b} | - | - | - |")
            continue
        f, e = r["vs_fp32_check_images"]["all"], r["vs_fp32_all"]["all"]
        t = r["vs_fp32_all"]["things"]
        lines.append(f"| {r['model']} | {a} | {b} | {f['diff']} [{f['ci'][0]}, {f['ci'][1]}] | "
                     f"{e['diff']} [{e['ci'][0]}, {e['ci'][1]}] | {t['diff']} [{t['ci'][0]}, {t['ci'][1]}] |")
    m = result["machine"]
    lines += ["", f"Shipped student at 512 on the built-in val split; INT8 by each format's default recipe with the "
              f"budget lifted. {m.get('cpu')} ({m.get('arch')}, {' '.join(m.get('isa', []))}). "
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
