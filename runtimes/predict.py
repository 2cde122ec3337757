"""Standalone device example: one exported model, one image or video, no torch.

    python runtimes/predict.py MODEL (.onnx | .xml | .tflite) SOURCE [--out overlay.png] [--threads N]
        [--device CPU|GPU|NPU|AUTO] [--coco DIR]

Writes the colour overlay of the first result (or one overlay per frame into a folder for a
directory / video source) and prints the segments. ``--coco DIR`` also writes the results as
COCO-panoptic prediction files (``DIR/panoptic/<name>.png`` + ``DIR/panoptic.json``), which
``edgeseg pq`` or panopticapi score and which compare one device's output with another's.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgeseg.backends import load
from edgeseg.data.image_io import write_png
from edgeseg.inference.predict_files import CocoPanopticWriter
from edgeseg.inference.sources import IMAGE_SUFFIXES, is_single_image, iter_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("source", help="image, directory of images, or video file")
    ap.add_argument("--out", default="overlay.png", help="overlay PNG (single image) or folder")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--device", default="cpu", help="OpenVINO device for .xml models")
    ap.add_argument("--coco", metavar="DIR", help="also write COCO-panoptic PNGs + panoptic.json here")
    args = ap.parse_args()
    predictor = load(args.model, device=args.device, threads=args.threads)
    coco = CocoPanopticWriter(args.coco, predictor.labels) if args.coco else None
    single = is_single_image(args.source)
    out = Path(args.out)
    for name, image in iter_images(args.source):  # lazy: a video is read frame by frame
        t0 = time.perf_counter()
        result = predictor.predict(image)
        ms = (time.perf_counter() - t0) * 1000
        print(f"{name}: {len(result.segments)} segments in {ms:.0f} ms: "
              + ", ".join(f"{s.label}({s.score:.2f})" for s in result.segments[:8]))
        image_file = Path(name).suffix.lower() in IMAGE_SUFFIXES  # dog.jpg; a video frame is clip:12
        stem = Path(name).stem if image_file else name.replace(":", "_")
        target = out if single else out / f"{stem}_overlay.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_png(target, result.overlay(image))
        if coco is not None:
            coco.add(name.replace(":", "_"), result)  # an image keeps its file name, a frame is clip_12
    if coco is not None:
        coco.close()


if __name__ == "__main__":
    main()
