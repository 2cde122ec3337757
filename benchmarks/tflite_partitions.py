"""LiteRT: where XNNPACK splits the student's .tflite, what the rewrite changes, and the time.

    python benchmarks/tflite_partitions.py --int8 INT8_DIR/model.tflite ... [--peer PEER.tflite ...]

For the student (default: the shipped one) at ``--imgsz``:

- **partition map** (edgeseg/export/tflite_partitions.py) of the FP32 file converted as trained
  (argmax + gather selection, BatchNorm after the transposed convs, position tables computed in
  the graph) and of edgeseg's exports, which go through edgeseg/export/xnnpack.py: FP32
  (``edgeseg export``, parity-checked here) and INT8 (``--int8``, an ``edgeseg quantize`` output);
- **time per part**: LiteRT has no per-op profiler in its Python wheel, so the parts are timed as
  prefixes of the rewritten FP32 graph (backbone; backbone + pixel decoder; the whole model):
  each part is the difference of two medians; with ``--int8-parts N`` the same prefixes are also
  quantized by the TFLite INT8 recipe (``--recipe``, calibrated on N train images: the kernels and
  so the times do not depend on how good the ranges are) and timed beside the first ``--int8``
  file, so INT8 against FP32 is read per part (where full integer pays on this CPU, where not);
- **forward time** of every file, of each ``--also`` (another student's edgeseg exports, e.g. a
  faster candidate's, named by their run and export folders), and of each ``--peer`` (.tflite files other users ship, e.g.
  Ultralytics' YOLOv8n-seg at 640 from benchmarks/peer_tflite.py) at its own input size, interleaved round robin in one process,
  1 and 2 threads, random inputs of each model's input dtype, median of ``--runs`` after
  ``--warmup``, LiteRT's default CPU setup (XNNPACK), as the LiteRT adapter runs it.

Converted files are kept under ``--work``, in a folder named by the checkpoint's content and the
input size (the INT8 prefixes also by the recipe file's), so a second run only times.
Writes benchmarks/results/tflite_partitions.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from edgeseg.assets import SHIPPED_MODEL, resolve_weights  # noqa: E402
from edgeseg.benchmark.measure import machine_description, summarize_ms, time_interleaved  # noqa: E402
from edgeseg.benchmark.report import write_record  # noqa: E402
from edgeseg.checkpoint import file_sha256  # noqa: E402
from edgeseg.export.tflite_partitions import partition_map  # noqa: E402


class _Backbone(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(self.model.backbone(x))


class _PixelDecoder(_Backbone):
    def forward(self, x):
        levels, mask_features = self.model.pixel_decoder(self.model.backbone(x))
        return (*levels, mask_features)


def _convert(module: nn.Module, example: torch.Tensor, path: Path) -> Path:
    import litert_torch

    if not path.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            litert_torch.convert(module.eval(), (example,)).export(str(path))
    return path


def _int8_prefixes(model: nn.Module, ckpt: dict, args, work: Path) -> dict[str, Path]:
    """The backbone and backbone + pixel-decoder prefixes as full-integer files, quantized the
    way ``edgeseg quantize`` quantizes the whole student (same engine, recipe switches, rewrite)."""
    from edgeseg.inference.preprocess import normalisation_of
    from edgeseg.quantization.calibration import load_quant_data
    from edgeseg.quantization.recipe import load_recipe
    from edgeseg.quantization.tflite_pt2e import quantize_tflite_pt2e

    if not args.int8:
        raise SystemExit("--int8-parts needs an --int8 file: the parts are read against the whole INT8 model")
    recipe = load_recipe(args.recipe)
    if recipe.format != "tflite" or recipe.tflite_mode != "static_int8":
        raise SystemExit(f"{args.recipe}: --int8-parts needs a TFLite static_int8 recipe "
                         f"(got format {recipe.format!r}, tflite_mode {recipe.tflite_mode!r})")
    mean, std = normalisation_of(ckpt["model_config"])  # what edgeseg quantize calibrates with
    data = load_quant_data(args.data, args.imgsz, mean, std,
                           subset=args.int8_parts, validation_images=recipe.validation_images)
    out = {}
    for name, stem, wrap in (("backbone", "backbone", _Backbone), ("backbone + pixel decoder", "pixel", _PixelDecoder)):
        path = work / f"int8_part_{stem}_{args.int8_parts}_{file_sha256(args.recipe, 8)}.tflite"  # per recipe file
        if not path.exists():
            quantize_tflite_pt2e(wrap(model), path, data, recipe)
        out[name] = path
    return out


def _interpreter(path: Path, threads: int):
    from ai_edge_litert import interpreter

    it = interpreter.Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.issubdtype(inp["dtype"], np.integer):
        info = np.iinfo(inp["dtype"])
        x = rng.integers(info.min, info.max + 1, size=inp["shape"]).astype(inp["dtype"])
    else:
        x = rng.standard_normal(inp["shape"]).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    return it, inp


def _step(it):
    def run() -> dict[str, float]:
        t = time.perf_counter()
        it.invoke()
        return {"forward": time.perf_counter() - t}

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=SHIPPED_MODEL)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--data", default="data/synth", help="data for the FP32 export's parity check")
    ap.add_argument("--fp32", help="an edgeseg FP32 .tflite export of --weights (default: export it here)")
    ap.add_argument("--int8", nargs="*", default=[], metavar="FILE",
                    help="edgeseg INT8 .tflite files (edgeseg quantize --format tflite) of --weights, each "
                         "named by its folder; the PQ check and kept-float scope come from its quantization.json")
    ap.add_argument("--peer", nargs="*", default=[], metavar="FILE",
                    help="other .tflite files to time beside the student, each named by its file name")
    ap.add_argument("--also", nargs="*", default=[], metavar="FILE",
                    help="edgeseg .tflite exports of other students (e.g. a faster candidate's FP32 and INT8) "
                         "to time beside the student, each named by its run and export folders")
    ap.add_argument("--int8-parts", type=int, default=0, metavar="N",
                    help="also quantize the prefixes (backbone; backbone + pixel decoder) with --recipe on N train "
                         "images and time INT8 against FP32 per part (needs --int8; 0 = off)")
    ap.add_argument("--recipe", default=str(ROOT / "quantize" / "pem_lite0_512_tflite.yaml"),
                    help="TFLite INT8 recipe for --int8-parts")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", default="runs/tflite_partitions")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "tflite_partitions.json"))
    args = ap.parse_args()

    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.export import export
    from edgeseg.export.xnnpack import prepare_for_xnnpack
    from edgeseg.modeling.build import model_from_checkpoint
    from edgeseg.modeling.pem import ExportWrapper

    weights = resolve_weights(args.weights)
    # the converted files below are reused when present: keyed by the checkpoint's content and the size
    work = Path(args.work) / f"{Path(weights).stem}-{file_sha256(weights, 8)}-{args.imgsz}"
    work.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint(weights)
    wrapper = ExportWrapper(model_from_checkpoint(ckpt, str(weights), image_size=args.imgsz)).eval()
    example = torch.zeros(1, 3, args.imgsz, args.imgsz)
    rewritten = prepare_for_xnnpack(wrapper, example)

    files: dict[str, Path] = {"fp32 as trained": _convert(wrapper, example, work / "fp32_as_trained.tflite")}
    parity = None
    if args.fp32:
        files["fp32"] = Path(args.fp32)
        check = files["fp32"].parent / "parity.json"  # written beside it by edgeseg export
        parity = json.loads(check.read_text()) if check.is_file() else None
    else:
        res = export(weights, "tflite", "fp32", imgsz=args.imgsz, out=work / "fp32", data=args.data, overwrite=True)
        files["fp32"], parity = res.path, res.parity
    int8_checks = {}
    named = [(f"int8 {p.parent.name}", p) for p in map(Path, args.int8)]  # named[0]: the file int8 parts read against
    named += [(f"also {p.parent.parent.name}/{p.parent.name}", p) for p in map(Path, args.also)]
    for name, path in named:
        files[name] = path
        report = path.parent / "quantization.json"
        if report.is_file():
            q = json.loads(report.read_text())
            int8_checks[name] = {"pq_fp32_torch": round(q["pq_fp32_torch"], 2), "pq_int8": round(q["pq_int8"], 2),
                                 "pq_drop": q["pq_drop"], "val_images": q["parity"]["images"],
                                 "mask_agreement": round(q["parity"]["mask_agreement"], 2),
                                 "kept_float": q["engine"].get("kept_float_modules"),
                                 "activation_observer": q["engine"].get("activation_observer", "histogram")}
    parts = {"backbone": _convert(_Backbone(rewritten.model), example, work / "part_backbone.tflite"),
             "backbone + pixel decoder": _convert(_PixelDecoder(rewritten.model), example, work / "part_pixel.tflite")}
    int8_parts = _int8_prefixes(wrapper.model, ckpt, args, work) if args.int8_parts else {}
    for path in map(Path, args.peer):
        files[f"peer {path.stem}"] = path

    maps = {name: partition_map(path) for name, path in files.items()}
    timed = {**files, **{f"prefix: {k}": v for k, v in parts.items()},
             **{f"int8 prefix: {k}": v for k, v in int8_parts.items()}}
    rows, inputs = [], {}
    for threads in args.threads:
        its = {name: _interpreter(path, threads) for name, path in timed.items()}
        inputs = {name: {"shape": [int(s) for s in inp["shape"]], "dtype": np.dtype(inp["dtype"]).name}
                  for name, (_, inp) in its.items()}
        times = time_interleaved({name: _step(it) for name, (it, _) in its.items()}, args.runs, args.warmup)
        ms = {name: summarize_ms(t["forward"]) for name, t in times.items()}
        for name in timed:
            rows.append({"model": name, "threads": threads, "input": inputs[name], **ms[name],
                         **({"partitions": maps[name]["partitions"]} if name in maps else {})})
        whole = ms["fp32"]["median_ms"]
        bb, px = ms["prefix: backbone"]["median_ms"], ms["prefix: backbone + pixel decoder"]["median_ms"]
        rows.append({"model": "fp32 by part", "threads": threads,
                     "backbone_ms": bb, "pixel_decoder_ms": round(px - bb, 2),
                     "transformer_decoder_and_heads_ms": round(whole - px, 2)})
        if int8_parts:
            whole8 = ms[named[0][0]]["median_ms"]
            bb8 = ms["int8 prefix: backbone"]["median_ms"]
            px8 = ms["int8 prefix: backbone + pixel decoder"]["median_ms"]
            rows.append({"model": "int8 by part", "threads": threads, "int8_file": named[0][1].parent.name,
                         "backbone_ms": bb8, "pixel_decoder_ms": round(px8 - bb8, 2),
                         "transformer_decoder_and_heads_ms": round(whole8 - px8, 2)})
        del its

    result = {
        "weights": str(args.weights), "imgsz": args.imgsz, "runs": args.runs, "warmup": args.warmup,
        "machine": machine_description(),
        "partition_maps": {name: {k: v for k, v in m.items() if k != "not_delegated"} | {
            "not_delegated": m["not_delegated"][:40]} for name, m in maps.items()},
        "fp32_parity": parity,
        "int8_checks": int8_checks,
        "rows": rows,
        "command": "python benchmarks/tflite_partitions.py " + " ".join(
            a if not a.startswith("/") else Path(a).name for a in sys.argv[1:]),
    }
    md = _markdown(result)
    write_record(args.json, result, md)
    print(md)


def _markdown(result: dict) -> str:
    lines = ["| model | input | partitions | ops left out | 1 thread ms | 2 threads ms |", "|---|---|---|---|---|---|"]
    by = {}
    for row in result["rows"]:
        by.setdefault(row["model"], {})[row["threads"]] = row
    for name, per in by.items():
        if name in ("fp32 by part", "int8 by part"):
            continue
        any_row = next(iter(per.values()))
        m = result["partition_maps"].get(name)
        left = ", ".join(f"{op} {n}" for op, n in m["not_delegated_by_op"].items()) if m else "-"
        shape = "x".join(str(s) for s in any_row["input"]["shape"])
        lines.append(f"| {name} | {shape} {any_row['input']['dtype']} | {m['partitions'] if m else '-'} | "
                     f"{left or 'none'} | " + " | ".join(str(per[t]['median_ms']) if t in per else "-" for t in (1, 2))
                     + " |")
    if result.get("int8_checks"):
        lines += ["", "| INT8 file | kept float | activation ranges | PQ FP32 torch | PQ INT8 | drop | mask agreement |",
                  "|---|---|---|---|---|---|---|"]
        for name, c in result["int8_checks"].items():
            lines.append(f"| {name} | {', '.join(c['kept_float'] or []) or '-'} | {c['activation_observer']} | "
                         f"{c['pq_fp32_torch']} | {c['pq_int8']} | {c['pq_drop']} | {c['mask_agreement']} % |")
        lines.append(f"(PQ on the first {next(iter(result['int8_checks'].values()))['val_images']} val images, "
                     "edgeseg quantize's check.)")
    lines += ["", "| by part | threads | backbone ms | pixel decoder ms | transformer decoder + heads ms |",
              "|---|---|---|---|---|"]
    fp32 = {r["threads"]: r for r in result["rows"] if r["model"] == "fp32 by part"}
    for row in result["rows"]:
        if row["model"] in ("fp32 by part", "int8 by part"):
            label = "FP32 (rewritten)" if row["model"] == "fp32 by part" else f"INT8 ({row['int8_file']})"
            cells = []
            for key in ("backbone_ms", "pixel_decoder_ms", "transformer_decoder_and_heads_ms"):
                ref = fp32.get(row["threads"], {}).get(key)
                speedup = f" (x{ref / row[key]:.2f})" if row["model"] == "int8 by part" and ref and row[key] > 0 else ""
                cells.append(f"{row[key]}{speedup}")
            lines.append(f"| {label} | {row['threads']} | " + " | ".join(cells) + " |")
    mach = result["machine"]
    lines += ["", f"Forward only at {result['imgsz']} px (the peer at its own input), median of {result['runs']} after "
              f"{result['warmup']} warm-up, all files interleaved in one process; {mach.get('cpu')} "
              f"({mach.get('arch')}, {mach.get('cores')} cores, {' '.join(mach.get('isa', []))}). "
              f"Parts are prefix differences (LiteRT's Python wheel has no op profiler). "
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
