"""Parameters and GMACs at 512 for every config under models/ -> benchmarks/results/model_info.json.

    python benchmarks/model_info.py

Also checks pem_r50_paper against the paper's 35.6M parameters (PEM R50, CVPR 2024).
"""
from __future__ import annotations

import json
from pathlib import Path

from edgeseg.config import load_config
from edgeseg.modeling.complexity import model_info

PAPER_R50_PARAMS_M = 35.6


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    rows = []
    for path in sorted((root / "models").glob("*.yaml")):
        cfg, _ = load_config(path)
        rows.append({"file": f"models/{path.name}", **model_info(cfg, 512)})
    for r in rows:
        if r["config"] == "pem_r50_paper":
            r["paper_params_m"] = PAPER_R50_PARAMS_M
            r["params_vs_paper_pct"] = round(100 * (r["params_m"] / PAPER_R50_PARAMS_M - 1), 2)
    print(f"{'config':<16} {'backbone':<30} {'K':>4} {'params M':>9} {'GMACs@512':>10}")
    for r in rows:
        print(f"{r['config']:<16} {r['backbone']:<30} {r['num_classes']:>4} {r['params_m']:>9.2f} {r['gmacs']:>10.2f}")
    out = root / "benchmarks" / "results" / "model_info.json"
    out.write_text(json.dumps(rows, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
