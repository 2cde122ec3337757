"""INT8 recipes: one YAML per model and runtime under ``quantize/`` (``--recipe``).

A recipe is a plain dataclass; unknown keys are refused so a typo cannot silently change how a
model is quantized. ``ignore_prototype: true`` keeps the activation x activation products that
measured sensitive (the similarity matmul feeding the prototype argmax and the mask-head
einsums) in float; ``ignored_names`` / ``ignored_patterns`` add graph nodes by name.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgeseg.config import from_dict
from edgeseg.errors import ConfigError
from edgeseg.formats import FORMATS

# INT8 engines per runtime, from the format table (the measured best first)
ENGINES = {name: fmt.int8_engines for name, fmt in FORMATS.items() if fmt.int8_engines}
PRESETS = ("mixed", "performance")
TFLITE_MODES = ("weight_only_int8", "dynamic_int8", "static_int8")
ONNX_QUANT_FORMATS = ("qdq", "qoperator")
ONNX_WEIGHT_TYPES = ("int8", "uint8")
OVERFLOW_FIXES = ("first_layer_only", "enable", "disable")  # nncf.OverflowFix values


@dataclass(frozen=True)
class QuantRecipe:
    format: str = "openvino"
    engine: str = "nncf"
    model: str = ""  # the model config it was tuned for (documentation; not enforced)
    subset: int = 300  # calibration images (train split)
    validation_images: int = 50  # held-out val images for the PQ check / accuracy control
    max_pq_drop: float = 1.0  # PQ points vs FP32 torch on the validation images
    accuracy_control: bool = False  # nncf.quantize_with_accuracy_control (OpenVINO, ONNX via NNCF)
    preset: str = "mixed"  # NNCF: MIXED = symmetric weights, asymmetric activations
    fast_bias_correction: bool = True
    ignore_prototype: bool = True  # similarity matmul before the prototype argmax + mask einsums in float
    ignore_shape_head: bool = True  # the silhouette shape head in float (measured: things PQ collapses in int8)
    ranking_images: int = 20  # accuracy control: images used to rank layers by sensitivity
    ignored_names: list[str] = field(default_factory=list)
    ignored_patterns: list[str] = field(default_factory=list)
    # NNCF: 7-bit weights against int16 saturation on x86 CPUs without VNNI, whose int8 kernels
    # add pairs of uint8 x int8 products in int16. "enable" (every layer) is portable: measured
    # on an AVX2-only CPU, NNCF's own default "first_layer_only" lost 3.6 PQ there (docs/int8.md)
    overflow_fix: str = "enable"
    per_channel: bool = True  # onnxruntime engine
    # onnxruntime engine: the op types given Q/DQ pairs (empty: every type ONNX Runtime can
    # quantize, so int8 tensors flow through Add / Mul / Resize / pooling between the convs)
    onnx_op_types: list[str] = field(default_factory=lambda: ["Conv", "ConvTranspose", "MatMul", "Gemm"])
    # onnxruntime engine: 7-bit weights, for x86 CPUs without VNNI, where ONNX Runtime's u8s8
    # kernels sum pairs of products in int16 with saturation (ONNX Runtime's quantization docs).
    # On by default: full-range weights lost 7.7 PQ on an AVX2-only CPU (tests' 128 px check)
    reduce_range: bool = True
    # onnxruntime engine: Add / Mul nodes get int8 only in these parts of the student (the rest
    # stay float; see onnx_int8._ELEMENTWISE), when onnx_op_types lets them be quantized at all
    elementwise_int8_in: list[str] = field(default_factory=lambda: ["backbone", "pixel_decoder"])
    onnx_quant_format: str = "qdq"  # onnxruntime engine: "qdq" or "qoperator" (QLinear* nodes)
    # onnxruntime engine: weight type against uint8 activations: "int8" (u8s8 kernels, the fast
    # ones with VNNI) or "uint8" (u8u8 kernels, which widen to int16 before multiplying and so
    # cannot saturate on AVX2; benchmarks/int8_isa.py measures both on both CPU kinds)
    onnx_weight_type: str = "int8"
    # litert-torch engine: how activation ranges are calibrated: "histogram" (litert-torch's
    # default, clips outliers to minimise the L2 error) or "minmax" (the full observed range)
    tflite_activation_observer: str = "histogram"
    tflite_mode: str = "weight_only_int8"  # see tflite_int8.py (ai-edge-quantizer) and tflite_pt2e.py (litert-torch)
    notes: str = ""

    def validate(self, where: str = "recipe") -> "QuantRecipe":
        if self.format not in ENGINES:
            raise ConfigError(f"{where}: format must be one of {sorted(ENGINES)}, got {self.format!r}")
        if self.engine not in ENGINES[self.format]:
            raise ConfigError(f"{where}: engine {self.engine!r} not available for {self.format}; choose {ENGINES[self.format]}")
        if self.preset not in PRESETS:
            raise ConfigError(f"{where}: preset must be one of {PRESETS}, got {self.preset!r}")
        if self.tflite_activation_observer not in ("histogram", "minmax"):
            raise ConfigError(f"{where}: tflite_activation_observer must be 'histogram' or 'minmax', "
                              f"got {self.tflite_activation_observer!r}")
        if self.onnx_quant_format not in ONNX_QUANT_FORMATS:
            raise ConfigError(f"{where}: onnx_quant_format must be one of {ONNX_QUANT_FORMATS}, got {self.onnx_quant_format!r}")
        if self.onnx_weight_type not in ONNX_WEIGHT_TYPES:
            raise ConfigError(f"{where}: onnx_weight_type must be one of {ONNX_WEIGHT_TYPES}, got {self.onnx_weight_type!r}")
        if self.overflow_fix not in OVERFLOW_FIXES:
            raise ConfigError(f"{where}: overflow_fix must be one of {OVERFLOW_FIXES}, got {self.overflow_fix!r}")
        if self.tflite_mode not in TFLITE_MODES:
            raise ConfigError(f"{where}: tflite_mode must be one of {TFLITE_MODES}, got {self.tflite_mode!r}")
        if self.engine == "litert-torch" and self.tflite_mode != "static_int8":
            raise ConfigError(f"{where}: engine litert-torch (PT2E) makes static_int8 models only, got tflite_mode {self.tflite_mode!r}")
        if self.max_pq_drop < 0:
            raise ConfigError(f"{where}: max_pq_drop must be >= 0, got {self.max_pq_drop}")
        if self.accuracy_control and self.format == "tflite":
            raise ConfigError(f"{where}: accuracy control (NNCF) is not available for TFLite")
        if self.accuracy_control and self.format == "onnx" and self.engine != "nncf":
            raise ConfigError(f"{where}: accuracy control on ONNX needs engine: nncf")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The measured best engine per runtime (benchmarks/results/int8.json), first in the format table:
# for TFLite the PT2E full-integer model is the only INT8 variant faster than FP32 in LiteRT at equal PQ.
DEFAULT_ENGINE = {name: engines[0] for name, engines in ENGINES.items()}


def default_recipe(fmt: str) -> QuantRecipe:
    """The recipe used without ``--recipe``: the measured best engine for the runtime."""
    if fmt not in ENGINES:
        raise ConfigError(f"unknown INT8 format {fmt!r}; choose one of {sorted(ENGINES)}")
    mode = "static_int8" if DEFAULT_ENGINE[fmt] == "litert-torch" else "weight_only_int8"
    return QuantRecipe(format=fmt, engine=DEFAULT_ENGINE[fmt], tflite_mode=mode).validate()


def load_recipe(path: str | Path) -> QuantRecipe:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: recipe file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    recipe = from_dict(QuantRecipe, raw, str(path))
    return recipe.validate(str(path))
