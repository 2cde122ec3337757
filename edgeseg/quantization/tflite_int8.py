"""``.tflite`` FP32 -> INT8 with ai-edge-quantizer (Google's maintained LiteRT quantizer).

Modes (recipe ``tflite_mode``):

- ``weight_only_int8`` (default): ``weight_only_wi8_afp32``: per-channel int8 weights, float
  activations. XNNPACK keeps exactly the FP32 partitioning (23 on the default student). Measured
  on the default student at 512 (benchmarks/results/int8.json): 0.30x the size, latency equal
  to FP32, PQ within noise. This is the only variant not slower than FP32 here.
- ``dynamic_int8``: ``dynamic_wi8_afp32``, activations quantized on the fly for int8 compute.
  Measured 7x *slower* than FP32 in ai-edge-litert 2.x (39 partitions: the dynamically
  quantized ops fall out of the delegate).
- ``static_int8``: ``static_wi8_ai8``, int8 weights and calibrated int8 activations. Every
  full-int8 route through this quantizer measured 2-3.5x *slower* than FP32 on XNNPACK (ops outside the delegate
  split the graph); kept selectable so the measurement can be repeated.
"""
from __future__ import annotations

import time
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.quantization.calibration import QuantData
from edgeseg.quantization.recipe import QuantRecipe


def quantize_tflite(src: Path, dst: Path, data: QuantData, recipe: QuantRecipe) -> dict:
    try:
        from ai_edge_quantizer import quantizer
        from ai_edge_quantizer import recipe as aeq_recipe
    except ImportError as exc:
        raise EdgesegError("TFLite INT8 needs ai-edge-quantizer: pip install 'edgeseg[quantize]'") from exc
    from edgeseg.export.to_tflite import xnnpack_partitions

    start = time.perf_counter()
    qt = quantizer.Quantizer(str(src))
    report: dict = {"engine": "ai-edge-quantizer", "mode": recipe.tflite_mode}
    if recipe.tflite_mode in ("weight_only_int8", "dynamic_int8"):
        chosen = aeq_recipe.weight_only_wi8_afp32() if recipe.tflite_mode == "weight_only_int8" else aeq_recipe.dynamic_wi8_afp32()
        qt.load_quantization_recipe(chosen)
        result = qt.quantize()
        report["calibration_images"] = 0  # no activation ranges to calibrate
    else:
        from ai_edge_litert import interpreter

        signatures = interpreter.Interpreter(model_path=str(src)).get_signature_list()
        name = next(iter(signatures))
        input_name = signatures[name]["inputs"][0]
        qt.load_quantization_recipe(aeq_recipe.static_wi8_ai8())
        calibration = qt.calibrate({name: [{input_name: x} for x in data.calibration]})
        result = qt.quantize(calibration)
        report["calibration_images"] = len(data.calibration)
    result.export_model(str(dst), overwrite=True)
    report["quantize_seconds"] = round(time.perf_counter() - start, 1)
    report["xnnpack_partitions"] = xnnpack_partitions(dst)
    return report
