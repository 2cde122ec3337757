"""Student -> ``.tflite`` through litert-torch (torch module -> LiteRT flatbuffer, no TensorFlow).

Why this route: measured in TOOLCHAIN.md on a stand-in PEM network, litert-torch was exact
(3e-6 vs torch) while onnx2tf converted with wrong FP32 outputs (82 % agreement), tried to
download a calibration file at run time and took 10 minutes. FP16 is weight-only float16
through ai-edge-quantizer (Google's maintained LiteRT quantizer): half the size, float
activations, so XNNPACK runs it as before.

Metadata: a ``.tflite`` flatbuffer has a metadata table, but writing it needs the TFLite
schema tooling (TensorFlow); edgeseg keeps the contract in ``edgeseg.json`` beside the model,
which is what ``edgeseg.load`` reads.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata


def _convert_fp32(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    try:
        import litert_torch as converter
    except ImportError:
        try:
            import ai_edge_torch as converter  # the package's earlier name
        except ImportError as exc:
            raise EdgesegError("TFLite export needs litert-torch: pip install litert-torch "
                               "(a converter; devices only need `edgeseg[tflite]`)") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge_model = converter.convert(module.eval(), (example,))
    edge_model.export(str(path))


def _weights_to_fp16(src: Path, dst: Path) -> str:
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError as exc:
        raise EdgesegError("FP16 TFLite export needs ai-edge-quantizer: pip install ai-edge-quantizer") from exc
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(recipe.static_wi16_afp32() if False else _fp16_recipe())
    qt.quantize().export_model(str(dst))
    return "ai-edge-quantizer float16 weights"


def _fp16_recipe() -> list[dict]:
    """Weight-only float16 for every op (ai-edge-quantizer's recipe format)."""
    return [{
        "regex": ".*",
        "operation": "*",
        "algorithm_key": "float_casting",
        "op_config": {
            "weight_tensor_config": {"num_bits": 16, "dtype": "float"},
            "compute_precision": "float",
            "explicit_dequantize": True,
        },
    }]


def export_tflite(module: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
                  meta: ModelMetadata) -> dict:
    if precision not in ("fp32", "fp16"):
        raise EdgesegError(f"TFLite export precision must be fp32 or fp16 (int8: `edgeseg quantize`), got {precision!r}")
    if precision == "fp32":
        _convert_fp32(module, example, path)
        return {"converter": "litert-torch"}
    fp32 = path.with_name("fp32_intermediate.tflite")
    _convert_fp32(module, example, fp32)
    how = _weights_to_fp16(fp32, path)
    fp32.unlink()
    return {"converter": "litert-torch", "fp16": how}
