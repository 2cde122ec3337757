"""TFLite: argmax + gather prototype selection against the softmax-at-high-temperature formulation.

    python benchmarks/tflite_select.py --weights runs/default/model.pt [--imgsz 512] [--runs 30]

The prototype argmax / gather (and the Less / Select / ReduceMin of the mask rule) are not
XNNPACK ops, so they split the LiteRT graph into delegate partitions. ``soft_prototypes``
(edgeseg/modeling/prototype_attention.py) writes the same selection with delegated ops. This
script converts the student both ways (litert-torch, FP32), counts XNNPACK partitions, checks
each against the torch argmax reference with the export parity rule (8 val images) and times
both interleaved in LiteRT (1 and 2 threads, median of ``--runs`` after warm-up).
Writes benchmarks/results/tflite_select.json. The soft form is kept for export only if parity
holds and latency improves.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgeseg.backends import load_artifact  # noqa: E402
from edgeseg.checkpoint import load_checkpoint  # noqa: E402
from edgeseg.export import _metadata, _parity_data, torch_reference  # noqa: E402
from edgeseg.export.metadata import write_metadata  # noqa: E402
from edgeseg.export.parity import check_parity  # noqa: E402
from edgeseg.export.to_tflite import export_tflite  # noqa: E402
from edgeseg.modeling.build import model_from_checkpoint  # noqa: E402
from edgeseg.modeling.pem import ExportWrapper  # noqa: E402
from edgeseg.modeling.prototype_attention import PrototypeCrossAttention  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="runs/default/model.pt")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--temperature", type=float, default=1e4)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    weights = Path(args.weights)
    ckpt = load_checkpoint(weights)
    dataset = _parity_data(ckpt, None)
    reference = torch_reference(ckpt, weights, args.imgsz)
    rows, predictors = {}, {}
    work = Path(tempfile.mkdtemp(prefix="tflite_select_"))
    for name, temperature in (("argmax", 0.0), ("soft", args.temperature)):
        model = model_from_checkpoint(ckpt, str(weights), image_size=args.imgsz)
        for m in model.modules():
            if isinstance(m, PrototypeCrossAttention):
                m.selection = name
                m.select_temperature = temperature or m.select_temperature
        folder = work / name
        folder.mkdir()
        meta = _metadata(ckpt, weights, "tflite", "fp32", args.imgsz)
        t0 = time.perf_counter()
        meta.extra = export_tflite(ExportWrapper(model), torch.zeros(1, 3, args.imgsz, args.imgsz),
                                   folder / meta.model_file, "fp32", meta)
        convert_s = time.perf_counter() - t0
        write_metadata(folder, meta)
        parity = check_parity(reference, load_artifact(folder / meta.model_file), dataset, "fp32", 8)
        print(name, parity.summary(), "partitions", meta.extra["xnnpack_partitions"])
        rows[name] = {"temperature": temperature, "xnnpack_partitions": meta.extra["xnnpack_partitions"],
                      "convert_seconds": round(convert_s, 1), "parity": parity.to_dict()}
        predictors[name] = folder / meta.model_file
    x = np.random.default_rng(0).standard_normal((1, 3, args.imgsz, args.imgsz)).astype(np.float32)
    for threads in (1, 2):
        loaded = {k: load_artifact(p, threads=threads) for k, p in predictors.items()}
        times = {k: [] for k in loaded}
        for i in range(5 + args.runs):
            for k, p in loaded.items():
                t = time.perf_counter()
                p.infer(x)
                if i >= 5:
                    times[k].append(time.perf_counter() - t)
        for k, v in times.items():
            rows[k][f"median_ms_{threads}t"] = round(1000 * float(np.median(v)), 1)
    keep = rows["soft"]["parity"]["passed"] and all(
        rows["soft"][f"median_ms_{t}t"] < rows["argmax"][f"median_ms_{t}t"] for t in (1, 2))
    record = {"weights": str(weights), "imgsz": args.imgsz, "runs": args.runs, "rows": rows,
              "keep_soft_for_tflite": keep,
              "command": f"python benchmarks/tflite_select.py --weights {weights} --imgsz {args.imgsz} --runs {args.runs}"}
    out = ROOT / "benchmarks" / "results" / "tflite_select.json"
    out.write_text(json.dumps(record, indent=2))
    for k, r in rows.items():
        print(f"{k:>7}: partitions {r['xnnpack_partitions']}, {r['median_ms_1t']} ms 1t / {r['median_ms_2t']} ms 2t, "
              f"agreement {r['parity']['mask_agreement']:.2f}%, parity {'ok' if r['parity']['passed'] else 'FAILED'}")
    print(f"keep soft selection for TFLite: {keep} -> {out}")


if __name__ == "__main__":
    main()
