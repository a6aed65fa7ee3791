#!/usr/bin/env python3
"""Quality and latency against sampling steps: a teacher at N steps and a few-step student at 1, 2 and 4.

Usage:
    python bench/steps.py --model teacher=models/vb-mini:1,2,4,8 \\
        --model student=out/runs/vb-mini-1step/model:1,2,4 --data out/heldout64 --n 100 --out out/steps

Quality comes from ``vb-perception eval`` on the held-out synthetic split (make it with
``vb-perception synth --heldout --n 200 --res 64 --out out/heldout64``). Latency is one frame end to end (resize,
one batched generator call for depth + normals + one segmentation prompt, decoding, resampling to 640x480) on the
shipped TUM frame, median of ``--repeat`` runs on this machine's CPU. Prints a markdown table; writes
``steps.json`` and ``steps.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

PROMPTS = ["Generate a metric depth map.", "Estimate the surface normals.", "Segment the chair in red."]


def latency_ms(model_dir: str, steps: int, repeat: int) -> float:
    from vb_perception.imageio import sample_frame
    from vb_perception.pipeline import Perception

    pipe = Perception(model_dir, steps=steps)
    image = sample_frame()[0]
    pipe(image, PROMPTS)  # warm-up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        pipe(image, PROMPTS)
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs)


def main() -> None:
    import torch

    from vb_perception.offline.evaluate import evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="LABEL=FOLDER:STEPS,STEPS,... (repeatable)")
    ap.add_argument("--data", default="out/heldout64", help="held-out synth folder")
    ap.add_argument("--n", type=int, default=100, help="held-out samples")
    ap.add_argument("--repeat", type=int, default=10, help="latency runs")
    ap.add_argument("--out", default="out/steps", help="output folder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    rows = []
    for item in args.model:
        label, rest = item.split("=", 1)
        folder, steps = rest.rsplit(":", 1)
        for k in (int(s) for s in steps.split(",")):
            r = evaluate(args.data, out / f"{label}-{k}", model_dir=folder, steps=k, n=args.n)
            rows.append(
                {
                    "model": label,
                    "model_version": r["model_version"],
                    "steps": k,
                    "delta1": r["depth"]["delta1"],
                    "abs_rel": r["depth"]["abs_rel"],
                    "normals_mean_deg": r["normals"]["mean_deg"],
                    "semantic_miou": r["semantic"]["miou"],
                    "referring_ciou": r["referring"]["ciou"],
                    "instances_f1": r["instances"]["f1"],
                    "latency_ms": latency_ms(folder, k, args.repeat),
                }
            )
    (out / "steps.json").write_text(
        json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}, indent=1)
    )
    head = (
        "| model | steps | δ1 | AbsRel | normals mean [deg] | semantic mIoU | referring cIoU | instance F1 "
        "| latency [ms] |"
    )
    print(f"{args.n} held-out samples; latency: 640x480 frame, depth + normals + 1 prompt, 2 CPU threads\n")
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} ({r['model_version']}) | {r['steps']} | {r['delta1']:.3f} | {r['abs_rel']:.3f} | "
            f"{r['normals_mean_deg']:.1f} | {r['semantic_miou']:.3f} | {r['referring_ciou']:.3f} | "
            f"{r['instances_f1']:.3f} | {r['latency_ms']:.0f} |"
        )
    _plot(out / "steps.png", rows)
    print(f"\nwrote {out / 'steps.json'} and {out / 'steps.png'}")


def _plot(path: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for label in dict.fromkeys(r["model"] for r in rows):
        sel = [r for r in rows if r["model"] == label]
        for ax, key, name in zip(
            axes, ("delta1", "normals_mean_deg", "latency_ms"), ("depth δ1 ↑", "normals mean [deg] ↓", "latency [ms] ↓")
        ):
            ax.plot([r["steps"] for r in sel], [r[key] for r in sel], "o-", label=label)
            ax.set_xlabel("sampling steps")
            ax.set_title(name, fontsize=9)
            ax.set_xscale("log", base=2)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
