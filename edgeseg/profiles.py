"""Device profiles: the format, precision, threads, input size and provider / delegate a device
class runs best with, as plain dataclasses (documented in ``runtimes/README.md``).

``bench``, ``export``, ``tune`` and ``predict`` take ``--profile NAME`` (or a YAML file with the
same fields) and use it for their defaults; any flag given explicitly still wins.

The presets are starting points chosen from what each runtime supports on that hardware, not
measurements: latency comes from ``edgeseg bench --profile NAME`` run *on the device*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgeseg.config import from_dict
from edgeseg.errors import ConfigError, EdgesegError
from edgeseg.formats import EXPORT_FORMATS, check_combo


@dataclass(frozen=True)
class DeviceProfile:
    """What to export and how to run it on one class of device."""

    name: str
    description: str
    format: str  # the preferred runtime: onnx | openvino | tflite
    precision: str  # the preferred precision: fp32 | fp16 | int8
    threads: int  # CPU threads for the runtime (0 = the runtime's default)
    imgsz: int  # network input size S (multiple of 32)
    # (format, precision) pairs worth measuring on this device, preferred first; bench and
    # tune search these
    candidates: tuple[tuple[str, str], ...] = ()
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers, in order
    device: str = "cpu"  # OpenVINO device (CPU, GPU, NPU, AUTO)
    hint: str = "LATENCY"  # OpenVINO performance hint
    delegate: str | None = None  # LiteRT external delegate library (.so)
    sizes: tuple[int, ...] = field(default=(256, 384, 512))  # input sizes tune may pick

    def validate(self) -> "DeviceProfile":
        if self.format not in EXPORT_FORMATS:
            raise ConfigError(f"profile {self.name}: format {self.format!r} is not one of {EXPORT_FORMATS}")
        for fmt, prec in ((self.format, self.precision), *self.candidates):
            try:
                check_combo(fmt, prec)
            except EdgesegError as exc:
                raise ConfigError(f"profile {self.name}: ({fmt}, {prec}): {exc}") from exc
        for s in (self.imgsz, *self.sizes):
            if int(s) % 32 or int(s) < 64:
                raise ConfigError(f"profile {self.name}: input size {s} must be a multiple of 32 and >= 64")
        if self.threads < 0:
            raise ConfigError(f"profile {self.name}: threads must be >= 0, got {self.threads}")
        return self

    def load_kwargs(self) -> dict:
        """Keyword arguments for :func:`edgeseg.backends.load` on this device."""
        return {"threads": self.threads or None, "providers": self.providers, "device": self.device,
                "hint": self.hint, "delegate": self.delegate}


PROFILES: dict[str, DeviceProfile] = {p.name: p.validate() for p in (
    DeviceProfile(
        name="rpi5",
        description="Raspberry Pi 5 (4x Cortex-A76, no NPU): LiteRT + XNNPACK on 4 threads; FP16 weights halve "
                    "the download and XNNPACK runs them on the A76's FP16 units; ONNX Runtime as the fallback",
        format="tflite", precision="fp16", threads=4, imgsz=384,
        candidates=(("tflite", "fp16"), ("tflite", "fp32"), ("tflite", "int8"), ("onnx", "fp32"), ("onnx", "int8")),
        sizes=(256, 320, 384, 512)),
    DeviceProfile(
        name="jetson-orin-nano",
        description="Jetson Orin Nano (Ampere GPU, 6x Cortex-A78AE): ONNX Runtime with TensorRT then CUDA "
                    "(NVIDIA's onnxruntime-gpu wheel for JetPack); FP16 is the GPU's native precision",
        format="onnx", precision="fp16", threads=6, imgsz=512,
        candidates=(("onnx", "fp16"), ("onnx", "fp32"), ("onnx", "int8")),
        providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
        sizes=(384, 512, 640)),
    DeviceProfile(
        name="android",
        description="Android phone (big.LITTLE ARM): LiteRT in the app on 4 big cores with XNNPACK; the GPU or "
                    "NNAPI delegate is the app's choice (pass its library as delegate to measure it)",
        format="tflite", precision="fp16", threads=4, imgsz=384,
        candidates=(("tflite", "fp16"), ("tflite", "fp32"), ("tflite", "int8")),
        sizes=(256, 320, 384, 512)),
    DeviceProfile(
        name="intel-cpu",
        description="x86 CPU (laptop / NUC / server): OpenVINO, LATENCY hint, NNCF INT8 (1.8-1.9x over FP32 "
                    "measured here); ONNX Runtime as the second choice",
        format="openvino", precision="int8", threads=0, imgsz=512,
        candidates=(("openvino", "int8"), ("openvino", "fp16"), ("openvino", "fp32"), ("onnx", "fp32"),
                    ("onnx", "int8")),
        sizes=(256, 384, 512, 640)),
)}


def get_profile(name_or_path: str | Path) -> DeviceProfile:
    """A preset by name (``rpi5``, ``jetson-orin-nano``, ``android``, ``intel-cpu``) or a YAML file
    holding the same fields."""
    if str(name_or_path) in PROFILES:
        return PROFILES[str(name_or_path)]
    path = Path(name_or_path)
    if not path.suffix:
        raise ConfigError(f"unknown device profile {str(name_or_path)!r}; presets: {sorted(PROFILES)} "
                          f"(or pass a YAML file with DeviceProfile's fields)")
    if not path.is_file():
        raise ConfigError(f"device profile file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of DeviceProfile fields")
    raw.setdefault("name", path.stem)
    raw.setdefault("description", f"custom profile {path}")
    return from_dict(DeviceProfile, raw, str(path)).validate()
