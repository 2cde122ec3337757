"""The shipped student's accuracy on a small fixed slice of the built-in val split, recorded so
that a test can hold the code to it (tests/test_contracts.py): PQ with its 95 % bootstrap
interval on the first 20 val images at 256 px (the training size; cheap enough for CI).

    python benchmarks/shipped_regression.py            # -> benchmarks/results/shipped_regression.json

The first N images of the built-in data depend only on (seed, split, index), so the test
regenerates exactly these images instead of shipping them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.assets import SHIPPED_MODEL  # noqa: E402
from edgeseg.backends import load  # noqa: E402
from edgeseg.data.coco_panoptic import CocoPanoptic  # noqa: E402
from edgeseg.data.image_io import atomic_write_bytes  # noqa: E402
from edgeseg.data.synth import SynthConfig, generate_synthetic  # noqa: E402
from edgeseg.evaluation.evaluate import evaluate  # noqa: E402

IMAGES = 20
SIZE = 256


def measure(data: Path, images: int = IMAGES, size: int = SIZE, weights: str = SHIPPED_MODEL) -> dict:
    m = evaluate(load(weights, input_size=size), CocoPanoptic(data, "val"), max_images=images, progress=False)
    return {"weights": weights, "input_size": size, "images": m["images"], "pq": round(m["pq"], 3),
            "pq_things": round(m["pq_things"], 3), "pq_stuff": round(m["pq_stuff"], 3), "pq_ci95": m["pq_ci95"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "shipped_regression.json"))
    args = ap.parse_args()
    data = Path("runs/shipped_regression_data")
    if not (data / "annotations").is_dir():
        generate_synthetic(data, seed=0, config=SynthConfig(image_size=256, num_train=1, num_val=IMAGES))
    record = measure(data) | {"command": "python benchmarks/shipped_regression.py", "date": time.strftime("%Y-%m-%d")}
    atomic_write_bytes(Path(args.out), (json.dumps(record, indent=2) + "\n").encode())
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
