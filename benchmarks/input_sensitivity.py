"""How much the student's output moves on input changes below what a check can see.

    python benchmarks/input_sensitivity.py [--images 30] [--fp32-tflite DIR/model.tflite]

Two measurements on the shipped student at 512, both on the first built-in val images:

- **resize**: FP32 torch PQ with the letterbox's enlarging resize done by OpenCV's
  ``INTER_LINEAR`` (fixed-point, one grey level apart from exact on about a third of the pixels)
  and by ``INTER_LINEAR_EXACT`` (what preprocessing uses), and the pixel agreement of the two
  panoptic outputs. PEM picks each query's prototype by an argmax over pixels, so a near tie
  can flip on such a change;
- **FP16 by part**: the TFLite FP32 export with weight-only FP16 (ai-edge-quantizer's float
  casting, as ``edgeseg export --precision fp16`` makes it) in the whole file and in one part at
  a time (backbone, pixel decoder, transformer decoder; the other parts' weights stay FP32),
  each checked by edgeseg's FP16 parity check on 8 and on 30 val images.

Writes benchmarks/results/input_sensitivity.json and .md.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgeseg.assets import SHIPPED_MODEL  # noqa: E402
from edgeseg.benchmark.measure import machine_description  # noqa: E402
from edgeseg.benchmark.report import write_record  # noqa: E402

# part -> the scope its ops' output tensors carry in a litert-torch file (ai-edge-quantizer's regex)
PARTS = {"whole file": ".*", "backbone": ".*Backbone_backbone.*",
         "pixel decoder": ".*PEMPixelDecoder_pixel_decoder.*",
         "transformer decoder": ".*PEMTransformerDecoder_decoder.*"}


def _with_resize(flag: int):
    """A stand-in for the cv2 module that preprocessing sees, with its exact-resize flag mapped to ``flag``."""
    import edgeseg.inference.preprocess as pp

    class _Cv2:
        def __getattr__(self, name):
            return flag if name == "INTER_LINEAR_EXACT" else getattr(cv2, name)

    return pp, _Cv2()


def resize_sensitivity(weights: str, data: str, images: int) -> dict:
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.evaluation.agreement import panoptic_agreement
    from edgeseg.evaluation.evaluate import evaluate

    ds = CocoPanoptic(data, "val")
    predictor = load(weights, input_size=512)
    out, panoptic = {}, {}
    for name, flag in (("INTER_LINEAR_EXACT", cv2.INTER_LINEAR_EXACT), ("INTER_LINEAR", cv2.INTER_LINEAR)):
        pp, stand_in = _with_resize(flag)
        real, pp.cv2 = pp.cv2, stand_in
        try:
            m = evaluate(predictor, ds, max_images=images, progress=False)
            panoptic[name] = []
            for i in range(min(images, len(ds))):
                r = predictor.predict(ds.load_raw(i).image, tasks=("panoptic",))
                panoptic[name].append((r.panoptic, {s.id: s.category_id for s in r.segments}))
        finally:
            pp.cv2 = real
        out[name] = {"pq": round(m["panoptic"]["all"]["pq"], 2), "things": round(m["panoptic"]["things"]["pq"], 2),
                     "stuff": round(m["panoptic"]["stuff"]["pq"], 2)}
    agree = [panoptic_agreement(a[0], a[1], b[0], b[1])
             for a, b in zip(panoptic["INTER_LINEAR_EXACT"], panoptic["INTER_LINEAR"])]
    return {"images": min(images, len(ds)), "pq": out, "panoptic_agreement_pct": round(float(np.mean(agree)), 2),
            "images_below_99pct": int(sum(a < 99.0 for a in agree))}


def fp16_by_part(weights: str, data: str, fp32_tflite: Path, image_counts: tuple[int, ...]) -> list[dict]:
    from edgeseg.backends import load
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.export.parity import check_parity
    from edgeseg.export.to_tflite import weights_to_fp16

    ds = CocoPanoptic(data, "val")
    reference = load(weights, input_size=512)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for part, regex in PARTS.items():
            folder = Path(tmp) / part.replace(" ", "_")
            folder.mkdir()
            shutil.copy(fp32_tflite.parent / "edgeseg.json", folder / "edgeseg.json")
            weights_to_fp16(fp32_tflite, folder / "model.tflite", scope=regex)  # as edgeseg export makes FP16
            row = {"fp16_part": part, "mb": round((folder / "model.tflite").stat().st_size / 1e6, 1)}
            artifact = load(folder / "model.tflite")
            for n in image_counts:
                r = check_parity(reference, artifact, ds, "fp16", images=n)
                row[f"agreement_{n}"] = round(r.mask_agreement, 2)
                row[f"passed_{n}"] = r.passed
                row[f"pq_diff_{n}"] = round(r.pq_artifact - r.pq_reference, 2)
            rows.append(row)
            del artifact
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=SHIPPED_MODEL)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--fp32-tflite", type=Path, help="an edgeseg FP32 .tflite export at 512 (default: export one here)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "input_sensitivity.json"))
    args = ap.parse_args()
    from edgeseg.assets import resolve_weights

    weights = str(resolve_weights(args.weights))
    fp32 = args.fp32_tflite
    if fp32 is None:
        from edgeseg.export import export

        fp32 = export(weights, "tflite", "fp32", imgsz=512, out=ROOT / "runs" / "input_sensitivity" / "tflite_fp32",
                      data=args.data, overwrite=True).path
    result = {"weights": Path(weights).name, "machine": machine_description(),
              "resize": resize_sensitivity(weights, args.data, args.images),
              "fp16_by_part": fp16_by_part(weights, args.data, Path(fp32), (8, args.images)),
              "command": "python benchmarks/input_sensitivity.py " + " ".join(
                  a if not a.startswith("/") else Path(a).name for a in sys.argv[1:])}
    md = _markdown(result, args.images)
    write_record(args.json, result, md)
    print(md)


def _markdown(result: dict, images: int) -> str:
    r = result["resize"]
    lines = [f"FP32 torch on the first {r['images']} val images at 512, by the enlarging resize:", "",
             "| resize | PQ | things | stuff |", "|---|---|---|---|"]
    lines += [f"| {name} | {v['pq']} | {v['things']} | {v['stuff']} |" for name, v in r["pq"].items()]
    lines += ["", f"Panoptic agreement of the two: {r['panoptic_agreement_pct']} % of pixels "
              f"({r['images_below_99pct']} images below 99 %).", "",
              "TFLite weight-only FP16 in one part (FP32 weights elsewhere), edgeseg's FP16 parity check (>= 99.0 %):", "",
              f"| FP16 part | MB | agreement, 8 images | agreement, {images} images | PQ diff, 8 | PQ diff, {images} |",
              "|---|---|---|---|---|---|"]
    for row in result["fp16_by_part"]:
        lines.append(f"| {row['fp16_part']} | {row['mb']} | {row['agreement_8']} | {row[f'agreement_{images}']} | "
                     f"{row['pq_diff_8']} | {row[f'pq_diff_{images}']} |")
    m = result["machine"]
    lines += ["", f"{m.get('cpu')} ({m.get('arch')}, {' '.join(m.get('isa', []))}). Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
