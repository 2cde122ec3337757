"""YOLOv8n-seg as the .tflite files Ultralytics users ship, for LiteRT latency beside the student.

    python benchmarks/peer_tflite.py --yolo-python ULTRALYTICS_VENV/bin/python --out runs/peer_tflite

``--yolo-python`` is a Python in its own virtual environment with Ultralytics and its TFLite
export requirements (``pip install ultralytics "tensorflow<=2.19" "tf_keras<=2.19" sng4onnx
onnx_graphsurgeon onnxslim`` then ``pip install --no-deps "onnx2tf>=1.26.3,<1.29"``); nothing of
it enters edgeseg. The model is built from ``yolov8n-seg.yaml`` with random weights (latency
only; weights do not change a forward time) and exported at ``--imgsz`` through Ultralytics'
classic full-integer route (``format="saved_model", int8=True``: ONNX -> onnx2tf ->
TFLiteConverter), which writes ``*_full_integer_quant.tflite`` (int8 input and outputs) and
``*_float32.tflite``. Since Ultralytics 8.4.83, ``format="tflite"`` goes through litert-torch
and keeps float input and outputs: not a full-integer file.

Offline, with no download: the INT8 calibration images are ``--images`` (default: the built-in
data's val images) in a YOLO-layout folder with empty labels, and the onnx2tf sample file that
Ultralytics would otherwise fetch (``calibration_image_sample_data_20x128x128x3_float32.npy``,
looked for in the working directory; Ultralytics passes its own calibration array, so its
contents do not matter) is written from the same images.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_EXPORT = """
import sys
from ultralytics import YOLO
print(YOLO(sys.argv[1]).export(format="saved_model", int8=True, imgsz=int(sys.argv[2]), data=sys.argv[3], device="cpu"))
"""


def _calibration_set(images: Path, work: Path, count: int) -> Path:
    import numpy as np

    from edgeseg.data.image_io import read_image

    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
    if len(files) < 20:
        raise SystemExit(f"{images}: {len(files)} images; the calibration needs at least 20")
    root = work / "calib"
    for sub in ("images/val", "labels/val"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, root / "images/val" / f.name)
        (root / "labels/val" / f"{f.stem}.txt").write_text("")
    (root / "calib.yaml").write_text(f"path: {root.resolve()}\ntrain: images/val\nval: images/val\nnames:\n  0: thing\n")
    import cv2

    sample = np.stack([cv2.resize(read_image(f), (128, 128), interpolation=cv2.INTER_LINEAR) for f in files[:20]])
    np.save(work / "calibration_image_sample_data_20x128x128x3_float32.npy", sample.astype(np.float32) / 255.0)
    return root / "calib.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--yolo-python", required=True)
    ap.add_argument("--model", default="yolov8n-seg.yaml")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--images", default="data/synth/val", help="calibration images (a folder)")
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--out", default="runs/peer_tflite")
    args = ap.parse_args()
    work = Path(args.out).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = _calibration_set(Path(args.images), work, args.count)
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False",
           "YOLO_CONFIG_DIR": str(work / "yolo_config"), "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([args.yolo_python, "-c", _EXPORT, args.model, str(args.imgsz), str(data)],
                          cwd=work, env=env, capture_output=True, text=True)
    stem = Path(args.model).stem
    saved = work / f"{stem}_saved_model"
    if proc.returncode != 0 or not saved.is_dir():
        raise SystemExit(f"Ultralytics export failed:\n{proc.stderr[-3000:]}")
    for kind in ("full_integer_quant", "float32"):
        src = saved / f"{stem}_{kind}.tflite"
        dst = work / f"{stem}_{args.imgsz}_{kind}.tflite"
        shutil.copy(src, dst)
        print(dst)


if __name__ == "__main__":
    main()
