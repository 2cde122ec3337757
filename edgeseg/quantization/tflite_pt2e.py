"""Full-integer ``.tflite`` from the torch student: PT2E static INT8 through litert-torch.

Route: ``torch.export`` -> ``prepare_pt2e`` with litert-torch's ``PT2EQuantizer`` (symmetric
per-channel int8 weights, calibrated int8 activations) -> calibration on the train-split images
-> ``convert_pt2e`` -> ``litert_torch.convert``. The result holds int8 CONV_2D / FULLY_CONNECTED
/ DEPTHWISE kernels that XNNPACK runs as QS8; its input is int8 (the LiteRT adapter quantizes the
float image with the input's scale / zero point) and its outputs are float.

Why this engine and not ai-edge-quantizer's ``static_wi8_ai8`` on the FP32 ``.tflite``: that one
measured 2-3.5x *slower* than FP32 (measured, docs/int8.md), while this graph runs faster than the FP32
``.tflite`` (the recorded figures are in benchmarks/results/int8.json).

Three things the stock quantizer gets wrong on this network, all handled here:

- It annotates every ``mul`` / ``add``, including int64 index arithmetic (the sine position
  tables and the shape head's coordinate grids): a histogram observer on an int64 tensor
  fails at calibration ("histogram_cpu not implemented for 'Long'"). Non-float edges are
  dropped from the annotation.
- ``set_module_type(cls, None)`` does not keep a module in float: ops inside it still get
  annotated, and once quantized the prototype attention's ``F.normalize`` becomes an int8
  ``L2_NORMALIZATION`` that LiteRT refuses to load (it requires an output scale of 1/128).
  Modules kept in float are therefore matched on each node's ``nn_module_stack`` and their
  annotations removed.
- It fuses a conv with a following ``relu`` but not with ``relu6``: every conv of the
  EfficientNet-Lite backbone was quantized before its clamp, over its whole pre-activation
  range (see ``_quantize_after_relu6``). Measured on the shipped student: PQ drop 2.31 -> 0.40
  on the 50 check images.

What PT2E leaves in float (the kept modules and the transposed convs, see
``_int8_weights_for_float_ops``) then gets int8 weights with float compute.
"""
from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import numpy as np

from edgeseg.errors import EdgesegError
from edgeseg.quantization.calibration import QuantData
from edgeseg.quantization.recipe import QuantRecipe


def float_module_patterns(recipe: QuantRecipe) -> list[str]:
    """Regexes on module class / path names whose ops stay float (from the recipe's switches)."""
    patterns = list(recipe.ignored_patterns)
    if recipe.ignore_prototype:
        patterns.append(r"PrototypeCrossAttention")
    if recipe.ignore_shape_head:
        patterns.append(r"SilhouetteShapeHead")
    return patterns


def _node_dtype(model, node):
    import torch

    if not isinstance(node, torch.fx.Node):
        return None
    value = node.meta.get("val")
    if value is None and node.op == "get_attr":  # lifted constants carry no meta value
        value = model
        for part in node.target.split("."):
            value = getattr(value, part, None)
    return getattr(value, "dtype", None)


def _quantization_config(observer: str):
    """litert-torch's int8 config (per-channel symmetric weights, per-tensor affine activations),
    with the activation observer the recipe names."""
    import dataclasses

    from litert_torch.quantize.pt2e_quantizer import MinMaxObserver, get_symmetric_quantization_config

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    if observer == "minmax":
        act = dataclasses.replace(config.input_activation,
                                  observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
        config = dataclasses.replace(config, input_activation=act, output_activation=act)
    return config


def _quantize_after_relu6(model) -> int:
    """Move each conv's output quantization to the ReLU6 that follows it; returns how many.

    Why: litert-torch's annotators fuse a conv with a following ``relu`` but not with ``relu6``
    (``hardtanh``), the activation of every EfficientNet-Lite / MobileNetV2 block. The conv's
    output was then quantized *before* the clamp, over its whole pre-activation range (negative
    values and values above 6 included), leaving a few dozen int8 levels for the [0, 6] that
    the next layer sees. Observed after the clamp, the full 256 levels cover [0, 6], and the
    converter fuses the clamp into the int8 conv as its RELU6 activation."""
    import torch
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    relu6 = {torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default}
    convs = {torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default}
    moved = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in relu6 or tuple(node.args[1:3]) not in ((), (0.0, 6.0)):
            continue
        conv = node.args[0]
        ann = getattr(conv, "meta", {}).get("quantization_annotation")
        if (getattr(conv, "target", None) not in convs or ann is None or ann.output_qspec is None
                or len(conv.users) != 1):
            continue
        # (the clamp's own annotation, if any, shares the conv's range: replaced)
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={}, output_qspec=ann.output_qspec, _annotated=True)
        ann.output_qspec = None
        moved += 1
    return moved


