"""The device kits on aarch64, under emulation: install as a Raspberry Pi / Jetson user does, predict,
and agree with x86.

    sudo -E python benchmarks/aarch64.py [--photos DIR] [--val-images 50] [--kits rpi rpi-onnx ...]

1. ``runtimes/aarch64/rootfs.sh`` builds (once, cached) an arm64 Debian bookworm root file system that
   runs here through qemu user-mode emulation: Raspberry Pi OS (64-bit) is this Debian release.
2. The shipped student is exported on this machine (TFLite FP32, TFLite full-integer INT8 and ONNX
   FP32, each with its parity / PQ check; cached with ``edgeseg bench``'s artifacts) and edgeseg is
   built as a wheel.
3. Each kit gets its own virtual environment inside the root, installed with the command
   ``runtimes/README.md`` gives for that device (``pip install`` resolves edgeseg from the wheel, all
   else from the package registry: the real aarch64 wheels of numpy, OpenCV, LiteRT, ONNX Runtime).
4. ``runtimes/predict.py --coco`` runs every model of the kit on the val images and the photos,
   inside the root and on this machine, and the two prediction sets are compared: pixel agreement,
   segment counts, and PQ of each on the val images.
5. The Jetson kit (base install + PyPI's CPU-only onnxruntime, as on a Jetson before NVIDIA's wheel)
   is checked for the message a missing TensorRT provider gives.

Emulated timings say nothing about a device and are not recorded as speed; install, numerics and
messages are what this proves. Writes ``benchmarks/results/aarch64.json`` and ``aarch64.md``.
Needs root (chroot, binfmt_misc); ``-E`` keeps pip's proxy / CA settings for the install inside.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeseg.assets import SHIPPED_MODEL, resolve_weights  # noqa: E402

KIT_DIR = ROOT / "runtimes"
IN_ROOT = KIT_DIR / "aarch64" / "in_root.sh"
ROOTFS = KIT_DIR / "aarch64" / "rootfs.sh"
INSIDE = "/opt/edgeseg-check"  # everything this script puts into the root lives here

# kit -> (pip arguments as runtimes/README.md gives them, models it runs, image groups). The wheel
# folder is passed with --find-links: it stands in for the package index that would serve edgeseg.
KITS: dict[str, tuple[list[str], list[str], tuple[str, ...]]] = {
    # Raspberry Pi 64-bit OS, LiteRT: the kit's requirements file
    "rpi": (["-r", f"{INSIDE}/kit/requirements-rpi.txt"], ["tflite_fp32", "tflite_int8"], ("val", "photos")),
    # Raspberry Pi with ONNX Runtime
    "rpi-onnx": (["edgeseg[onnx]"], ["onnx_fp32"], ("val", "photos")),
    # older Raspberry Pi OS images: tflite-runtime 2.14 with numpy < 2 (runtimes/README.md); the same
    # model file as "rpi", so the photos alone check the older runtime
    "rpi-tflite-runtime": (["edgeseg", "tflite-runtime==2.14.0", "numpy<2"], ["tflite_fp32"], ("photos",)),
    # Jetson before NVIDIA's onnxruntime-gpu wheel: the kit's base install + PyPI's (CPU) onnxruntime
    "jetson": (["-r", f"{INSIDE}/kit/requirements-jetson.txt", "onnxruntime"], [], ()),
}
MODELS = {"tflite_fp32": ("tflite", "fp32"), "tflite_int8": ("tflite", "int8"), "onnx_fp32": ("onnx", "fp32")}
QEMU_CPU = os.environ.get("EDGESEG_QEMU_CPU", "cortex-a76")  # the emulated core (runtimes/aarch64/in_root.sh)
GOALS = {"fp32_agreement_pct": 99.5, "int8_pq_gap": 0.5}


def sh(cmd: list, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def in_root(root: Path, *cmd, check: bool = True) -> subprocess.CompletedProcess:
    return sh([IN_ROOT, root, *cmd], check=check)


def build_models(weights: Path, imgsz: int, data: str, work: Path, names: set[str]) -> dict[str, Path]:
    """The student's exports ``names`` (folders with the model file and edgeseg.json), checked."""
    from edgeseg.benchmark.artifacts import build_artifact

    out, fp32 = {}, {}
    for name, (fmt, prec) in MODELS.items():
        if name not in names:
            continue
        art = build_artifact(weights, fmt, prec, imgsz, work, data, fp32_model=fp32.get(fmt))
        if not art.ok:
            raise SystemExit(f"{name}: {art.status}: {art.reason}")
        if prec == "fp32":
            fp32[fmt] = art.path
        out[name] = art.path
    return out


