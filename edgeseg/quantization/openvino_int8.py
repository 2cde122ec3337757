"""OpenVINO IR -> INT8 IR with NNCF post-training quantization (optionally accuracy-controlled).

NNCF inserts FakeQuantize nodes; the CPU plugin turns weight + activation FakeQuantize pairs
around convolutions and matmuls into int8 kernels (VNNI where the CPU has it).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from edgeseg.errors import EdgesegError
from edgeseg.quantization.calibration import QuantData
from edgeseg.quantization.recipe import QuantRecipe

# Ops between the similarity matmul and the prototype argmax (TopK in the IR): masking, reshapes.
_PASS_THROUGH = {"Add", "Multiply", "Select", "Transpose", "Reshape", "Convert", "Squeeze", "Unsqueeze"}


def prototype_scope(model) -> list[str]:
    """Names of the activation x activation products kept in float by ``ignore_prototype``:
    every Einsum (mask head: query embeddings x pixel features) and each MatMul whose output
    reaches a TopK (the pixel-query similarity that picks the prototype). Found from the graph
    structure, so it does not depend on exporter node naming."""
    names: set[str] = set()
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "Einsum":
            names.add(op.get_friendly_name())
        elif kind == "TopK":
            stack = [op.input_value(0).get_node()]
            while stack:
                node = stack.pop()
                if node.get_type_name() == "MatMul":
                    names.add(node.get_friendly_name())
                elif node.get_type_name() in _PASS_THROUGH:
                    stack += [node.input_value(i).get_node() for i in range(node.get_input_size())]
    return sorted(names)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def sensitive_scope(model, prototype: bool = True, shape_head: bool = True) -> list[str]:
    """``prototype_scope`` plus, with ``shape_head``, every op downstream of the final mask
    product (the op producing ``mask_logits``): the silhouette shape head, which classifies
    things from crops of mask probabilities. Measured on the default student (OpenVINO, MIXED):
    quantizing it took things PQ from 33.0 to 14.6; keeping it float, to 31.1."""
    names = set(prototype_scope(model)) if prototype else set()
    if shape_head:
        result = next(r for r in model.get_results() if "mask_logits" in r.input_value(0).get_names())
        stack, seen = [result.input_value(0).get_node()], set()
        while stack:
            node = stack.pop()
            for output in node.outputs():
                for target in output.get_target_inputs():
                    child = target.get_node()
                    name = child.get_friendly_name()
                    if name not in seen and child.get_type_name() != "Result":
                        seen.add(name)
                        stack.append(child)
        names |= seen
    return sorted(names)


def run_nncf(model, calibration, data: QuantData, recipe: QuantRecipe, scope: list[str],
             validate: Callable | None, forward_for: Callable, report: dict):
    """``nncf.quantize`` or, with ``recipe.accuracy_control``, ``nncf.quantize_with_accuracy_control``
    (the layers it reverts to float are taken from NNCF's own log into ``report``).

    ``validate(forward, samples) -> {"pq", "per_image"}``; ``forward_for(model)`` turns what NNCF
    hands the validation function (compiled OpenVINO model / ONNX ModelProto) into a forward."""
    import nncf

    ignored = nncf.IgnoredScope(names=scope, patterns=list(recipe.ignored_patterns), validate=False)
    preset = nncf.QuantizationPreset.MIXED if recipe.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
    report.update({"preset": recipe.preset, "ignored_patterns": list(recipe.ignored_patterns),
                   "overflow_fix": recipe.overflow_fix})
    advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix(recipe.overflow_fix))
    common = dict(preset=preset, subset_size=len(data.calibration), fast_bias_correction=recipe.fast_bias_correction,
                  ignored_scope=ignored)
    if not recipe.accuracy_control:
        return nncf.quantize(model, calibration, advanced_parameters=advanced, **common)
    if validate is None:
        raise EdgesegError("accuracy control needs a validation function")

    def validation_fn(prepared, samples):
        scores = validate(forward_for(prepared), list(samples))
        # NNCF compares on its own scale: PQ as a fraction, like max_drop below.
        return scores["pq"] / 100.0, [v / 100.0 for v in scores["per_image"]]

    collector = _Collect()
    nncf_log = logging.getLogger("nncf")
    nncf_log.addHandler(collector)
    try:
        quantized = nncf.quantize_with_accuracy_control(
            model, calibration, nncf.Dataset(data.validation), validation_fn, max_drop=recipe.max_pq_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
                ranking_subset_size=recipe.ranking_images), advanced_quantization_parameters=advanced, **common)
    finally:
        nncf_log.removeHandler(collector)
    keep = ("drop", "quantizer", "completed", "could not", "Removed", "Total number", "reverted", "Reverted")
    report["accuracy_control_log"] = [line for line in collector.lines if any(k in line for k in keep)
                                      and "Not adding" not in line]
    return quantized


def quantize_openvino(xml_path: Path, data: QuantData, recipe: QuantRecipe,
                      validate: Callable | None = None) -> tuple[object, dict]:
    """INT8 ``ov.Model`` from the FP32 IR at ``xml_path`` and the engine report."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise EdgesegError("OpenVINO INT8 needs nncf and openvino: pip install 'edgeseg[quantize]'") from exc
    model = ov.Core().read_model(str(xml_path))
    scope = sorted(set(recipe.ignored_names) | set(sensitive_scope(model, recipe.ignore_prototype, recipe.ignore_shape_head)))
    report: dict = {"engine": f"nncf {nncf.__version__} (OpenVINO FakeQuantize)", "calibration_images": len(data.calibration),
                    "ignored_scope": scope}

    def forward_for(compiled):
        request = compiled.create_infer_request()

        def forward(x):
            request.infer({0: x})
            return {name: request.get_tensor(port).data.copy() for port in compiled.outputs for name in port.get_names()}

        return forward

    start = time.perf_counter()
    quantized = run_nncf(model, nncf.Dataset(data.calibration), data, recipe, scope, validate, forward_for, report)
    report["quantize_seconds"] = round(time.perf_counter() - start, 1)
    report["fake_quantize_nodes"] = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    return quantized, report


def save_openvino(model, xml_path: Path) -> None:
    import openvino as ov

    # compress_to_fp16 would turn the float weights left outside the int8 scope into fp16;
    # they are few and FP32 keeps the float part exact.
    ov.save_model(model, str(xml_path), compress_to_fp16=False)
