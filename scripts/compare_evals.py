#!/usr/bin/env python3
"""Compare ``vb-perception eval`` reports side by side: the headline metrics as a markdown table.

Usage:
    python scripts/compare_evals.py models/vb-mini/eval_heldout.json out/snaps/x.eval [more reports or folders ...]

A report is an ``eval.json`` or the folder ``eval --out`` wrote it to. Each row is one report (its model version,
and its folder when versions repeat); each column a metric, the best value in bold (higher is better, but for
AbsRel, RMSE and angles). Metrics a report lacks (a depth-only folder has no masks) are left blank.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: (column, path in the report, higher is better)
METRICS: list[tuple[str, tuple[str, ...], bool]] = [
    ("δ1", ("depth", "delta1"), True),
    ("AbsRel", ("depth", "abs_rel"), False),
    ("RMSE (m)", ("depth", "rmse_m"), False),
    ("δ1 aligned", ("depth", "delta1_aligned"), True),
    ("normals mean", ("normals", "mean_deg"), False),
    ("normals median", ("normals", "median_deg"), False),
    ("mIoU", ("semantic", "miou"), True),
    ("cIoU", ("referring", "ciou"), True),
    ("gIoU", ("referring", "giou"), True),
    ("instance F1", ("instances", "f1"), True),
]


def load_report(path: Path) -> dict[str, Any]:
    """An eval report from its JSON file or the folder holding ``eval.json``."""
    file = path / "eval.json" if path.is_dir() else path
    if not file.is_file():
        raise SystemExit(f"compare_evals: no eval report at {file}; run `vb-perception eval --out DIR` first")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise SystemExit(f"compare_evals: {file} is not JSON ({exc})") from exc


def _value(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) and node == node else None  # NaN: blank


def table(paths: list[Path]) -> str:
    """The markdown table of ``paths``' reports."""
    reports = [load_report(p) for p in paths]
    names = [str(r.get("model_version", "?")) for r in reports]
    names = [f"{n} ({p})" if names.count(n) > 1 else n for n, p in zip(names, paths)]
    columns = [(c, path, up) for c, path, up in METRICS if any(_value(r, path) is not None for r in reports)]
    lines = ["| report | " + " | ".join(c for c, _, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    values = [[_value(r, path) for _, path, _ in columns] for r in reports]
    best = []
    for j, (_, _, up) in enumerate(columns):
        present = [row[j] for row in values if row[j] is not None]
        best.append((max if up else min)(present) if len(present) > 1 else None)
    for name, row in zip(names, values):
        cells = []
        for j, (c, _, _) in enumerate(columns):
            v = row[j]
            text = "" if v is None else (f"{v:.2f}°" if "normals" in c else f"{v:.2f}" if "RMSE" in c else f"{v:.3f}")
            cells.append(f"**{text}**" if v is not None and v == best[j] else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", type=Path, help="eval.json files or the folders holding them")
    print(table(ap.parse_args().reports))


if __name__ == "__main__":
    main()
