"""OpenVINO FP32 against INT8 with the CPU plugin's kernels capped at an older instruction set:
INT8 speed-ups for AVX2-only, AVX2 + VNNI, AVX-512 without VNNI and AVX-512 VNNI CPUs, timed
natively on one machine.

    python benchmarks/openvino_isa.py --fp32 runs/int8_isa/openvino_fp32/model.xml \\
        --int8 runs/int8_isa/openvino_int8/model.xml [--threads 1 2] [--runs 40]

OpenVINO's CPU plugin builds its convolution and matmul kernels with oneDNN, which honours
``ONEDNN_MAX_CPU_ISA``: with ``AVX2`` it picks exactly the kernels an AVX2-only CPU gets
(``brgconv_avx2_*``, ``jit_avx2_*_I8``, checked in the per-layer counters below). Each cap runs
in its own process (oneDNN reads the variable once); within it, FP32 and INT8 are timed
interleaved (forward only, median of ``--runs`` after ``--warmup``), so each speed-up is a
side-by-side ratio. What a cap does not change: this machine's clock, caches and memory, and
the float matmuls OpenVINO hands to MLAS (``gemm_mlas_f32``), which pick their own AVX-512
path; those are the prototype-similarity and mask products, float in both models. Absolute
times are therefore this machine's; the FP32 -> INT8 ratio is the figure that carries over.
Also recorded per cap: the INT8 model's time by kernel (``exec_type``) from the per-layer
counters, i.e. where an INT8 forward spends its time on that instruction set.
Writes benchmarks/results/openvino_isa.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# cap -> the CPU kind it stands for
CAPS = {
    "AVX2": "AVX2 + FMA, no VNNI (AMD Zen 2/3, Intel Haswell-Skylake client)",
    "AVX2_VNNI": "AVX2 + AVX-VNNI (Intel Alder Lake and later client)",
    "AVX512_CORE": "AVX-512 without VNNI (Intel Skylake-SP)",
    "AVX512_CORE_VNNI": "AVX-512 + VNNI (Intel Cascade Lake and later, AMD Zen 4)",
}
# /proc/cpuinfo flags a cap needs: a cap above the host's own instructions silently falls back
# to what the host has, so such a row would be a copy of a lower one and is skipped
NEEDS = {"AVX2": {"avx2"}, "AVX2_VNNI": {"avx2", "avx_vnni"}, "AVX512_CORE": {"avx512f"},
         "AVX512_CORE_VNNI": {"avx512f", "avx512_vnni"}}


def _profile(compiled, x) -> dict[str, float]:
    """ms by (layer type, exec_type) of one forward, from the plugin's per-layer counters."""
    request = compiled.create_infer_request()
    request.infer({0: x})
    by_kernel: dict[str, float] = defaultdict(float)
    for info in request.get_profiling_info():
        if info.real_time.total_seconds() > 0:
            by_kernel[f"{info.node_type}: {info.exec_type}"] += 1e3 * info.real_time.total_seconds()
    return dict(sorted(by_kernel.items(), key=lambda kv: -kv[1]))


def worker(fp32: str, int8: str, threads: list[int], runs: int, warmup: int, out: str) -> None:
    import numpy as np
    import openvino as ov

    from edgeseg.backends.openvino_backend import compile_config
    from edgeseg.benchmark.measure import summarize_ms, time_interleaved

    core = ov.Core()
    models = {"fp32": core.read_model(fp32), "int8": core.read_model(int8)}
    shape = list(models["fp32"].inputs[0].get_partial_shape().to_shape())
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    doc: dict = {"timing": {}, "profile": {}}
    for t in threads:
        compiled = {k: core.compile_model(m, "CPU", compile_config("CPU", "LATENCY", t, "f32")) for k, m in models.items()}
        requests = {k: c.create_infer_request() for k, c in compiled.items()}

        def step(request):
            def run():
                t0 = time.perf_counter()
                request.infer({0: x})
                return {"forward": time.perf_counter() - t0}
            return run

        times = time_interleaved({k: step(r) for k, r in requests.items()}, runs=runs, warmup=warmup)
        doc["timing"][str(t)] = {k: summarize_ms(v["forward"]) for k, v in times.items()}
    for k, m in models.items():
        config = {**compile_config("CPU", "LATENCY", 1, "f32"), "PERF_COUNT": True}
        doc["profile"][k] = _profile(core.compile_model(m, "CPU", config), x)
    tmp = out + ".tmp"
    Path(tmp).write_text(json.dumps(doc))
    os.replace(tmp, out)


