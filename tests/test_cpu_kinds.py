"""The two premises the CPU-kind INT8 benchmarks stand on: OpenVINO's CPU plugin honours
``ONEDNN_MAX_CPU_ISA`` (benchmarks/openvino_isa.py times AVX2 kernels on a newer CPU), and
``qemu-x86_64 -cpu Haswell`` hides AVX-512 and VNNI from the code it runs
(benchmarks/int8_isa.py reads AVX2 numerics that way)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from edgeseg.backends.cpu import cpu_flags

_OV_KERNELS = """
import json, numpy as np, openvino as ov
from openvino import opset13 as ops
x = ops.parameter([1, 16, 32, 32], np.float32)
w = ops.constant(np.random.default_rng(0).standard_normal((32, 16, 3, 3)).astype(np.float32))
conv = ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])
compiled = ov.Core().compile_model(ov.Model([conv], [x]), "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32"})
request = compiled.create_infer_request()
request.infer({0: np.zeros((1, 16, 32, 32), np.float32)})
print(json.dumps([i.exec_type for i in request.get_profiling_info() if i.node_type == "Convolution"]))
"""


def test_openvino_kernels_follow_the_onednn_isa_cap():
    pytest.importorskip("openvino")
    if "avx512f" not in cpu_flags():
        pytest.skip("needs an AVX-512 CPU to show a cap below it")

    def kernels(env: dict) -> list[str]:
        out = subprocess.run([sys.executable, "-c", _OV_KERNELS], env={**os.environ, **env}, capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    native, capped = kernels({}), kernels({"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert native and any("avx512" in k for k in native), native
    assert capped and all("avx2" in k and "avx512" not in k for k in capped), capped


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-user (apt-get install qemu-user)")
def test_emulated_haswell_hides_avx512_and_vnni():
    code = ("import json, numpy as np\n"
            "try:\n    from numpy._core._multiarray_umath import __cpu_features__ as f\n"
            "except ImportError:\n    from numpy.core._multiarray_umath import __cpu_features__ as f\n"
            "print(json.dumps({k: bool(f.get(k)) for k in ('AVX2', 'AVX512F', 'AVX512_VNNI')}))")
    out = subprocess.run(["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"AVX2": True, "AVX512F": False, "AVX512_VNNI": False}