def _make_quantizer(keep_float: list[str], observer: str = "histogram"):
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    compiled = [re.compile(p) for p in keep_float]

    class FloatAwareQuantizer(PT2EQuantizer):
        """litert-torch's quantizer that never observes integer tensors and keeps the listed
        modules (matched on the exported node's module stack) entirely in float."""

        kept_float_nodes = 0
        relu6_outputs = 0

        def annotate(self, model):
            model = super().annotate(model)
            for node in model.graph.nodes:
                ann = node.meta.get("quantization_annotation")
                if ann is None:
                    continue
                stack = [f"{path} {cls}" for path, cls in (node.meta.get("nn_module_stack") or {}).values()]
                if compiled and any(p.search(s) for p in compiled for s in stack):
                    del node.meta["quantization_annotation"]
                    self.kept_float_nodes += 1
                    continue
                for inp in list(ann.input_qspec_map):
                    dtype = _node_dtype(model, inp)
                    if dtype is not None and not dtype.is_floating_point:
                        del ann.input_qspec_map[inp]
                dtype = _node_dtype(model, node)
                if ann.output_qspec is not None and dtype is not None and not dtype.is_floating_point:
                    ann.output_qspec = None
            self.relu6_outputs = _quantize_after_relu6(model)
            return model

    quantizer = FloatAwareQuantizer()
    quantizer.set_global(_quantization_config(observer))
    return quantizer


def _int8_weights_for_float_ops(src: Path, dst: Path) -> None:
    """Int8 *weights* (float compute, a DEQUANTIZE in front) for the ops PT2E left float.

    Why: litert-torch lowers the pixel decoder's ``conv_transpose2d`` to a float TRANSPOSE_CONV
    even when PT2E quantized it (its per-channel weight is on axis 1), and the modules kept
    float on purpose hold float weights too: 12.6 MB, 0.43x the FP32 file. ai-edge-quantizer's
    weight-only pass leaves the int8 ops as they are and stores the rest in int8; XNNPACK keeps
    the same partitioning (measured on the default student: 33 before and after)."""
    from ai_edge_quantizer import qtyping, quantizer

    qt = quantizer.Quantizer(str(src))
    qt.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "model is already partially quantized": intended
        qt.quantize().export_model(str(dst), overwrite=True)


def quantize_tflite_pt2e(module, dst: Path, data: QuantData, recipe: QuantRecipe) -> dict:
    """Calibrate and convert ``module`` (the export wrapper, eval mode, fixed S) to ``dst``."""
    try:
        import litert_torch
        import torch
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        raise EdgesegError("TFLite INT8 with the litert-torch engine needs litert-torch and torchao: "
                           "pip install 'edgeseg[quantize]'") from exc
    from edgeseg.export.to_tflite import xnnpack_partitions
    from edgeseg.export.xnnpack import prepare_for_xnnpack

    if not data.calibration:
        raise EdgesegError("TFLite INT8 (litert-torch): no calibration images")
    start = time.perf_counter()
    example = (torch.from_numpy(np.ascontiguousarray(data.calibration[0])),)
    module = prepare_for_xnnpack(module, example[0])
    keep_float = float_module_patterns(recipe)
    quantizer = _make_quantizer(keep_float, recipe.tflite_activation_observer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = torch.export.export(module.eval(), example).module()
        prepared = move_exported_model_to_eval(prepare_pt2e(graph, quantizer))
        calib_start = time.perf_counter()
        with torch.no_grad():
            for x in data.calibration:
                prepared(torch.from_numpy(np.ascontiguousarray(x)))
        calib_seconds = time.perf_counter() - calib_start
        converted = move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=False))
        edge = litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    pt2e_file = dst.with_name(dst.stem + "_pt2e.tflite")
    edge.export(str(pt2e_file))
    sizes = {"pt2e_bytes": pt2e_file.stat().st_size}
    _int8_weights_for_float_ops(pt2e_file, dst)
    pt2e_file.unlink()
    sizes["final_bytes"] = dst.stat().st_size
    return {**sizes,
        "engine": "litert-torch", "mode": "static_int8",
        "calibration_images": len(data.calibration),
        "calibration_seconds": round(calib_seconds, 1),
        "kept_float_modules": keep_float,
        "activation_observer": recipe.tflite_activation_observer,
        "kept_float_nodes": quantizer.kept_float_nodes,
        "relu6_outputs_quantized": quantizer.relu6_outputs,
        "quantize_seconds": round(time.perf_counter() - start, 1),
        "xnnpack_partitions": xnnpack_partitions(dst),
    }
