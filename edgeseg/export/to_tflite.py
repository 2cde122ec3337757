"""Student -> ``.tflite`` through litert-torch (torch module -> LiteRT flatbuffer, no TensorFlow).

Why this route: measured on a stand-in PEM network, litert-torch was exact
(3e-6 vs torch) while onnx2tf converted with wrong FP32 outputs (82 % agreement), tried to
download a calibration file at run time and took 10 minutes. FP16 is weight-only float16
through ai-edge-quantizer (Google's maintained LiteRT quantizer): half the size, float
activations, so XNNPACK runs it as before.

Metadata: ``edgeseg.json`` beside the model is what ``edgeseg.load`` reads; the same JSON is
also stored in the flatbuffer's own metadata table (an entry named ``edgeseg``, written with the
schema module ai-edge-litert ships), so a lone ``.tflite`` copied to a phone still says what it is.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata
from edgeseg.export.xnnpack import prepare_for_xnnpack


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


def weights_to_fp16(src: Path, dst: Path, scope: str = ".*") -> str:
    """Weight-only float16 (ai-edge-quantizer's FLOAT_CASTING algorithm): weights stored as fp16
    and dequantized in the graph, activations float32. ``scope``: a regex on the ops' output
    tensor names (litert-torch names them by module path); the other ops keep FP32 weights."""
    try:
        from ai_edge_quantizer import quantizer, recipe_manager
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName
    except ImportError as exc:
        raise EdgesegError("FP16 TFLite export needs ai-edge-quantizer: pip install ai-edge-quantizer") from exc
    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(regex=scope, operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=AlgorithmName.FLOAT_CASTING)
    qt = quantizer.Quantizer(str(src))
    qt.load_quantization_recipe(manager.get_quantization_recipe())
    qt.quantize().export_model(str(dst), overwrite=True)
    return "ai-edge-quantizer FLOAT_CASTING fp16 weights"


def xnnpack_partitions(path: Path) -> int | None:
    """How many subgraphs XNNPACK takes over in LiteRT's default CPU setup (``DELEGATE`` nodes
    in the execution plan). 1 means the whole network runs in XNNPACK; every op XNNPACK cannot
    run splits it further and costs a hand-over. None without a LiteRT runtime."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        return None
    it = interpreter.Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in it._get_ops_details())


def output_tensors(path: Path, meta: ModelMetadata) -> dict[str, str]:
    """Which of the ``.tflite``'s output tensors is which contract output, decided once at export
    time from the contract's shapes (class logits ``[1, N, K+1]``, masks ``[1, N, S/4, S/4]``)
    and recorded in the metadata: LiteRT converters rename outputs (``StatefulPartitionedCall:0``)
    and do not keep their order, so the runtime adapter must not guess."""
    try:
        from ai_edge_litert import interpreter
    except ImportError as exc:
        raise EdgesegError("TFLite export needs ai-edge-litert to read the converted model back: "
                           "pip install ai-edge-litert") from exc
    details = interpreter.Interpreter(model_path=str(path)).get_output_details()
    want = {"class_logits": [1, meta.num_queries, len(meta.class_names) + 1],
            "mask_logits": [1, meta.num_queries, meta.input_size // 4, meta.input_size // 4]}
    found = {}
    for name, shape in want.items():
        hits = [d["name"] for d in details if list(d["shape"]) == shape]
        if len(hits) != 1:
            raise EdgesegError(f"{path}: expected one output of shape {shape} for {name}, found "
                               f"{[(d['name'], list(d['shape'])) for d in details]}")
        found[name] = hits[0]
    return found


def export_tflite(module: torch.nn.Module, example: torch.Tensor, path: Path, precision: str,
                  meta: ModelMetadata, fp32_model: Path | None = None) -> dict:
    """``fp32_model``: an FP32 ``.tflite`` of the same network to cast to FP16 instead of converting
    again (the conversion is the slow part: about a minute at 512 on 2 cores)."""
    if precision not in ("fp32", "fp16"):
        raise EdgesegError(f"TFLite export precision must be fp32 or fp16 (int8: `edgeseg quantize`), got {precision!r}")
    info = {"converter": "litert-torch", "xnnpack_rewrite": True}
    module = prepare_for_xnnpack(module, example)
    if precision == "fp32":
        _convert_fp32(module, example, path)
    elif fp32_model is not None:
        info["fp16"] = weights_to_fp16(Path(fp32_model), path)
        info["from_fp32"] = Path(fp32_model).name
    else:
        fp32 = path.with_name("fp32_intermediate.tflite")
        _convert_fp32(module, example, fp32)
        info["fp16"] = weights_to_fp16(fp32, path)
        fp32.unlink()
    info["xnnpack_partitions"] = xnnpack_partitions(path)
    meta.output_tensors = output_tensors(path, meta)
    return info


TFLITE_METADATA_NAME = "edgeseg"


def embed_tflite_metadata(path: Path, meta: ModelMetadata) -> None:
    """Store ``meta`` as the flatbuffer metadata entry ``edgeseg`` (replacing an earlier one);
    the file is rewritten through a temp file and renamed. Weights that a writer appended after
    the flatbuffer (ai-edge-quantizer does; their positions would move) are moved inside it, as
    the converter stores them; past the flatbuffer's 2 GB limit that is refused."""
    import os

    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    raw = Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    if len(raw) + len(meta.to_json()) >= 2**31 - 2**20:
        raise EdgesegError(f"{path}: {len(raw) / 1e9:.1f} GB, past the flatbuffer limit; cannot embed metadata")
    for b in model.buffers or []:
        if b.offset > 1:  # stored after the flatbuffer at an absolute position
            b.data, b.offset, b.size = np.frombuffer(raw, np.uint8, b.size, b.offset), 0, 0
    entries = [m for m in model.metadata or [] if (m.name.decode() if isinstance(m.name, bytes) else m.name)
               != TFLITE_METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = list(meta.to_json().encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = TFLITE_METADATA_NAME, len(model.buffers) - 1
    model.metadata = [*entries, entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_bytes(builder.Output())
    os.replace(tmp, path)


def read_tflite_metadata(path: Path) -> dict | None:
    """The ``edgeseg`` metadata entry of a ``.tflite`` as a dict (None when it has none)."""
    import json

    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(Path(path).read_bytes(), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == TFLITE_METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None
