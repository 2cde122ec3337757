"""A PEM head sized for the edge: candidates timed side by side with YOLO26n-seg, then trained.

    python benchmarks/head_sizing.py --time --yolo-onnx runs/peer_latency/yolo/yolo26n-seg.onnx
    python benchmarks/train_recipe.py mnv3s_p96_d3 --backbone-weights FILE   # each recipe of TRAINED
    python benchmarks/train_recipe.py lite0k_p64_m96_h64_d3
    python benchmarks/head_sizing.py                      # re-read both stages, write the tables
    python benchmarks/head_sizing.py --time --yolo-onnx Y.onnx --only A B --root runs/hs_avx2 --results head_sizing_avx2

The candidates change sizes, not PEM's idea (prototype cross-attention, CSM pixel decoder):
the pixel decoder's x2 step (PEM's transposed conv or a fixed bilinear resize), its width,
the decoder's layers and FFN width, the number of queries, and the backbone (EfficientNet-Lite0,
full or depth-pruned, or MobileNetV3-Small, all ImageNet). The timing stage exports a random-init twin of each
candidate to ONNX and times its FP32 forward in ONNX Runtime and OpenVINO at 1 and 2 threads,
interleaved with YOLO26n-seg in one process (``benchmarks/peer_latency.py``). The candidates
that fit YOLO26n-seg's times are trained by ``benchmarks/train_recipe.py`` at the shipped
student's budget (same data, crop, batch, schedule, 2900 steps; PQ on the whole val split at
512 after a threshold calibrated on train images), the shipped student's own run being the
baseline. ``FILE``: the timm state dict of ImageNet ``tf_mobilenetv3_small_100``
(docs/training.md, "Pretrained backbones"). Writes benchmarks/results/head_sizing.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

_BILINEAR = ["model.upsample=bilinear"]
_MNV3S = "models/pem_mnv3s_tf_512.yaml"
_LITE0 = "models/pem_lite0_512.yaml"
# a 64-wide decoder: hidden 64, 4 heads (16 channels each), FFN 512, 3 layers
_H64 = ["model.pixel_dim=64", "model.mask_dim=64", "model.hidden_dim=64", "model.nheads=4", "model.ffn_dim=512",
        "model.dec_layers=3"]
_H64_M96 = [*_H64, "model.mask_dim=96"]  # OpenVINO ran mask_dim 64 markedly slower than 96 (see the table)
_KEEP = "model.backbone_blocks=[1,2,2,1,1,1,1]"  # of EfficientNet-Lite0's [1,2,2,3,3,4,1]
_KEEP_MID = "model.backbone_blocks=[1,2,2,2,2,2,1]"
_S8 = "model.mask_stride=8"
# name -> (config, --set overrides); "lite0_pem" is the shipped student's head as it was.
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "lite0_pem": (_LITE0, []),
    "lite0_bilinear": (_LITE0, _BILINEAR),
    "lite0_bilinear_d3": (_LITE0, [*_BILINEAR, "model.dec_layers=3"]),
    "lite0_bilinear_p64_d3": (_LITE0, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3"]),
    "lite0_bilinear_p64_d3_q30_f512": (_LITE0, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3",
                                                "model.num_queries=30", "model.ffn_dim=512"]),
    "mnv3s_bilinear_d3": (_MNV3S, [*_BILINEAR, "model.dec_layers=3"]),
    "mnv3s_bilinear_p64_d3": (_MNV3S, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3"]),
    "mnv3s_bilinear_p64_d3_q30_f512": (_MNV3S, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64", "model.dec_layers=3",
                                                "model.num_queries=30", "model.ffn_dim=512"]),
    "mnv3s_bilinear": (_MNV3S, _BILINEAR),
    "mnv3s_bilinear_p96_d3": (_MNV3S, [*_BILINEAR, "model.pixel_dim=96", "model.mask_dim=96", "model.dec_layers=3"]),
    "mnv3s_bilinear_p128_m64_d3": (_MNV3S, [*_BILINEAR, "model.mask_dim=64", "model.dec_layers=3"]),
    "mnv3s_bilinear_p64_d6": (_MNV3S, [*_BILINEAR, "model.pixel_dim=64", "model.mask_dim=64"]),
    "mnv3s_bilinear_p64_h64_d3": (_MNV3S, [*_BILINEAR, *_H64]),
    "mnv3s_bilinear_p96_d6": (_MNV3S, [*_BILINEAR, "model.pixel_dim=96", "model.mask_dim=96"]),
    # EfficientNet-Lite0 with the tiny head, full depth and depth-pruned (_KEEP blocks per stage)
    "lite0_bilinear_p64_m96_h64_d3": (_LITE0, [*_BILINEAR, *_H64_M96]),
    "lite0k_bilinear_p64_m64_h64_d3": (_LITE0, [*_BILINEAR, _KEEP, *_H64]),
    "lite0k_bilinear_p64_m96_h64_d3": (_LITE0, [*_BILINEAR, _KEEP, *_H64_M96]),
    "lite0k_bilinear_p96_m96_h64_d3": (_LITE0, [*_BILINEAR, _KEEP, *_H64_M96, "model.pixel_dim=96"]),
    # the shipped student's own widths (128, 8 heads, FFN 1024) with the stride-4 level dropped
    # (mask stride 8), 3 layers and a bilinear x2: every weight has a same-named, same-shaped
    # twin in the shipped checkpoint, so it can start from it (train.init_from) and distil from it
    "lite0_bilinear_s8_d3": (_LITE0, [*_BILINEAR, _S8, "model.dec_layers=3"]),
    "lite0m_bilinear_s8_d3": (_LITE0, [*_BILINEAR, _S8, "model.dec_layers=3", _KEEP_MID]),
    "lite0k_bilinear_s8_d3": (_LITE0, [*_BILINEAR, _S8, "model.dec_layers=3", _KEEP]),
    "lite0k_bilinear_d3": (_LITE0, [*_BILINEAR, "model.dec_layers=3", _KEEP]),
}


def twin(name: str, root: Path) -> Path:
    """A random-init checkpoint of candidate ``name`` with the shipped label space (timing only)."""
    from scaling import random_checkpoint

    from edgeseg.assets import SHIPPED_MODEL, resolve_weights

    path = root / "timing" / f"{name}.pt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        config, overrides = CANDIDATES[name]
        random_checkpoint(str(ROOT / config), resolve_weights(SHIPPED_MODEL), path, overrides)
    return path


def run_timing(args) -> dict:
    from peer_latency import student_onnx, time_models

    from edgeseg.benchmark.measure import machine_description
    from edgeseg.checkpoint import load_checkpoint
    from edgeseg.modeling.build import config_from_checkpoint
    from edgeseg.modeling.complexity import model_info

    start = time.perf_counter()
    root = Path(args.root)
    names = args.only or list(CANDIDATES)
    models = {"yolo26n-seg": Path(args.yolo_onnx)}
    info = {}
    for name in names:
        weights = twin(name, root)
        cached = root / "timing" / weights.stem / "onnx" / "model.onnx"  # the twin's export, when made before
        models[name] = cached if cached.exists() else student_onnx(weights, args.imgsz, root / "timing")
        cfg = config_from_checkpoint(load_checkpoint(weights), str(weights))
        mi = model_info(cfg, args.imgsz)
        info[name] = {"params_m": mi["params_inference_m"], "gmacs": mi["gmacs"]}
    rows = time_models(models, args.imgsz, args.threads, args.runs, args.warmup)
    command = "python benchmarks/head_sizing.py " + " ".join(sys.argv[1:])
    doc = {"machine": machine_description(), "command": command, "imgsz": args.imgsz, "runs": args.runs, "warmup": args.warmup,
           "complexity": info, "rows": rows, "seconds": round(time.perf_counter() - start, 1)}
    (root / "timing.json").write_text(json.dumps(doc, indent=2))
    return doc


# trained candidates -> the recipe (benchmarks/train_recipe.py) whose JSON holds their PQ; the
# baseline is the shipped Lite0 student's own run at the same budget
TRAINED = [("lite0_pem", "lite0_default"), ("mnv3s_bilinear_p96_d3", "mnv3s_p96_d3"),
           ("mnv3s_bilinear_p96_d3", "mnv3s_p96_d3_bb1"), ("lite0k_bilinear_p64_m96_h64_d3", "lite0k_p64_m96_h64_d3"),
           ("lite0k_bilinear_p64_m96_h64_d3", "lite0k_p64_m96_h64_d3_kd"),
           ("lite0k_bilinear_p64_m96_h64_d3", "lite0k_p64_m96_h64_d3_kd_5800"),
           ("lite0k_bilinear_p64_m96_h64_d3", "lite0k_p64_m96_h64_d3_kd_init"),
           ("lite0k_bilinear_p64_m96_h64_d3", "lite0k_p64_m96_h64_d3_kd_init_5800"),
           ("lite0m_bilinear_s8_d3", "lite0m_s8_d3_cut_kd"), ("lite0k_bilinear_s8_d3", "lite0k_s8_d3_cut_kd")]


def _cell(rows: list[dict], model: str, runtime: str, threads: int) -> float | None:
    hit = next((r for r in rows if (r["model"], r["runtime"], r["threads"]) == (model, runtime, threads)), None)
    return hit["median_ms"] if hit else None


def _timing(root: Path, results: str) -> dict:
    """The timing stage's record: ``root/timing.json`` when this machine ran it, else the timings
    held in the committed results JSON of the same name (so a newly trained recipe can be added to the table
    without re-timing every candidate; times from two runs are never mixed)."""
    path = root / "timing.json"
    if path.exists():
        return json.loads(path.read_text())
    committed = ROOT / "benchmarks" / "results" / f"{results}.json"  # this table's own machine, never another's
    if not committed.exists():
        raise SystemExit(f"no {path} and no {committed}: run the timing stage first (--time --yolo-onnx ...)")
    doc = json.loads(committed.read_text())
    rows, complexity = [], {}

    def cells(model: str, ms: dict) -> None:
        for key, value in ms.items():
            runtime, threads = key.rsplit("_", 1)
            rows.append({"model": model, "runtime": runtime, "threads": int(threads.rstrip("t")), "median_ms": value})

    cells("yolo26n-seg", doc["yolo26n_seg_ms"])
    for c in doc["candidates"]:
        if c["candidate"] not in complexity:
            complexity[c["candidate"]] = {"params_m": c["params_m"], "gmacs": c["gmacs"]}
            cells(c["candidate"], c["forward_ms"])
    return ({k: doc[k] for k in ("machine", "imgsz", "runs", "warmup")}
            | {"rows": rows, "complexity": complexity, "command": doc["commands"].get("timed_by")})


def _recipe_cell(r: dict) -> str:
    if "recipe" not in r:
        return "-"
    return r["recipe"] if r["finished"] else f"{r['recipe']} (stopped at step {r['steps']})"


def record(args) -> dict:
    """head_sizing.json / .md from the timing run and the trained candidates' recipe JSONs."""
    from edgeseg.data.image_io import atomic_write_bytes

    root = Path(args.root)
    timing = _timing(root, args.results)
    rows = timing["rows"]
    cells = [(rt, t) for rt in ("onnxruntime", "openvino") for t in sorted({r["threads"] for r in rows})]
    training: dict[str, list[dict]] = {}
    for name, recipe in TRAINED:
        path = ROOT / "benchmarks" / "results" / f"recipe_{recipe}.json"
        if path.exists():
            r = json.loads(path.read_text())
            # an unfinished run is scored at its serving size by train_recipe.py --record-only
            at = r.get("at_export_size") or {"input_size": 512, "pq": r["pq"], "things": r["things"],
                                              "stuff": r["stuff"], "miou": r["miou"], "pq_ci95": r.get("pq_ci95")}
            training.setdefault(name, []).append({"recipe": recipe, "overrides": r["overrides"], "steps": r["steps"], "finished": r["finished"],
                              "train_minutes": r["train_minutes"], "val_images": r["val_images"],
                              "input_size": at.get("input_size"),
                              "pq": round(at["pq"]["pq"], 2), "pq_things": round(at["things"]["pq"], 2),
                              "pq_stuff": round(at["stuff"]["pq"], 2), "miou": round(at["miou"], 2),
                              "pq_ci95": at.get("pq_ci95"), "command": r["command"]})
    table = []
    for name in [n for n in CANDIDATES if any(r["model"] == n for r in rows)]:
        ms = {f"{rt}_{t}t": _cell(rows, name, rt, t) for rt, t in cells}
        yolo = {f"{rt}_{t}t": _cell(rows, "yolo26n-seg", rt, t) for rt, t in cells}
        base = {"candidate": name, "config": CANDIDATES[name][0], "overrides": CANDIDATES[name][1],
                **timing["complexity"][name], "forward_ms": ms, "no_slower_than_yolo": all(ms[k] <= yolo[k] for k in ms)}
        table += [{**base, **t} for t in training.get(name, [{}])]
    fits = [r for r in table if r["no_slower_than_yolo"] and "pq" in r]
    best = max(fits, key=lambda r: r["pq"]) if fits else None
    chosen = f"{best['candidate']} ({best['recipe']})" if best else None
    doc = {"what": "PEM heads sized for the edge: FP32 forward at 512 beside YOLO26n-seg (one interleaved run, "
                   "random-init twins) and PQ of the trained candidates at the shipped student's budget",
           "commands": {"time": "python benchmarks/head_sizing.py --time --yolo-onnx YOLO26N_SEG.onnx",
                        "train": "python benchmarks/train_recipe.py RECIPE --backbone-weights FILE",
                        "record": "python benchmarks/head_sizing.py", "timed_by": timing.get("command")},
           "machine": timing["machine"], "imgsz": timing["imgsz"], "runs": timing["runs"], "warmup": timing["warmup"],
           "yolo26n_seg_ms": {f"{rt}_{t}t": _cell(rows, "yolo26n-seg", rt, t) for rt, t in cells},
           "rule": "the best PQ among trained candidates no slower than YOLO26n-seg in every runtime x threads cell",
           "chosen": chosen, "candidates": table}
    dest = ROOT / "benchmarks" / "results" / f"{args.results}.json"
    atomic_write_bytes(dest, json.dumps(doc, indent=2).encode())
    head = " | ".join(f"{rt} {t}t ms" for rt, t in cells)
    lines = [f"| candidate | params M | GMACs | {head} | <= YOLO26n-seg | recipe | PQ | things | stuff |",
             "|---|---|---|" + "---|" * len(cells) + "---|---|---|---|---|",
             "| yolo26n-seg (instance only) | - | - | " + " | ".join(f"{doc['yolo26n_seg_ms'][f'{rt}_{t}t']:.1f}"
                                                                  for rt, t in cells) + " | - | - | - | - | - |"]
    for r in table:
        lines.append(f"| {r['candidate']} | {r['params_m']:.2f} | {r['gmacs']:.2f} | "
                     + " | ".join(f"{r['forward_ms'][f'{rt}_{t}t']:.1f}" for rt, t in cells)
                     + f" | {'yes' if r['no_slower_than_yolo'] else 'no'} | {_recipe_cell(r)} | {r.get('pq', '-')} | "
                     f"{r.get('pq_things', '-')} | "
                     f"{r.get('pq_stuff', '-')} |")
    m = doc["machine"]
    lines += ["", f"FP32 forward at {doc['imgsz']}, median of {doc['runs']} after {doc['warmup']} warm-up, all models "
              f"interleaved in one process; {m['cpu']} ({m['arch']}, {m['cores']} cores, {' '.join(m['isa'])}). PQ: whole "
              "val split at 512 after a threshold calibrated on train images, 2900 steps x 8 images at 256 px (5800 for a recipe named _5800; a _cut_ recipe starts from the shipped student's weights: "
              "lite0m 1500 steps, lite0k 3000; a stopped run: its last checkpoint at the stored thresholds) "
              f"(benchmarks/train_recipe.py). Chosen: {chosen} ({doc['rule']})."]
    atomic_write_bytes(dest.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", action="store_true", help="time random-init twins beside YOLO26n-seg")
    ap.add_argument("--yolo-onnx", help="YOLO26n-seg ONNX at --imgsz (benchmarks/peer_latency.py exports it)")
    ap.add_argument("--only", nargs="+", choices=list(CANDIDATES), help="a subset of the candidates")
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--root", default="runs/head_sizing")
    ap.add_argument("--results", default="head_sizing",
                    help="name of the JSON / .md under benchmarks/results (another machine's run: another name)")
    args = ap.parse_args()
    if args.time:
        if not args.yolo_onnx:
            raise SystemExit("--time needs --yolo-onnx")
        run_timing(args)
    record(args)


if __name__ == "__main__":
    main()
