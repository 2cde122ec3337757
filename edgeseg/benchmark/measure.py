"""Measurements the benchmark is made of: interleaved latency, peak RSS in a fresh process, and
this CPU's measured single-core FP32 matmul peak (the yardstick for compute efficiency)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Callable, Mapping

import numpy as np

# the frame a benchmark row's headline ``fps`` / ``frame_ms`` is on: a 1280x720 camera frame
HEADLINE_FRAME = "1280x720"


def time_interleaved(steps: Mapping[str, Callable[[], dict[str, float]]], runs: int, warmup: int = 5,
                     on_round: Callable[[int], None] | None = None) -> dict[str, dict[str, list[float]]]:
    """Call every step once per round, ``warmup + runs`` rounds, and keep the last ``runs`` timings.

    Interleaving (A B C, A B C, ...) instead of A A A, B B B spreads slow drifts of a shared
    machine (frequency, neighbours) over all rows alike, so their ratios hold. Each step returns
    its own split timings in seconds (e.g. ``{"forward": .., "e2e": ..}``)."""
    times: dict[str, dict[str, list[float]]] = {k: {} for k in steps}
    for i in range(warmup + runs):
        for name, step in steps.items():
            split = step()
            if i >= warmup:
                for key, value in split.items():
                    times[name].setdefault(key, []).append(value)
        if on_round:
            on_round(i)
    return times


def summarize_ms(samples: list[float]) -> dict[str, float]:
    """Median and p90 in milliseconds, with the sample count."""
    arr = 1000.0 * np.asarray(samples, dtype=np.float64)
    return {"median_ms": round(float(np.median(arr)), 2), "p90_ms": round(float(np.percentile(arr, 90)), 2),
            "runs": int(arr.size)}


def peak_rss_mb(model: str, threads: int | None, imgsz: int | None, runs: int = 3, timeout: float = 600) -> float | None:
    """Peak resident memory (MB) of a fresh Python process that loads ``model`` through
    ``edgeseg.backends.load`` and predicts ``runs`` images: what a device process needs for this
    model and runtime, interpreter and runtime libraries included. ``None`` if it failed."""
    cmd = [sys.executable, "-m", "edgeseg.benchmark.memory", str(model), "--runs", str(runs)]
    if threads:
        cmd += ["--threads", str(threads)]
    if imgsz:
        cmd += ["--imgsz", str(imgsz)]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return float(json.loads(line)["peak_rss_mb"])
    return None


_SGEMM = """
import json, time, numpy as np
n = {n}
a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
a @ b
best = 0.0
for _ in range({repeats}):
    t = time.perf_counter(); a @ b; dt = time.perf_counter() - t
    best = max(best, 2 * n ** 3 / dt / 1e9)
print(json.dumps({{"gflops": best}}))
"""


def sgemm_peak_gflops_per_core(n: int = 1024, repeats: int = 20) -> float | None:
    """Best single-thread FP32 GEMM rate (GFLOP/s) of numpy's BLAS on this CPU, measured in a child
    process pinned to one BLAS thread. Measured rather than computed from the spec sheet:
    FLOPs/cycle differ by micro-architecture (e.g. AVX-512 is double-pumped on Zen 4) and the
    clock under load is not the nominal one."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([sys.executable, "-c", _SGEMM.format(n=n, repeats=repeats)], capture_output=True,
                              text=True, timeout=300, env=env)
        return round(float(json.loads(proc.stdout.strip().splitlines()[-1])["gflops"]), 1)
    except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
        return None


def machine_description() -> dict:
    """CPU model, core count and ISA flags relevant to inference kernels."""
    import platform

    from edgeseg.backends.cpu import cpu_flags

    model, flags = platform.processor() or platform.machine(), cpu_flags()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                       "asimd", "asimdhp", "asimddp") if f in flags]
    return {"cpu": model, "arch": platform.machine(), "cores": os.cpu_count(), "isa": isa,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
