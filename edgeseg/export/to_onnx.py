"""Student -> one self-contained ``.onnx`` file (FP32, or FP16 weights/activations).

Exporter choice (measured on the default student at 512, torch 2.14): the dynamo exporter at
opset 18 gives ~1000 nodes and no shape arithmetic; the legacy TorchScript exporter gives ~1700
nodes, a third of them ``Constant``/``Shape``/``Slice``. Both run in ONNX Runtime within 6e-5 of
torch; OpenVINO reads both. The dynamo graph is the cleaner, so it is the default.
FP16 goes through ``onnxconverter_common.float16`` (Microsoft's maintained converter), keeping
float32 inputs/outputs so the numpy pre/post-processing is unchanged. The copy inside
``onnxruntime.transformers`` was tried first: it appends its casts out of topological order and
the result fails ``onnx.checker``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata

OPSET = 18


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
                meta: ModelMetadata, fp32_model: Path | None = None) -> dict:
    """Write ``path``; returns exporter details for the metadata's ``extra``. The outputs are
    named by the contract (``meta.output_names``), which ``meta.output_tensors`` already says.
    ``fp32_model``: this network's FP32 ``.onnx`` (the file this function wrote), converted to FP16
    instead of exporting again; the export is the slow part, and the file holds the same graph."""
    import onnx

    if precision not in ("fp32", "fp16"):
        raise EdgesegError(f"ONNX export precision must be fp32 or fp16 (int8: `edgeseg quantize`), got {precision!r}")
    info = {"exporter": "torch.onnx.export(dynamo=True)", "opset": OPSET}
    if fp32_model is not None and precision == "fp16":
        model = onnx.load(str(fp32_model))
        info["from_fp32"] = Path(fp32_model).name
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=OPSET,
                                        input_names=[meta.input_name], output_names=meta.output_names,
                                        verbose=False)
        program.optimize()
        model = program.model_proto
    if precision == "fp16":
        from onnxconverter_common import float16

        # The exporter's value_info annotations confuse the converter (it retyped a Sigmoid
        # output feeding a blocked op as fp16 while the node stayed fp32); drop them and let
        # the converter and ONNX shape inference derive types afresh.
        del model.graph.value_info[:]
        _separate_consumed_outputs(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one warning per constant clamped to the fp16 range
            model = float16.convert_float_to_float16(model, keep_io_types=True)
    embed_onnx_metadata(model, meta)
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    return {**info, "nodes": len(model.graph.node)}


def _separate_consumed_outputs(model) -> None:
    """Give every graph output that nodes also read (the final masks feed the silhouette head) its
    own Identity: with ``keep_io_types`` the FP16 converter turns such an output into a float32
    Cast that the internal readers then get, while their outputs are typed float16, and ONNX
    Runtime refuses the model ("Type (tensor(float16)) of output arg ... does not match")."""
    from onnx import helper

    read = {name for node in model.graph.node for name in node.input}
    for out in model.graph.output:
        if out.name not in read:
            continue
        inner = f"{out.name}__inner"
        for node in model.graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        model.graph.node.append(helper.make_node("Identity", [inner], [out.name], name=f"{out.name}__output"))


def embed_onnx_metadata(model, meta: ModelMetadata) -> None:
    """Write ``meta`` into the model's ``metadata_props`` (replacing earlier edgeseg keys):
    ``edgeseg.<key>`` and the Ultralytics-style plain keys."""
    from edgeseg.export.metadata import ultralytics_style_props

    props = {**ultralytics_style_props(meta), **meta.flat_strings()}
    keep = [p for p in model.metadata_props if p.key not in props and not p.key.startswith("edgeseg.")]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
