#!/usr/bin/env python3
"""Plot the bundled model's held-out metrics against the examples it trained on, one point per bundled checkpoint.

Usage: python scripts/progress_plot.py [--out docs/bundle_progress.png]

Every bundle commits ``models/vb-mini/config.json`` (its version, examples seen and training wall time) with the
``eval_heldout.json`` that ``scripts/bundle.py`` made for it (100 held-out samples, 1 step), so the repository's git
history holds the whole series; this walks it, prints a table and draws one panel per metric with the issue's target
as a dashed line. The x axis counts training examples, not hours: the training ran on 2 CPU cores and on lent GPUs
(about 37x the CPU's examples per second), so wall time no longer measures it. Run it in a git checkout after bundling
a new checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

BUNDLE = "models/vb-mini"

#: (panel title, path into eval_heldout.json, target, higher is better)
METRICS = (
    ("depth δ1", ("depth", "delta1"), 0.97, True),
    ("depth AbsRel", ("depth", "abs_rel"), 0.05, False),
    ("normals mean angle [deg]", ("normals", "mean_deg"), 8.0, False),
    ("semantic mIoU", ("semantic", "miou"), 0.85, True),
    ("referring cIoU", ("referring", "ciou"), 0.85, True),
    ("instance F1 @ IoU 0.5", ("instances", "f1"), None, True),
)


@dataclass(frozen=True)
class Point:
    version: str
    commit: str
    train_h: float
    examples: int
    metrics: dict[str, float]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def history(root: Path = Path(".")) -> list[Point]:
    """One point per bundled version (its first commit) in the git checkout ``root``, oldest first; commits without
    a held-out report are skipped. A commit that brings back an earlier version (a bundle undone) drops the versions
    bundled after it: they are no longer in the bundle's lineage."""
    points: dict[str, Point] = {}
    for commit in reversed(_git(root, "log", "--format=%H", "--", f"{BUNDLE}/eval_heldout.json").split()):
        try:
            config = json.loads(_git(root, "show", f"{commit}:{BUNDLE}/config.json"))
            report = json.loads(_git(root, "show", f"{commit}:{BUNDLE}/eval_heldout.json"))
        except (subprocess.CalledProcessError, json.JSONDecodeError):
            continue
        version, notes = config.get("model_version", "?"), config.get("notes", {})
        if version in points:  # the same bundle again (new reports), or an earlier one back: later ones undone
            versions = list(points)
            points = {v: points[v] for v in versions[: versions.index(version) + 1]}
            continue
        if report.get("steps", 1) != 1 or "train_wall_s" not in notes:
            continue
        values = {}
        for title, (group, key), _, _ in METRICS:
            value = report.get(group, {}).get(key)
            if isinstance(value, (int, float)):
                values[title] = float(value)
        points[version] = Point(version, commit[:7], notes["train_wall_s"] / 3600, int(notes["samples_seen"]), values)
    return sorted(points.values(), key=lambda p: p.train_h)


def plot(points: list[Point], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (title, _, target, higher) in zip(axes.flat, METRICS):
        xs = [p.examples / 1000 for p in points if title in p.metrics]
        ys = [p.metrics[title] for p in points if title in p.metrics]
        ax.plot(xs, ys, "o-", color="tab:blue")
        if xs:
            ax.annotate(points[-1].version, (xs[-1], ys[-1]), textcoords="offset points", xytext=(-70, -14), fontsize=8)
        if target is not None:
            ax.axhline(target, color="tab:green", ls="--", lw=1, label=f"target {'≥' if higher else '≤'} {target:g}")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("training examples seen [thousands]")
        ax.grid(alpha=0.3)
    fig.suptitle("bundled vb-mini checkpoints on the held-out synthetic split (100 samples, 1 step)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/bundle_progress.png"))
    args = parser.parse_args()
    points = history()
    if not points:
        raise SystemExit(f"no bundled checkpoint with a held-out report in this checkout's history of {BUNDLE}")
    names = [m[0] for m in METRICS]
    print("| version | hours | examples | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for p in points:
        cells = " | ".join(f"{p.metrics[n]:.3f}" if n in p.metrics else "—" for n in names)
        print(f"| {p.version} | {p.train_h:.1f} | {p.examples} | {cells} |")
    plot(points, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
