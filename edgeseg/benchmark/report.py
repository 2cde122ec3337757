"""Benchmark output: Pareto front, student-vs-teacher ratio, JSON, markdown table, FPS-vs-PQ PNG."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edgeseg.benchmark.artifacts import PASSED
from edgeseg.benchmark.measure import HEADLINE_FRAME

# The goals for the student against the teacher a user would otherwise run, in the same
# runtime and precision: >= 15x the FPS at >= 90 % of the teacher's PQ.
GOAL_SPEEDUP = 15.0
GOAL_PQ_SHARE = 90.0


# statuses of results files written before the passed / check failed / export failed wording
_EARLIER_PASSED = ("parity ok", "reference")


def row_passed(row: dict) -> bool:
    """The row's artifact passed its checks (also for results files of earlier edgeseg versions)."""
    return row.get("status") in (PASSED, *_EARLIER_PASSED)


def _measured(row: dict) -> bool:
    return row_passed(row) and row.get("fps") is not None and row.get("pq") is not None


def mark_pareto(rows: list[dict]) -> None:
    """Set ``row["pareto"]``: True when no other measured row is at least as fast *and* at least as
    accurate, and strictly better in one of the two."""
    pts = [r for r in rows if _measured(r)]
    for r in rows:
        r["pareto"] = False
    for r in pts:
        r["pareto"] = not any(o is not r and o["fps"] >= r["fps"] and o["pq"] >= r["pq"]
                              and (o["fps"] > r["fps"] or o["pq"] > r["pq"]) for o in pts)


def student_vs_teacher(rows: list[dict]) -> list[dict]:
    """Per (runtime, precision, input size, threads) where both were measured: the teacher's row
    against the student's (the fastest student when several were benchmarked), FPS ratio on the
    headline frame and forward-only, and the student's PQ as a share of the teacher's. Like is
    compared with like: never a student in one runtime against the teacher in another."""
    out = []
    for t in (r for r in rows if r.get("role") == "teacher" and _measured(r)):
        peers = [r for r in rows if r.get("role") == "student" and _measured(r)
                 and all(r[k] == t[k] for k in ("runtime", "precision", "imgsz", "threads"))]
        if not peers:
            continue
        s = max(peers, key=lambda r: r["fps"])
        speedup = s["fps"] / t["fps"]
        share = 100.0 * s["pq"] / t["pq"] if t["pq"] > 0 else float("inf")
        out.append({"runtime": t["runtime"], "precision": t["precision"], "imgsz": t["imgsz"], "threads": t["threads"],
                    "teacher": t["model"], "teacher_fps": t["fps"], "teacher_forward_ms": t["forward_ms"],
                    "teacher_pq": t["pq"], "student": s["model"], "student_fps": s["fps"],
                    "student_forward_ms": s["forward_ms"], "student_pq": s["pq"],
                    "speedup": round(speedup, 2), "forward_speedup": round(t["forward_ms"] / s["forward_ms"], 2),
                    "pq_share_pct": round(share, 1),
                    "goal": f">= {GOAL_SPEEDUP:g}x at >= {GOAL_PQ_SHARE:g} % of the teacher's PQ",
                    "met": bool(speedup >= GOAL_SPEEDUP and share >= GOAL_PQ_SHARE)})
    return out


def _fmt(v: Any, spec: str = "") -> str:
    if v is None or v == "":
        return ""
    return format(v, spec) if spec else str(v)


def markdown_table(doc: dict) -> str:
    """The rows as a markdown table (failed rows keep their reason), then the teacher comparison."""
    headline = doc.get("timed", {}).get("headline", HEADLINE_FRAME)  # the frame a row's frame_ms / fps are on
    head = (f"| model | runtime | precision | size | threads | status | MB | {headline} ms (p90) | FPS {headline} | "
            "FPS 640x480 | FPS val | forward ms | peak RSS MB | PQ | SQ | RQ | PQ th / st | mIoU | GMACs | eff. % | Pareto |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in doc["rows"]:
        if not row_passed(r):
            lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['imgsz']} | {r['threads']} | "
                         f"{r['status']}: {r['reason'][:160].replace('|', '/')} |" + " |" * 15)
            continue
        th_st = f"{r['pq_things']:.1f} / {r['pq_stuff']:.1f}" if r.get("pq_things") is not None else ""
        lines.append(
            f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['imgsz']} | {r['threads']} | {r['status']} | "
            f"{_fmt(r.get('file_mb'), '.1f')} | {_fmt(r.get('frame_ms'), '.1f')} ({_fmt(r.get('frame_p90_ms'), '.1f')}) | "
            f"{_fmt(r.get('fps'), '.1f')} | {_fmt(r.get('fps_640x480'), '.1f')} | {_fmt(r.get('fps_val'), '.1f')} | "
            f"{_fmt(r.get('forward_ms'), '.1f')} | {_fmt(r.get('peak_rss_mb'), '.0f')} | "
            f"{_fmt(r.get('pq'), '.1f')} | {_fmt(r.get('sq'), '.1f')} | {_fmt(r.get('rq'), '.1f')} | {th_st} | "
            f"{_fmt(r.get('miou'), '.1f')} | {_fmt(r.get('gmacs'), '.2f')} | {_fmt(r.get('efficiency_pct'), '.1f')} | "
            f"{'**yes**' if r.get('pareto') else ''} |")
    if doc.get("student_vs_teacher"):
        lines += ["", "Student against teacher, each in the same runtime, precision, input size and threads:", "",
                  f"| runtime | precision | size | threads | teacher FPS / PQ | student FPS / PQ | FPS ratio ({headline}) | "
                  "forward ratio | PQ share | goal met |", "|---|---|---|---|---|---|---|---|---|---|"]
        for c in doc["student_vs_teacher"]:
            lines.append(f"| {c['runtime']} | {c['precision']} | {c['imgsz']} | {c['threads']} | "
                         f"{c['teacher_fps']:.2f} / {c['teacher_pq']:.1f} | {c['student_fps']:.1f} / {c['student_pq']:.1f} | "
                         f"x{c['speedup']:.1f} | x{c['forward_speedup']:.1f} | {c['pq_share_pct']:.0f} % | "
                         f"{'yes' if c['met'] else 'no'} ({c['goal']}) |")
    m = doc.get("machine", {})
    lines += ["", f"Machine: {m.get('cpu')}, {m.get('cores')} cores ({', '.join(m.get('isa', []))}); measured FP32 GEMM "
              f"peak {m.get('sgemm_gflops_per_core')} GFLOP/s per core. FPS = 1 / median latency of "
              f"`Predictor.predict(frame)` with its defaults (preprocess, runtime, panoptic + instance + semantic "
              f"postprocess at the frame's resolution), on a 1280x720 / 640x480 camera frame and on a val image; "
              f"rows timed interleaved after warm-up."]
    return "\n".join(lines) + "\n"


