#!/usr/bin/env python3
"""Plot training runs' ``metrics.csv``: the loss and its parts (smoothed), the learning rate and the throughput,
against the examples seen. Several runs are drawn one after the other, as a bundle's segments follow each other.

Usage: python scripts/plot_metrics.py RUN_OR_CSV [RUN_OR_CSV ...] [--batch 64] [--out docs/gpu_runs.png]

A run folder stands for its ``metrics.csv``. ``--batch`` is the runs' batch size (examples per step).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

PARTS = ("loss", "rgb", "depth_curve", "depth_log", "normals_cos", "seg_ce")


def read(path: Path) -> dict[str, np.ndarray]:
    """A metrics.csv's columns as float arrays."""
    csv_path = path / "metrics.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise SystemExit(f"{path}: no metrics.csv (give a run folder or the CSV itself)")
    with csv_path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit()]
    if not rows:
        raise SystemExit(f"{csv_path}: no rows yet")
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if all(r.get(k) not in (None, "") for r in rows)}


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` rows (shorter at the start)."""
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot(runs: list[tuple[str, dict[str, np.ndarray]]], batch: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    seen = 0.0  # examples of the runs drawn so far: each run starts where the one before ended
    colours = {part: f"C{i}" for i, part in enumerate(PARTS)}
    for r, (name, m) in enumerate(runs):
        ls = ("-", "--", ":", "-.")[r % 4]
        step = m["step"]
        log_every = step[1] - step[0] if len(step) > 1 else 0  # the first row comes one logging interval in
        examples = seen + (step - step[0] + log_every) * batch
        x = examples / 1000
        for part in PARTS:
            if part in m:
                label = part if r == 0 else None  # one legend entry per part; runs differ by line style
                lw = 1.4 if part == "loss" else 0.9
                axes[0].plot(x, smooth(m[part], 10), color=colours[part], ls=ls, lw=lw, label=label)
        axes[1].plot(x, m["lr"], color="k", ls=ls, label=name)
        axes[2].plot(x, m["samples_per_s"], color="k", ls=ls, lw=0.9, label=name)
        seen = float(examples[-1])
        for ax in axes:
            ax.axvline(x[0], color="grey", lw=0.5, ls=":")
    axes[0].set_title("loss and its parts (moving average of 10 rows)")
    axes[0].set_yscale("log")
    axes[1].set_title("learning rate")
    axes[2].set_title("examples per second")
    for ax in axes:
        ax.set_xlabel("examples seen in these runs [thousands]")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--batch", type=int, default=64, help="examples per step")
    ap.add_argument("--names", nargs="*", default=None, help="a label per run (default: folder names)")
    ap.add_argument("--out", type=Path, default=Path("metrics.png"))
    args = ap.parse_args()
    names = args.names or [p.stem if p.is_file() else p.name for p in args.runs]
    if len(names) != len(args.runs):
        raise SystemExit(f"--names: {len(names)} names for {len(args.runs)} runs")
    plot([(n, read(p)) for n, p in zip(names, args.runs)], args.batch, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
