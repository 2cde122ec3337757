"""Student -> OpenVINO IR (``model.xml`` + ``model.bin``), static input shape.

Route: the ONNX file from ``to_onnx`` through ``openvino.convert_model``. TOOLCHAIN.md records
that converting the torch module directly failed a tracing check on this network, and converting
a ``torch.export`` program loses module names and leaves the input dynamic; the ONNX route keeps
the same graph that ONNX Runtime runs and a static ``[1,3,S,S]`` input. FP16 is weight
compression at save time (``compress_to_fp16``), OpenVINO's own mechanism.
"""
from __future__ import annotations

from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata


def export_openvino(onnx_path: Path, xml_path: Path, precision: str, meta: ModelMetadata) -> dict:
    import openvino as ov

    if precision not in ("fp32", "fp16"):
        raise EdgesegError(f"OpenVINO export precision must be fp32 or fp16 (int8: `edgeseg quantize`), got {precision!r}")
    model = ov.convert_model(str(onnx_path))
    size = meta.input_size
    model.reshape({model.inputs[0]: ov.PartialShape([1, 3, size, size])})
    embed_openvino_metadata(model, meta)
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")
    return {"converter": f"openvino.convert_model(onnx) {ov.__version__}", "compress_to_fp16": precision == "fp16"}


def embed_openvino_metadata(model, meta: ModelMetadata) -> None:
    for key, value in meta.flat_strings().items():
        model.set_rt_info(value, ["edgeseg", key.removeprefix("edgeseg.")])