def pareto_plot(rows: list[dict], path: str | Path, title: str = "edgeseg: FPS against PQ") -> Path | None:
    """FPS (log x) against PQ. Left: every measured row (teacher included). Right: the students
    zoomed in, each point numbered, the numbers listed beside it with FPS and PQ, the Pareto
    front as a step line. Returns None (and writes nothing) when matplotlib is not installed
    (device installs) or when no row was measured (every row failed: the JSON says why)."""
    if not any(_measured(r) for r in rows):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    pts = sorted((r for r in rows if _measured(r)), key=lambda r: (-r["fps"], -r["pq"]))
    colors = {"torch": "tab:gray", "onnxruntime": "tab:blue", "openvino": "tab:purple", "litert": "tab:orange"}
    markers = {1: "o", 2: "s", 4: "^"}
    fig = plt.figure(figsize=(15, 7), dpi=100)
    grid = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.4, 0.9])
    ax_all, ax_zoom, ax_text = fig.add_subplot(grid[0]), fig.add_subplot(grid[1]), fig.add_subplot(grid[2])
    students = [r for r in pts if r.get("role") != "teacher"] or pts
    front = sorted((r for r in pts if r.get("pareto")), key=lambda r: r["fps"])
    lines = []
    for ax, subset, numbered in ((ax_all, pts, False), (ax_zoom, students, True)):
        for r in subset:
            ax.scatter(r["fps"], r["pq"], s=80 if r.get("pareto") else 40, c=colors.get(r["runtime"], "k"),
                       marker=markers.get(r["threads"], "D"), edgecolors="k" if r.get("pareto") else "none", zorder=3)
        zoom_front = [r for r in front if r in subset]
        if zoom_front:
            ax.step([r["fps"] for r in zoom_front], [r["pq"] for r in zoom_front], where="post", color="tab:red",
                    lw=1.2, zorder=2)
        ax.set_xscale("log")
        ax.set_xlabel("FPS: predict() on a 1280x720 frame, median")
        ax.grid(True, which="both", alpha=0.3)
    for n, r in enumerate(students, 1):
        ax_zoom.annotate(str(n), (r["fps"], r["pq"]), textcoords="offset points", xytext=(4, 3 + 7 * (n % 3)),
                         fontsize=8)
        lines.append(f"{n:>2}{'*' if r.get('pareto') else ' '} {r['runtime']} {r['precision']} {r['imgsz']} "
                     f"{r['threads']}t  {r['fps']:.1f} FPS  PQ {r['pq']:.1f}")
    for r in pts:
        if r.get("role") == "teacher":
            ax_all.annotate(f"teacher {r['threads']}t", (r["fps"], r["pq"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
    ax_all.set_ylabel("PQ (val)")
    ax_all.set_title("all rows")
    pqs = [r["pq"] for r in students]
    pad = max(0.5, 0.15 * (max(pqs) - min(pqs)))
    ax_zoom.set_ylim(min(pqs) - pad, max(pqs) + pad)
    ax_zoom.set_title("students (numbered; red: Pareto front)")
    for runtime, c in colors.items():
        if any(r["runtime"] == runtime for r in pts):
            ax_all.scatter([], [], c=c, label=runtime)
    for t, mk in markers.items():
        if any(r["threads"] == t for r in pts):
            ax_all.scatter([], [], c="w", edgecolors="k", marker=mk, label=f"{t} thread(s)")
    ax_all.legend(fontsize=8, loc="lower right")
    ax_text.axis("off")
    ax_text.text(0, 1, "\n".join(lines + ["", "* on the Pareto front"]), va="top", family="monospace", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_record(json_path: str | Path, doc: dict, markdown: str) -> None:
    """A benchmark script's record: ``doc`` as JSON at ``json_path`` and ``markdown`` beside it
    (``.md``), each written atomically."""
    json_path = Path(json_path)
    _atomic_text(json_path, json.dumps(doc, indent=2))
    _atomic_text(json_path.with_suffix(".md"), markdown)


def write_report(doc: dict, out: str | Path, stem: str = "bench") -> dict[str, Path]:
    """``<stem>.json``, ``<stem>.md`` and ``pareto.png`` (if matplotlib is there) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md"}
    _atomic_text(paths["json"], json.dumps(doc, indent=2))
    _atomic_text(paths["md"], markdown_table(doc))
    png = pareto_plot(doc["rows"], out / ("pareto.png" if stem == "bench" else f"{stem}_pareto.png"))
    if png:
        paths["png"] = png
    return paths
