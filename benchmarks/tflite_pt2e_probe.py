"""Probe: full-integer TFLite through PT2E (litert-torch's PT2EQuantizer, torch.ao prepare/convert),
the route issue 6 left untried. Records whether it converts, loads, holds int8 kernels, its speed
against the FP32 .tflite and its PQ on a few val images.

    python benchmarks/tflite_pt2e_probe.py [--imgsz 256] [--calib 16] [--images 20]

Writes ``benchmarks/results/tflite_pt2e_probe.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import torch

    from edgeseg.config import resolve_weights
    from edgeseg.data.coco_panoptic import CocoPanoptic
    from edgeseg.inference.preprocess import preprocess
    from edgeseg.modeling.pem import ExportWrapper
    from edgeseg.training.checkpoint import load_checkpoint, model_from_checkpoint

    ap = argparse.ArgumentParser()
    ap.add_argument("--imgsz", type=int, default=256)
    ap.add_argument("--calib", type=int, default=16)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--work", default="runs/pt2e_probe")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    record: dict = {"command": "python benchmarks/tflite_pt2e_probe.py " + " ".join(sys.argv[1:]), "imgsz": args.imgsz,
                    "route": "torch.export -> prepare_pt2e(litert_torch PT2EQuantizer, symmetric per-channel static) "
                             "-> calibrate -> convert_pt2e -> litert_torch.convert(quant_config)"}
    weights = resolve_weights("pem_mnv3l_512")
    ckpt = load_checkpoint(weights)
    module = ExportWrapper(model_from_checkpoint(ckpt, str(weights), image_size=args.imgsz)).eval()
    train = CocoPanoptic(ckpt["train_config"].get("data", "data/synth"), "train")
    calib = [torch.from_numpy(preprocess(train.load_raw(i).image, args.imgsz)[0]) for i in range(args.calib)]
    example = (calib[0],)
    step = "import"
    try:
        import litert_torch
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # torch 2.14: moved to torchao

        t0 = time.perf_counter()
        step = "torch.export"
        graph = torch.export.export(module, example).module()
        step = "prepare_pt2e"
        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
        # as in the OpenVINO / ONNX recipes: the prototype selection (argmax / gather on int64
        # indices, which the histogram observer cannot take) and the shape head stay in float
        from edgeseg.modeling.prototype_attention import PrototypeCrossAttention
        from edgeseg.modeling.shape_head import SilhouetteShapeHead as SHAPE_HEAD

        for cls in (PrototypeCrossAttention, SHAPE_HEAD):
            quantizer.set_module_type(cls, None)
        record["kept_float"] = ["PrototypeCrossAttention", SHAPE_HEAD.__name__]
        prepared = prepare_pt2e(graph, quantizer)
        step = "calibrate"
        with torch.no_grad():
            for x in calib:
                prepared(x)
        step = "convert_pt2e"
        converted = convert_pt2e(prepared, fold_quantize=False)
        step = "litert_torch.convert"
        edge = litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
        int8_path = work / "model_int8.tflite"
        edge.export(str(int8_path))
        record["convert_seconds"] = round(time.perf_counter() - t0, 1)
        record["size_mb"] = round(int8_path.stat().st_size / 1e6, 2)
        step = "load"
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(int8_path), num_threads=2)
        interp.allocate_tensors()
        dtypes = {}
        for d in interp.get_tensor_details():
            dtypes[str(d["dtype"].__name__)] = dtypes.get(str(d["dtype"].__name__), 0) + 1
        record["tensor_dtypes"] = dtypes
        step = "run"
        inp = interp.get_input_details()[0]["index"]
        times = []
        for i in range(13):
            interp.set_tensor(inp, calib[i % len(calib)].numpy())
            t = time.perf_counter()
            interp.invoke()
            if i >= 3:
                times.append(time.perf_counter() - t)
        record["int8_ms_2t"] = round(1000 * float(np.median(times)), 1)
        record["status"] = "converted and ran"
    except Exception as exc:  # noqa: BLE001 - the probe records where the route breaks
        record["status"] = f"failed at {step}"
        record["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:500] if str(exc) else ''}"
        record["trace_tail"] = traceback.format_exc().splitlines()[-6:]
    out = ROOT / "benchmarks" / "results" / "tflite_pt2e_probe.json"
    out.write_text(json.dumps(record, indent=2))
    print(json.dumps({k: v for k, v in record.items() if k != "trace_tail"}, indent=2))


if __name__ == "__main__":
    main()
