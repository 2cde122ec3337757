"""``edgeseg tune --fps 30 --profile rpi5``: the most accurate configuration that meets an FPS budget.

Candidates are benchmark rows (``bench.json`` / ``scaling.json`` files, or a fresh measurement
on this machine with ``measure=True``) restricted to what the device profile runs: its
(format, precision) candidates, its input sizes, and its thread count (or the most threads
recorded below it). Among those meeting the budget the highest PQ wins (ties: higher FPS);
the winner is exported (or quantized) so it is ready to copy to the device.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.assets import SHIPPED_MODEL
from edgeseg.benchmark.measure import HEADLINE_FRAME
from edgeseg.benchmark.report import row_passed
from edgeseg.errors import EdgesegError
from edgeseg.profiles import DeviceProfile


class TuneError(EdgesegError):
    """No recorded configuration can be chosen (none meets the budget, or none was measured)."""


@dataclass
class TuneResult:
    choice: dict  # the chosen benchmark row
    runners_up: list[dict]  # next best rows meeting the budget
    near_misses: list[dict]  # best-PQ rows that missed the budget, fastest first
    notes: list[str] = field(default_factory=list)
    exported: Path | None = None

    def summary(self) -> str:
        def line(r: dict) -> str:
            return (f"{r.get('model')} {r['runtime']} {r['precision']} {r['imgsz']}px {r['threads']}t: "
                    f"{r['fps']:.1f} FPS, PQ {r['pq']:.1f}" + (f", {r['file_mb']:.1f} MB" if r.get("file_mb") else ""))

        out = [f"choice:     {line(self.choice)}"]
        out += [f"runner-up:  {line(r)}" for r in self.runners_up]
        out += [f"too slow:   {line(r)}" for r in self.near_misses]
        out += [f"note: {n}" for n in self.notes]
        if self.exported:
            out.append(f"exported:   {self.exported}")
        return "\n".join(out)


def load_rows(paths: list[str | Path]) -> tuple[list[dict], list[dict]]:
    """Rows and machine descriptions of benchmark JSON files; a missing or foreign file is an error
    that names it."""
    rows, machines = [], []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise TuneError(f"benchmark results not found: {p} (run `edgeseg bench --out {p.parent}` first, "
                            f"or pass --measure)")
        try:
            doc = json.loads(p.read_text())
        except ValueError as exc:
            raise TuneError(f"{p}: not a JSON file ({exc})") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise TuneError(f"{p}: not an edgeseg benchmark file (no 'rows' list)")
        machines.append(doc.get("machine", {}))
        for r in doc["rows"]:
            rows.append(dict(r, source=str(p)))
    return rows, machines


# frames a row's FPS can be compared on, in order of preference: bench's headline camera frame,
# then the val image, which every results file times (scaling.py times only that one)
COMPARABLE_FRAMES = (HEADLINE_FRAME, "val")


def _on_common_frame(rows: list[dict]) -> tuple[list[dict], str | None]:
    """The rows with ``fps`` taken on one frame kind that all of them timed, so that a budget
    compares like with like (a 1280x720 frame costs several times a 256 px val image).
    Returns the rows and a note when that is not the headline frame."""
    for frame in COMPARABLE_FRAMES:
        if rows and all(r.get(f"fps_{frame}") is not None for r in rows):
            note = None if frame == COMPARABLE_FRAMES[0] else (
                f"FPS compared on the {frame} frame: not every results file times a {COMPARABLE_FRAMES[0]} frame")
            return [dict(r, fps=r[f"fps_{frame}"]) for r in rows], note
    if rows:
        raise TuneError("the results files time no frame in common (fps_1280x720 or fps_val in every row); "
                        "re-record them with the current `edgeseg bench` / benchmarks/scaling.py")
    return rows, None


def select(rows: list[dict], fps: float, profile: DeviceProfile | None = None, top: int = 3) -> TuneResult:
    """Pick the best-PQ measured student row with ``fps >= fps`` that the profile can run."""
    if fps <= 0:
        raise TuneError(f"--fps must be > 0, got {fps}")
    notes = []
    cands = [r for r in rows if r.get("role", "student") == "student" and row_passed(r)
             and r.get("fps") is not None and r.get("pq") is not None]
    unscored = [r for r in rows if r.get("fps") is not None and r.get("pq") is None]
    if unscored:
        notes.append(f"{len(unscored)} timed rows have no PQ (untrained or unscored model) and were skipped")
    if profile is not None:
        allowed = set(profile.candidates) or {(profile.format, profile.precision)}
        cands = [r for r in cands if (r["format"], r["precision"]) in allowed and r["imgsz"] in profile.sizes]
        recorded = sorted({r["threads"] for r in cands})
        want = profile.threads or (max(recorded) if recorded else 0)
        usable = [t for t in recorded if t <= want] or recorded[:1]
        if usable:
            pick = max(usable)
            if pick != want:
                notes.append(f"profile {profile.name} runs {want} threads; the most recorded is {pick}, "
                             f"used instead (more threads will be faster)")
            cands = [r for r in cands if r["threads"] == pick]
    cands, frame_note = _on_common_frame(cands)
    if frame_note:
        notes.append(frame_note)
    if not cands:
        raise TuneError("no measured student row matches" + (f" profile {profile.name} (formats "
                        f"{sorted(set(profile.candidates))}, sizes {profile.sizes})" if profile else "") +
                        "; run `edgeseg bench` with those formats and sizes")
    meeting = sorted((r for r in cands if r["fps"] >= fps), key=lambda r: (-r["pq"], -r["fps"]))
    missing = sorted((r for r in cands if r["fps"] < fps), key=lambda r: (-r["pq"], -r["fps"]))[:top]
    if not meeting:
        fastest = max(cands, key=lambda r: r["fps"])
        raise TuneError(f"no configuration reaches {fps:g} FPS; the fastest measured is {fastest['runtime']} "
                        f"{fastest['precision']} at {fastest['imgsz']}px, {fastest['threads']} thread(s): "
                        f"{fastest['fps']:.1f} FPS (PQ {fastest['pq']:.1f}). Lower --fps or add smaller input sizes / "
                        f"backbones to the benchmark")
    return TuneResult(meeting[0], meeting[1:1 + top], missing, notes)


def tune(fps: float, profile: DeviceProfile | None = None, results: list[str | Path] | None = None,
         measure: bool = False, weights: list[str] | None = None, data: str = "data/synth",
         export_dir: str | Path | None = None, work: str = "runs/bench", runs: int = 50,
         val_images: int = 0) -> TuneResult:
    """Choose (and export, unless ``export_dir`` is None) the best configuration for ``fps``.

    ``results``: benchmark JSON files to choose from. ``measure``: benchmark the profile's grid
    on this machine first (``weights`` x profile sizes x profile candidates x profile threads)."""
    rows, machines = [], []
    if measure:
        from edgeseg.benchmark.bench import BenchConfig, bench

        threads = profile.threads if profile and profile.threads else None
        cfg = BenchConfig(weights=list(weights or [SHIPPED_MODEL]), data=data, work=work, runs=runs,
                          val_images=val_images,
                          combos=tuple(profile.candidates) if profile else BenchConfig().combos,
                          imgsz=tuple(profile.sizes) if profile else (512,),
                          threads=(threads or os.cpu_count() or 1,))
        doc = bench(cfg)
        rows, machines = doc["rows"], [doc["machine"]]
    if results:
        more, mach = load_rows(list(results))
        rows += more
        machines += mach
    if not rows:
        raise TuneError("nothing to choose from: pass --results bench.json (from `edgeseg bench`) or --measure")
    result = select(rows, fps, profile)
    if profile is not None:
        cpus = sorted({f"{m.get('cpu')} ({m.get('arch')}, {m.get('cores')} cores)" for m in machines if m})
        result.notes.append(f"FPS were measured on {', '.join(cpus) or 'an unrecorded machine'}; a {profile.name} "
                            f"device will differ. Run `edgeseg bench --profile {profile.name} --out DIR` on the device and "
                            f"tune with --results DIR/bench.json for real numbers")
    if export_dir is not None:
        result.exported = _export_choice(result.choice, Path(export_dir), data)
    return result


def _export_choice(row: dict, out: Path, data: str) -> Path:
    """Export / quantize the chosen row's checkpoint to ``out`` (with its parity / PQ check)."""
    from edgeseg.assets import resolve_weights

    weights = resolve_weights(row["weights"])
    if row["format"] == "torch":
        raise TuneError("the chosen row is the torch checkpoint itself; nothing to export")
    if row["precision"] == "int8":
        from edgeseg.assets import resolve_recipe_file
        from edgeseg.quantization import quantize
        from edgeseg.checkpoint import load_checkpoint

        name = str(load_checkpoint(weights)["model_config"].get("name", ""))
        return quantize(weights, row["format"], data=data, recipe=resolve_recipe_file(name, row["format"]), imgsz=row["imgsz"],
                        out=out, overwrite=True).path
    from edgeseg.export import export

    return export(weights, row["format"], row["precision"], row["imgsz"], out=out, data=data, overwrite=True).path


def choice_dict(result: TuneResult) -> dict[str, Any]:
    keys = ("model", "weights", "runtime", "format", "precision", "imgsz", "threads", "fps", "pq", "file_mb")
    return {"choice": {k: result.choice.get(k) for k in keys},
            "runners_up": [{k: r.get(k) for k in keys} for r in result.runners_up],
            "notes": result.notes, "exported": str(result.exported) if result.exported else None}