def build_wheel(dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dest, ROOT])
    (wheel,) = dest.glob("edgeseg-*.whl")
    return wheel


def stage(root: Path, wheel: Path, models: dict[str, Path], images: dict[str, list[Path]]) -> None:
    """Copy the kit, the wheel, the exports and the images into the root, under INSIDE."""
    base = root / INSIDE.lstrip("/")
    for part in ("wheels", "kit", "models", "images"):  # venvs and outputs are checked before reuse
        shutil.rmtree(base / part, ignore_errors=True)
    (base / "wheels").mkdir(parents=True)
    shutil.copy2(wheel, base / "wheels")
    (base / "kit").mkdir()
    for f in KIT_DIR.glob("requirements-*.txt"):
        shutil.copy2(f, base / "kit")
    shutil.copy2(KIT_DIR / "predict.py", base / "kit")
    for name, path in models.items():
        shutil.copytree(path.parent, base / "models" / name)
    for group, files in images.items():
        (base / "images" / group).mkdir(parents=True)
        for f in files:
            shutil.copy2(f, base / "images" / group / f.name)


def wheel_content(wheel: Path) -> str:
    """A hash of the wheel's files (names and CRCs): two builds of the same sources match, though
    their zip timestamps differ."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        entries = sorted(f"{i.filename}:{i.CRC}" for i in z.infolist() if not i.filename.endswith("RECORD"))
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def install_kit(root: Path, kit: str) -> dict:
    """A fresh venv for ``kit`` inside the root, installed with the kit's pip command."""
    venv = f"{INSIDE}/venv/{kit}"
    pip_args = KITS[kit][0]
    # a venv installed by the same command from the same wheel is reused (marker file)
    marker = root / venv.lstrip("/") / ".edgeseg-kit.json"
    stamp = {"pip_args": pip_args, "wheel_content": wheel_content(next((root / INSIDE.lstrip("/") / "wheels").glob("*.whl")))}
    record = {"kit": kit, "command": "pip install " + " ".join(pip_args), "wheel_content": stamp["wheel_content"]}
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        record.update(installed=True, reused=True)
    else:
        in_root(root, "/usr/bin/python3", "-m", "venv", "--clear", venv)
        proc = in_root(root, f"{venv}/bin/pip", "install", "--find-links", f"{INSIDE}/wheels", *pip_args, check=False)
        record.update(installed=proc.returncode == 0, reused=False)
        if proc.returncode != 0:
            record["error"] = (proc.stdout + proc.stderr)[-2000:]
            return record
        marker.write_text(json.dumps(stamp))
    freeze = in_root(root, f"{venv}/bin/pip", "list", "--format=json").stdout
    wanted = {"edgeseg", "numpy", "opencv-python-headless", "ai-edge-litert", "tflite-runtime", "onnxruntime", "torch"}
    record["packages"] = {p["name"]: p["version"] for p in json.loads(freeze) if p["name"].lower() in wanted}
    record["torch_installed"] = "torch" in record["packages"]
    return record


def predict(python: list, model: Path | str, source: Path | str, out: Path | str, threads: int) -> None:
    """runtimes/predict.py on a folder of images, COCO-panoptic output in ``out``."""
    sh([*python, "--coco", out, "--out", f"{out}/overlays", "--threads", threads, model, source])


