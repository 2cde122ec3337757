"""Where a student's milliseconds go: per-op time in OpenVINO and ONNX Runtime, grouped by block.

The groups are the student's parts (backbone, pixel decoder, transformer decoder, heads). An
ONNX node is put in a group by the torch module scope the exporter stores with it
(``pkg.torch.onnx.name_scopes`` in the node's metadata); the OpenVINO IR is converted from the
same ONNX file, so its layers keep the ONNX node names, and an executed (fused) OpenVINO node
is placed by the original layers it fused (``originalLayersNames``). What cannot be placed
(layout reorders OpenVINO inserts, constants) is reported as its own group, never spread.

Timing uses the runtimes' own counters: ONNX Runtime's profiler (per-node kernel time inside
each ``model_run``) and OpenVINO's per-layer ``PERF_COUNT`` counters (``real_time``), summed
per group and averaged over the timed runs after warm-up. GMACs per group come from torch's
``FlopCounterMode`` on the same model, so every group's time sits beside its work.
"""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.export.scopes import GROUPS, group_of_scope, onnx_node_groups  # noqa: F401 (re-exported)

UNPLACED = "unplaced"  # time of nodes no module scope could be found for (reorders, constants)


def _lookup(groups: dict[str, str], name: str) -> str:
    # fused nodes keep the first node's name before a "/" (node_MatMul_12/MatMulAddFusion)
    for key in (name, name.removesuffix("_nchwc"), name.split("/")[0]):
        if key in groups:
            return groups[key]
    return UNPLACED


def gmacs_by_group(model, image_size: int) -> dict[str, float]:
    """GMACs of each group for one ``image_size`` x ``image_size`` image (torch's FlopCounterMode:
    convolutions, matmuls, einsums; elementwise ops are not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=None)
    # its module tracker fails under no_grad (as in modeling/complexity.py): freeze instead
    for p in model.parameters():
        p.requires_grad_(False)
    with counter:
        model(torch.zeros(1, 3, image_size, image_size))
    # every module's count includes its children's: take each group's top module, and the heads
    # (inside the decoder) as the outermost head modules, subtracted from the decoder
    totals = {name.split(".", 1)[1]: sum(v.values()) / 2e9 for name, v in counter.get_flop_counts().items()
              if "." in name}  # "PEM.backbone" -> "backbone"; "Global" and the root left out
    heads = [n for n in totals if group_of_scope("model." + n) == "heads"
             and not any(group_of_scope("model." + o) == "heads" and n.startswith(o + ".") for o in totals)]
    head_macs = sum(totals[n] for n in heads)
    decoder_heads = sum(totals[n] for n in heads if n.startswith("decoder."))
    macs = {"backbone": totals.get("backbone", 0.0), "pixel_decoder": totals.get("pixel_decoder", 0.0),
            "transformer_decoder": totals.get("decoder", 0.0) - decoder_heads, "heads": head_macs}
    return {g: round(v, 3) for g, v in macs.items()}


def _summary(per_run: list[dict[str, float]], wall_ms: list[float],
             by_op: dict[tuple[str, str], float] | None = None) -> dict[str, Any]:
    order = (*GROUPS, UNPLACED)
    groups = sorted({g for run in per_run for g in run}, key=lambda g: order.index(g) if g in order else len(order))
    ms = {g: round(statistics.median(run.get(g, 0.0) for run in per_run), 3) for g in groups}
    total = sum(ms.values())
    # inside each group, by the runtime's op type (mean ms per run), largest first
    ops: dict[str, dict[str, float]] = {}
    for (group, op), v in sorted((by_op or {}).items(), key=lambda kv: -kv[1]):
        ops.setdefault(group, {})[op] = round(v / max(len(per_run), 1), 3)
    return {"groups_ms": ms, "groups_pct": {g: round(100 * v / total, 1) if total else 0.0 for g, v in ms.items()},
            "counted_ms": round(total, 3), "wall_ms": round(statistics.median(wall_ms), 3), "runs": len(per_run),
            "ops_ms": ops, "unplaced_by_op_ms": ops.get(UNPLACED, {})}


def profile_onnxruntime(onnx_path: str | Path, groups: dict[str, str], threads: int, runs: int = 40,
                        warmup: int = 5) -> dict[str, Any]:
    """Per-group kernel time of ONNX Runtime (CPU) from its profiler, median over ``runs``."""
    import onnxruntime as ort

    from edgeseg.backends.onnxruntime_backend import session_options

    opts = session_options(threads)  # the adapter's own settings, plus the profiler
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        x = np.random.default_rng(0).standard_normal([int(d) for d in inp.shape]).astype(np.float32)
        for _ in range(warmup + runs):
            sess.run(None, {inp.name: x})
        trace = json.loads(Path(sess.end_profiling()).read_text())
    # each timed run is a "model_run" window; a node's kernel events inside it are that run's
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run")[warmup:]
    per_run: list[dict[str, float]] = [{} for _ in windows]
    by_op: dict[tuple[str, str], float] = {}
    starts = [w[0] for w in windows]
    for e in trace:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        i = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if i < 0 or e["ts"] > windows[i][1]:
            continue
        group = _lookup(groups, e["name"][: -len("_kernel_time")])
        per_run[i][group] = per_run[i].get(group, 0.0) + e["dur"] / 1000
        key = (group, e.get("args", {}).get("op_name", "?"))
        by_op[key] = by_op.get(key, 0.0) + e["dur"] / 1000
    return _summary(per_run, [(b - a) / 1000 for a, b in windows], by_op)


def profile_openvino(xml_path: str | Path, groups: dict[str, str], threads: int, runs: int = 40,
                     warmup: int = 5) -> dict[str, Any]:
    """Per-group time of OpenVINO's CPU plugin from its per-layer counters, median over ``runs``
    (f32 inference precision and the latency hint, as the OpenVINO adapter runs it)."""
    import time

    import openvino as ov

    core = ov.Core()
    from edgeseg.backends.openvino_backend import compile_config

    # the adapter's own defaults (latency hint, f32), plus the per-layer counters
    config = {**compile_config("CPU", "LATENCY", threads, "f32"), "PERF_COUNT": True}
    compiled = core.compile_model(core.read_model(str(xml_path)), "CPU", config)
    # executed node -> group, by the original layers it fused (the first that has a group)
    placed: dict[str, str] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        original = str(info["originalLayersNames"].value) if "originalLayersNames" in info else ""
        for name in [n.strip() for n in original.split(",") if n.strip()] or [op.get_friendly_name()]:
            group = _lookup(groups, name)  # IR names keep the ONNX node's, plus "/WithoutBiases" etc.
            if group != UNPLACED:
                placed[op.get_friendly_name()] = group
                break
    request = compiled.create_infer_request()
    shape = [int(d) for d in compiled.input(0).get_shape()]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(warmup):
        request.infer({0: x})
    per_run, wall = [], []
    by_op: dict[tuple[str, str], float] = {}
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer({0: x})
        wall.append((time.perf_counter() - t0) * 1000)
        run: dict[str, float] = {}
        for p in request.get_profiling_info():
            if p.status != ov.ProfilingInfo.Status.EXECUTED:
                continue
            group = placed.get(p.node_name, UNPLACED)
            ms = p.real_time.total_seconds() * 1000
            run[group] = run.get(group, 0.0) + ms
            by_op[group, p.node_type] = by_op.get((group, p.node_type), 0.0) + ms
        per_run.append(run)
    return _summary(per_run, wall, by_op)