def _families(profile: dict[str, float]) -> dict[str, float]:
    """Kernel time folded into int8 kernels, float convolution / matmul kernels, and the rest."""
    fam: dict[str, float] = defaultdict(float)
    for key, ms in profile.items():
        layer, kernel = key.split(": ", 1)
        if kernel.endswith(("_I8", "_U8", "_i8", "_u8")) or "int8" in kernel.lower():
            fam["int8 kernels"] += ms
        elif layer in ("Convolution", "GroupConvolution", "MatMul", "FullyConnected", "Deconvolution"):
            fam["float conv / matmul"] += ms
        elif layer in ("FakeQuantize", "Reorder", "Convert") or "quantize" in layer.lower():
            fam["quantize / reorder"] += ms
        else:
            fam["other"] += ms
    return {k: round(v, 2) for k, v in sorted(fam.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", default="runs/int8_isa/openvino_fp32/model.xml")
    ap.add_argument("--int8", default="runs/int8_isa/openvino_int8/model.xml")
    ap.add_argument("--caps", nargs="+", default=list(CAPS), choices=list(CAPS))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--work", default="runs/openvino_isa")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "openvino_isa.json"))
    ap.add_argument("--record-only", action="store_true", help="re-read the per-cap results in --work, no timing")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.fp32, args.int8, args.threads, args.runs, args.warmup, args.out)
    for path in (args.fp32, args.int8):
        if not Path(path).is_file():
            raise SystemExit(f"{path}: not found (python benchmarks/int8_isa.py builds both IRs)")

    import openvino as ov

    from edgeseg.benchmark.measure import machine_description
    from edgeseg.export.metadata import read_metadata

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], {}
    from edgeseg.backends.cpu import cpu_flags

    flags = cpu_flags()
    for cap in args.caps:
        if not NEEDS[cap] <= flags:
            skipped[cap] = f"this CPU lacks {sorted(NEEDS[cap] - flags)}"
            continue
        out = work / f"{cap}.json"
        if not args.record_only:
            cmd = [sys.executable, __file__, "--worker", "--fp32", args.fp32, "--int8", args.int8, "--threads",
                   *map(str, args.threads), "--runs", str(args.runs), "--warmup", str(args.warmup), "--out", str(out)]
            proc = subprocess.run(cmd, env={**os.environ, "ONEDNN_MAX_CPU_ISA": cap}, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{cap}: worker failed:\n{proc.stderr[-3000:]}")
        res = json.loads(out.read_text())
        for t, cell in res["timing"].items():
            row = {"isa_cap": cap, "cpu_kind": CAPS[cap], "threads": int(t), "fp32_ms": cell["fp32"]["median_ms"],
                   "int8_ms": cell["int8"]["median_ms"], "fp32_p90_ms": cell["fp32"]["p90_ms"],
                   "int8_p90_ms": cell["int8"]["p90_ms"],
                   "speedup": round(cell["fp32"]["median_ms"] / cell["int8"]["median_ms"], 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows[-1]["int8_kernels_ms_1t"] = res["profile"]["int8"]
        rows[-1]["fp32_kernels_ms_1t"] = res["profile"]["fp32"]
    meta = read_metadata(Path(args.int8))
    doc = {"command": "python benchmarks/openvino_isa.py " + " ".join(a for a in sys.argv[1:] if a != "--record-only"), "openvino": ov.__version__,
           "model": meta.model_name, "imgsz": meta.input_size,
           "runs": args.runs, "warmup": args.warmup, "machine": machine_description(), "rows": rows,
           "skipped_caps": skipped}
    from edgeseg.data.image_io import atomic_write_bytes

    atomic_write_bytes(Path(args.json), json.dumps(doc, indent=2).encode())
    atomic_write_bytes(Path(args.json).with_suffix(".md"), _markdown(doc).encode())
    print(_markdown(doc))


def _markdown(doc: dict) -> str:
    lines = ["| oneDNN ISA cap | stands for | threads | FP32 ms | INT8 ms | INT8 speed-up |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['isa_cap']} | {r['cpu_kind']} | {r['threads']} | {r['fp32_ms']} | {r['int8_ms']} | x{r['speedup']} |")
    lines += ["", "Time by kernel family, 1 thread, from the per-layer counters (ms):", "",
              "| oneDNN ISA cap | model | int8 kernels | float conv / matmul | quantize / reorder | other |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        for model in ("fp32", "int8"):
            key = f"{model}_kernels_ms_1t"
            if key in r:
                f = _families(r[key])
                lines.append(f"| {r['isa_cap']} | {model} | {f.get('int8 kernels', 0)} | {f.get('float conv / matmul', 0)} | "
                             f"{f.get('quantize / reorder', 0)} | {f.get('other', 0)} |")
    m = doc["machine"]
    lines += ["", f"{doc['model']} at {doc['imgsz']}, forward only, median of {doc['runs']} after {doc['warmup']} warm-up, "
              f"FP32 and INT8 interleaved in one process per cap; OpenVINO {doc['openvino']}; host {m['cpu']} "
              f"({m['arch']}, {m['cores']} cores, {' '.join(m['isa'])}). Command: `{doc['command']}`"]
    if doc.get("skipped_caps"):
        lines += ["", "Not measured: " + "; ".join(f"{cap} ({why})" for cap, why in doc["skipped_caps"].items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