@functools.lru_cache(maxsize=None)
def _file_sha256(path: Path) -> str:
    """A model file's full hash, read once per run (every prediction set of that model is keyed by it)."""
    from edgeseg.checkpoint import file_sha256

    return file_sha256(path, length=64)


def _key(images: list[Path], model: Path, kit: dict | None) -> dict:
    """What a prediction set was made from: image names, the model file's hash, the kit's install."""
    return {"images": [p.name for p in images], "model_sha256": _file_sha256(Path(model)),
            "kit": kit and [kit.get("command"), kit.get("wheel_content"), kit.get("cpu")]}


def _done(out: Path, images: list[Path], model: Path, kit: dict | None) -> bool:
    """A prediction set already made from the same images, model and kit (an interrupted run resumes)."""
    stamp = out / "made_from.json"
    return (out / "panoptic.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == _key(images, model, kit)


def _stamp(out: Path, images: list[Path], model: Path, kit: dict | None) -> None:
    (out / "made_from.json").write_text(json.dumps(_key(images, model, kit)))


def val_subset(data: str, n: int) -> tuple[dict, Path, list[Path]]:
    """The first ``n`` val images: their ground truth (a COCO-panoptic dict), PNG folder and files."""
    gt = json.loads(Path(data, "annotations", "panoptic_val.json").read_text())
    images = sorted(gt["images"], key=lambda im: im["id"])[:n]
    ids = {im["id"] for im in images}
    gt_sub = dict(gt, images=images, annotations=[a for a in gt["annotations"] if a["image_id"] in ids])
    return gt_sub, Path(data, "annotations", "panoptic_val"), [Path(data, "val", im["file_name"]) for im in images]


def pq_of(gt: dict, gt_dir: Path, pred_dir: Path) -> dict:
    from edgeseg.evaluation.panoptic_quality import pq_compute

    s = pq_compute(gt, gt_dir, pred_dir / "panoptic.json", pred_dir / "panoptic")
    return {k: round(s[part]["pq"], 2) for k, part in (("pq", "all"), ("pq_things", "things"), ("pq_stuff", "stuff"))}


def jetson_messages(root: Path, models_inside: str) -> dict:
    """What a Jetson user sees without NVIDIA's onnxruntime-gpu: the profile's TensorRT-first
    providers, and the default providers on a board that says it is a Jetson."""
    py = f"{INSIDE}/venv/jetson/bin/python"
    model = f"{models_inside}/onnx_fp32/model.onnx"
    asked = in_root(root, py, "-c", "from edgeseg.backends import load; from edgeseg.profiles import get_profile; "
                                    f"load('{model}', **get_profile('jetson-orin-nano').load_kwargs())", check=False)
    release = root / "etc" / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.0 (written by benchmarks/aarch64.py for this check)\n")
    try:
        default = in_root(root, py, "-W", "always", "-c", f"from edgeseg.backends import load; "
                                                          f"print(load('{model}').adapter.providers)", check=False)
    finally:
        release.unlink()
    last = lambda text: (text.strip().splitlines() or [""])[-1]  # noqa: E731
    return {"profile_jetson_orin_nano": {"exit_code": asked.returncode, "message": last(asked.stderr)},
            "default_providers_on_a_jetson": {"exit_code": default.returncode, "providers": last(default.stdout),
                                              "warning": next((ln for ln in default.stderr.splitlines()
                                                               if "MissingProviderWarning" in ln), "")}}


def host_packages() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("numpy", "opencv-python-headless", "ai-edge-litert", "onnxruntime"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def markdown(doc: dict) -> str:
    lines = ["# The device kits on aarch64 (qemu user-mode emulation) against x86", "",
             f"`{doc['command']}`", "",
             f"Host: {doc['host']['machine']} ({doc['host']['cpu']}); root: Debian {doc['root']['suite']} arm64, "
             f"Python {doc['root']['python']}, emulated CPU {doc['root']['emulated_cpu']}. Val images: {doc['val_images']}; photos: {len(doc['photos'])}. "
             "Emulated times are not device speed.", "",
             "| kit | install | packages |", "|---|---|---|"]
    for k in doc["kits"]:
        pk = ", ".join(f"{n} {v}" for n, v in sorted(k.get("packages", {}).items()))
        lines.append(f"| {k['kit']} `{k['command']}` | {'ok' if k['installed'] else 'FAILED'} | {pk or k.get('error', '')[-200:]} |")
    lines += ["", "| kit | model | images | agreement mean / min % | equal segment counts | segments arm / x86 | "
                  "PQ arm / x86 (val) | goal |", "|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        for group, c in r["compare"].items():
            pq = r.get("pq", {})
            pq_txt = f"{pq['aarch64']['pq']} / {pq['x86']['pq']}" if group == "val" and pq else ""
            lines.append(f"| {r['kit']} | {r['model']} | {group} {c['images']} | {c['mean_agreement_pct']:.2f} / "
                         f"{c['min_agreement_pct']:.2f} | {c['equal_segment_counts']}/{c['images']} | "
                         f"{c['segments_a']} / {c['segments_b']} | {pq_txt} | "
                         f"{'met' if r['goal_met'] else 'NOT met'} |")
    j = doc.get("jetson")
    if j:
        lines += ["", "Jetson kit without NVIDIA's onnxruntime-gpu:", "",
                  f"- `--profile jetson-orin-nano` (TensorRT, CUDA, CPU): exit {j['profile_jetson_orin_nano']['exit_code']}: "
                  f"{j['profile_jetson_orin_nano']['message']}",
                  f"- default providers on a board with `/etc/nv_tegra_release`: {j['default_providers_on_a_jetson']['providers']}; "
                  f"{j['default_providers_on_a_jetson']['warning']}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=SHIPPED_MODEL)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--val-images", type=int, default=16)
    ap.add_argument("--photos", help="a folder of .jpg photos predicted on both sides as well")
    ap.add_argument("--kits", nargs="+", default=list(KITS), choices=list(KITS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", default=os.environ.get("EDGESEG_AARCH64_ROOT",
                                                     str(Path.home() / ".cache/edgeseg/aarch64/bookworm")))
    ap.add_argument("--work", default="runs/aarch64")
    ap.add_argument("--artifacts", default="runs/bench", help="export cache (shared with edgeseg bench)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("benchmarks/aarch64.py needs root (chroot, binfmt_misc): run it with sudo -E")
    started = time.perf_counter()
    root, work = Path(args.root), Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    sh(["bash", ROOTFS, root])
    rootfs_seconds = round(time.perf_counter() - t0, 1)
    weights = resolve_weights(args.weights)
    # the models the chosen kits run; the Jetson check loads the ONNX one
    needed = {m for k in args.kits for m in KITS[k][1]} | ({"onnx_fp32"} if "jetson" in args.kits else set())
    models = build_models(weights, args.imgsz, args.data, Path(args.artifacts), needed)
    wheel = build_wheel(work / "wheels")
    gt, gt_dir, val_files = val_subset(args.data, args.val_images)
    photos = sorted(Path(args.photos).glob("*.jpg")) if args.photos else []
    if args.photos and not photos:
        raise SystemExit(f"--photos {args.photos}: no .jpg files there")
    groups = {"val": val_files} | ({"photos": photos} if photos else {})
    stage(root, wheel, models, groups)

    kits = [install_kit(root, k) | {"cpu": QEMU_CPU} for k in args.kits]
    runs = []
    host_out = work / "x86"
    for kit in kits:
        if not kit["installed"]:
            continue
        for name in KITS[kit["kit"]][1]:
            fmt, prec = MODELS[name]
            model_file = models[name].name
            run = {"kit": kit["kit"], "model": name, "format": fmt, "precision": prec, "compare": {}}
            for group in [g for g in groups if g in KITS[kit["kit"]][2]] or list(groups):
                arm_out = f"{INSIDE}/out/{kit['kit']}/{name}/{group}"
                py = [IN_ROOT, root, f"{INSIDE}/venv/{kit['kit']}/bin/python", f"{INSIDE}/kit/predict.py"]
                arm = root / arm_out.lstrip("/")
                if not _done(arm, groups[group], models[name], kit):
                    shutil.rmtree(arm, ignore_errors=True)
                    predict(py, f"{INSIDE}/models/{name}/{model_file}", f"{INSIDE}/images/{group}", arm_out, args.threads)
                    _stamp(arm, groups[group], models[name], kit)
                x86 = host_out / name / group
                host = {"command": "x86", "wheel_content": kit["wheel_content"]}  # the same for every kit
                if not _done(x86, groups[group], models[name], host):
                    shutil.rmtree(x86, ignore_errors=True)
                    predict([sys.executable, KIT_DIR / "predict.py"], models[name], root / INSIDE.lstrip("/") / "images" / group,
                            x86, args.threads)
                    _stamp(x86, groups[group], models[name], host)
                from edgeseg.evaluation.agreement import compare_prediction_sets

                cmp = compare_prediction_sets(arm / "panoptic.json", x86 / "panoptic.json")
                run["compare"][group] = cmp
                if group == "val":
                    run["pq"] = {"aarch64": pq_of(gt, gt_dir, arm), "x86": pq_of(gt, gt_dir, x86)}
            if prec == "fp32":
                run["goal"] = f"agreement >= {GOALS['fp32_agreement_pct']} %"
                run["goal_met"] = all(c["mean_agreement_pct"] >= GOALS["fp32_agreement_pct"] for c in run["compare"].values())
            else:
                run["goal"] = f"PQ within {GOALS['int8_pq_gap']} of x86"
                run["goal_met"] = "pq" in run and abs(run["pq"]["aarch64"]["pq"] - run["pq"]["x86"]["pq"]) <= GOALS["int8_pq_gap"]
            runs.append(run)
            print(f"{kit['kit']:20s} {name:12s} " + "  ".join(
                f"{g}: {c['mean_agreement_pct']:.2f}% ({c['equal_segment_counts']}/{c['images']} equal counts)"
                for g, c in run["compare"].items()) + (f"  PQ {run['pq']['aarch64']['pq']} vs {run['pq']['x86']['pq']}"
                                                       if "pq" in run else ""), flush=True)

    jetson = jetson_messages(root, f"{INSIDE}/models") if any(k["kit"] == "jetson" and k["installed"] for k in kits) else None
    from edgeseg.benchmark.measure import machine_description

    root_python = in_root(root, "/usr/bin/python3", "-c", "import platform; print(platform.python_version())").stdout.strip()
    command = "sudo -E python benchmarks/aarch64.py " + " ".join(
        a if not args.photos or a != args.photos else "PHOTOS_DIR" for a in sys.argv[1:])
    doc = {
        "command": command.strip(),
        "host": {"machine": platform.machine(), "cpu": machine_description().get("cpu")},
        "root": {"suite": "bookworm", "arch": "arm64", "python": root_python, "emulated_cpu": QEMU_CPU,
                 "emulator": sh(["qemu-aarch64-static", "--version"]).stdout.splitlines()[0],
                 "build_seconds": rootfs_seconds},
        "weights": Path(weights).name, "imgsz": args.imgsz, "threads": args.threads, "val_images": len(val_files),
        "photos": [{"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()[:16]} for p in photos],
        "goals": GOALS, "kits": kits, "runs": runs, "jetson": jetson,
        "host_packages": host_packages(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for run in doc["runs"]:  # the JSON keeps the images that differ, by name
        for c in run["compare"].values():
            c["differing_images"] = [r for r in c.pop("per_image")
                                     if r["agreement_pct"] < 100.0 or r["segments_a"] != r["segments_b"]]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from edgeseg.data.image_io import atomic_write_bytes

    atomic_write_bytes(out / "aarch64.json", json.dumps(doc, indent=1).encode())
    atomic_write_bytes(out / "aarch64.md", markdown(doc).encode())
    print(markdown(doc))


if __name__ == "__main__":
    main()
