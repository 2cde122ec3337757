"""Student -> OpenVINO IR (``model.xml`` + ``model.bin``), static input shape.

Route: the ONNX file from ``to_onnx`` through ``openvino.convert_model``. Measured:
converting the torch module directly failed a tracing check on this network, and converting a
``torch.export`` program loses module names and leaves the input dynamic; the ONNX route keeps
the same graph that ONNX Runtime runs and a static ``[1,3,S,S]`` input. FP16 is weight
compression at save time (``compress_to_fp16``), OpenVINO's own mechanism.
"""
from __future__ import annotations

from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.metadata import ModelMetadata


def export_openvino(module, example, xml_path: Path, precision: str, meta: ModelMetadata,
                    fp32_model: Path | None = None) -> dict:
    """Write ``model.xml`` / ``model.bin`` through an intermediate ONNX file (removed after).
    ``fp32_model``: this network's FP32 ``model.xml``, saved again with FP16 weights instead of
    converting again (the same IR; the conversion is the slow part)."""
    import dataclasses

    import openvino as ov

    from edgeseg.export.to_onnx import export_onnx

    if precision not in ("fp32", "fp16"):
        raise EdgesegError(f"OpenVINO export precision must be fp32 or fp16 (int8: `edgeseg quantize`), got {precision!r}")
    info = {"converter": f"openvino.convert_model(onnx) {ov.__version__}", "compress_to_fp16": precision == "fp16"}
    if fp32_model is not None and precision == "fp16":
        model = ov.Core().read_model(str(fp32_model))
        info["from_fp32"] = Path(fp32_model).name
    else:
        onnx_path = xml_path.with_name("intermediate.onnx")
        export_onnx(module, example, onnx_path, "fp32", dataclasses.replace(meta, format="onnx", precision="fp32"))
        try:
            model = onnx_to_openvino(onnx_path, meta.input_size)
        finally:
            onnx_path.unlink(missing_ok=True)
    names = {name for port in model.outputs for name in port.get_names()}
    missing = sorted(set(meta.output_tensors.values()) - names)
    if missing:
        raise EdgesegError(f"OpenVINO conversion lost the output name(s) {missing}; the IR has {sorted(names)}")
    embed_openvino_metadata(model, meta)
    ov.save_model(model, str(xml_path), compress_to_fp16=precision == "fp16")
    return info


def onnx_to_openvino(onnx_path: Path, size: int):
    """An ONNX file as an OpenVINO model with the static input ``[1, 3, S, S]``."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    model.reshape({model.inputs[0]: ov.PartialShape([1, 3, size, size])})
    return model


def embed_openvino_metadata(model, meta: ModelMetadata) -> None:
    """``rt_info``: ``edgeseg/<key>`` (the whole contract) and ``model_info/<key>`` (model_api's schema)."""
    from edgeseg.export.metadata import model_api_info

    for key, value in meta.flat_strings().items():
        model.set_rt_info(value, ["edgeseg", key.removeprefix("edgeseg.")])
    for key, value in model_api_info(meta).items():
        model.set_rt_info(value, ["model_info", key])
