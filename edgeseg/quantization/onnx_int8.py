"""ONNX -> INT8 ONNX (QDQ), for ONNX Runtime.

Two engines, chosen by the recipe:

- ``onnxruntime`` (default): ONNX Runtime's own ``quantize_static``, QDQ, per-channel int8
  weights, uint8 activations. ONNX Runtime fuses its QDQ pairs around Conv/MatMul into integer
  kernels (QLinearConv, MatMulInteger). Measured on the default student: see
  ``benchmarks/results/int8.json`` and the note in ``quantize/README.md``.
- ``nncf``: ``nncf.quantize`` on the ModelProto; the only engine with accuracy control
  (``nncf.quantize_with_accuracy_control``). Measured: NNCF's QDQ layout running
  *slower* than FP32 in ONNX Runtime on a stand-in network (DequantizeLinear left unfused around
  Einsum/MatMul/LayerNorm), so it is used only when accuracy control is asked for.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata
from edgeseg.quantization.calibration import QuantData
from edgeseg.quantization.recipe import QuantRecipe

_PASS_THROUGH = {"Add", "Mul", "Where", "Transpose", "Reshape", "Cast", "Squeeze", "Unsqueeze"}
# Measured (shipped Lite0 student, 128 px, 16 calibration / 8 val images): Add and Mul quantized
# everywhere dropped PQ by 25.2 (the decoder adds position codes and the -1e4 mask exclusion
# right before the prototype argmax); quantized in the backbone and pixel decoder only, 0.03.
_ELEMENTWISE = ("Add", "Mul")


def _descendants(graph, outputs: set[str]) -> set[str]:
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: set[str] = set()
    stack = list(outputs)
    while stack:
        for node in consumers.get(stack.pop(), []):
            if node.name not in found:
                found.add(node.name)
                stack += list(node.output)
    return found


def sensitive_scope(model, prototype: bool = True, shape_head: bool = True,
                    elementwise_groups: list[str] | None = None) -> list[str]:
    """Node names kept in float (same rule as ``openvino_int8.sensitive_scope``): the mask-head
    Einsums and the similarity MatMul feeding each ArgMax/TopK (``prototype``), every node
    downstream of the final mask product, i.e. the silhouette shape head (``shape_head``), and,
    when ``elementwise_groups`` is given, every Add / Mul outside those parts of the student
    (``edgeseg/export/scopes.py``)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    names: set[str] = set()
    if elementwise_groups is not None:
        from edgeseg.export.scopes import node_groups

        groups = node_groups(model)
        names |= {n.name for n in model.graph.node
                  if n.op_type in _ELEMENTWISE and groups.get(n.name) not in elementwise_groups}
    if prototype:
        for node in model.graph.node:
            if node.op_type == "Einsum":
                names.add(node.name)
            elif node.op_type in ("ArgMax", "TopK"):
                stack = [node.input[0]]
                while stack:
                    p = producer.get(stack.pop())
                    if p is None:
                        continue
                    if p.op_type == "MatMul":
                        names.add(p.name)
                    elif p.op_type in _PASS_THROUGH:
                        stack += list(p.input)
    if shape_head:
        names |= _descendants(model.graph, {"mask_logits"})
    return sorted(names)


def quantize_onnx(src: Path, dst: Path, data: QuantData, recipe: QuantRecipe, meta: ModelMetadata,
                  validate: Callable[[Callable], dict] | None = None) -> dict:
    """Write the INT8 model to ``dst``; return the engine report."""
    try:
        import onnx
    except ImportError as exc:
        raise EdgesegError("ONNX INT8 needs onnx and onnxruntime: pip install 'edgeseg[quantize]'") from exc
    from edgeseg.export.to_onnx import embed_onnx_metadata

    model = onnx.load(str(src))
    elementwise = list(recipe.elementwise_int8_in) if recipe.engine == "onnxruntime" else None
    scope = sorted(set(recipe.ignored_names)
                   | set(sensitive_scope(model, recipe.ignore_prototype, recipe.ignore_shape_head, elementwise)))
    report: dict = {"calibration_images": len(data.calibration), "ignored_scope": scope}
    start = time.perf_counter()
    if recipe.engine == "onnxruntime":
        quantized = _quantize_onnxruntime(src, dst, data, recipe, scope, report)
    else:
        quantized = _quantize_nncf(model, data, recipe, scope, validate, report)
    embed_onnx_metadata(quantized, meta)
    onnx.save_model(quantized, str(dst))
    report["quantize_seconds"] = round(time.perf_counter() - start, 1)
    report["quantized_nodes"] = sum(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    return report


def _quantize_onnxruntime(src: Path, dst: Path, data: QuantData, recipe: QuantRecipe, scope: list[str], report: dict):
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(data.calibration)

        def get_next(self):
            x = next(self.items, None)
            return None if x is None else {"images": x}

    pre = dst.with_name("preprocessed.onnx")
    raw = dst.with_name("quantized_raw.onnx")
    # ONNX Runtime's recommended pre-pass (shape inference + graph optimisation) before quantizing.
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    fmt = QuantFormat.QDQ if recipe.onnx_quant_format == "qdq" else QuantFormat.QOperator
    quantize_static(str(pre), str(raw), Reader(), quant_format=fmt, per_channel=recipe.per_channel,
                    reduce_range=recipe.reduce_range, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QUInt8 if recipe.onnx_weight_type == "uint8" else QuantType.QInt8,
                    nodes_to_exclude=scope, op_types_to_quantize=list(recipe.onnx_op_types) or None)
    model = onnx.load(str(raw))
    pre.unlink()
    raw.unlink()
    report["engine"] = (f"onnxruntime {onnxruntime.__version__} quantize_static {recipe.onnx_quant_format.upper()}, "
                        f"per_channel={recipe.per_channel}, reduce_range={recipe.reduce_range}, weights {recipe.onnx_weight_type}, "
                        f"op types {list(recipe.onnx_op_types) or 'all'}")
    return model


def _quantize_nncf(model, data: QuantData, recipe: QuantRecipe, scope: list[str], validate, report: dict):
    import nncf

    from edgeseg.quantization.openvino_int8 import run_nncf

    def forward_for(session_model):
        import onnxruntime as ort

        session = ort.InferenceSession(session_model.SerializeToString(), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda x: dict(zip(names, session.run(None, {"images": x})))

    dataset = nncf.Dataset(data.calibration, lambda x: {"images": x})
    quantized = run_nncf(model, dataset, data, recipe, scope, validate, forward_for, report)
    report["engine"] = f"nncf {nncf.__version__} (ONNX QDQ)"
    return quantized
