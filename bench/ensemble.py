#!/usr/bin/env python3
"""What averaging several generations buys for depth and normals: a horizontal flip, several noise seeds, both.

Usage:
    python bench/ensemble.py [--model DIR] [--data out/heldout64] [--n 100]

Runs the model (default: the bundled one) on the held-out split (``vb-perception synth --heldout``) with the
samples' focal lengths, as ``eval`` does, and prints a markdown table: members per frame, δ1, AbsRel, RMSE, normals
mean and median angle. Depth members are averaged in log depth, normals as vectors (renormalised); a flipped
member is flipped back (normals' x negated). Then whether the mirror pair's disagreement (per-pixel log depth
difference) could serve as an uncertainty: its rank correlation with the averaged depth's relative error, and AbsRel
after dropping the most uncertain pixels, against an oracle that drops the worst. Last, what the mirror costs per
frame (a 640x480 image, depth + normals + a semantic prompt): ``flip_average`` runs the mirrored depth and normals
as extra rows of the one batched call, against running them as a second call.
"""

from __future__ import annotations

import argparse
import random
from typing import TYPE_CHECKING

import numpy as np
from _timing import median_ms
from numpy.typing import NDArray
from tqdm import tqdm

from vb_perception.codecs import mirror_normals

if TYPE_CHECKING:
    from vb_perception.pipeline import Perception

VARIANTS = {  # name: (members, [(flip, seed offset), ...])
    "one generation": [(False, 0)],
    "+ mirrored": [(False, 0), (True, 0)],
    "2 seeds": [(False, 0), (False, 1)],
    "4 seeds": [(False, 0), (False, 1), (False, 2), (False, 3)],
    "2 seeds x mirrored": [(False, 0), (True, 0), (False, 1), (True, 1)],
}


def _unit(v: NDArray[np.float32]) -> NDArray[np.float32]:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def main() -> None:
    from vb_perception.offline.cache import SampleCache
    from vb_perception.offline.metrics import depth_metrics, normal_metrics, summarize
    from vb_perception.pipeline import Perception
    from vb_perception.prompts import DepthSpec, render_prompt

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    ap.add_argument("--data", default="out/heldout64", help="held-out samples (vb-perception synth --heldout)")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the latency table)")
    ap.add_argument("--repeat", type=int, default=15, help="timed frames per latency row")
    args = ap.parse_args()
    pipe = Perception(args.model, device=args.device)
    cache = SampleCache(args.data)
    rows: dict[str, tuple[list[dict[str, float]], list[dict[str, float]]]] = {k: ([], []) for k in VARIANTS}
    needed = sorted({m for members in VARIANTS.values() for m in members})
    spread, error = [], []  # per pixel: the mirror pair's |log d - log d'|, the averaged depth's relative error
    for i in tqdm(range(min(args.n, len(cache))), desc="ensembles", unit="sample"):
        s = cache[i]
        prompts = [render_prompt(DepthSpec(), rng=random.Random(f"eval/{i}")), "Surface normals"]
        out = {}
        for flip, seed in needed:
            image = np.ascontiguousarray(s.rgb[:, ::-1]) if flip else s.rgb
            depth, normals = pipe(image, prompts, seed=i + 100_000 * seed, fx_px=float(s.k[0, 0]))
            d, n = depth.depth_m, normals.normals
            if flip:
                d, n = d[:, ::-1], mirror_normals(n)
            out[flip, seed] = (d, n)
        pair = np.sqrt(out[False, 0][0] * out[True, 0][0])
        ok = np.isfinite(s.depth_m) & (s.depth_m > 0) & np.isfinite(pair)
        spread.append(np.abs(np.log(out[False, 0][0]) - np.log(out[True, 0][0]))[ok])
        error.append((np.abs(pair - s.depth_m) / s.depth_m)[ok])
        for name, members in VARIANTS.items():
            d = np.exp(np.mean([np.log(out[m][0]) for m in members], axis=0)).astype(np.float32)
            n = _unit(np.sum([out[m][1] for m in members], axis=0)).astype(np.float32)
            rows[name][0].append(depth_metrics(d, s.depth_m))
            rows[name][1].append(normal_metrics(n, s.normals))
    print(
        f"| generations per frame ({pipe.model_version}, {min(args.n, len(cache))} held-out samples) | members | "
        "δ1 | AbsRel | RMSE (m) | normals mean / median |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, (dr, nr) in rows.items():
        d, n = summarize(dr), summarize(nr)
        print(
            f"| {name} | {len(VARIANTS[name])} | {d['delta1']:.3f} | {d['abs_rel']:.3f} | {d['rmse_m']:.2f} | "
            f"{n['mean_deg']:.2f}° / {n['median_deg']:.2f}° |"
        )
    _uncertainty(np.concatenate(spread), np.concatenate(error))
    _latency(pipe, args.repeat)


def _ranks(x: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.argsort(np.argsort(x)).astype(np.float64)


def _uncertainty(spread: NDArray[np.floating], error: NDArray[np.floating]) -> None:
    """The mirror disagreement as an uncertainty: Spearman correlation and a sparsification table."""
    rho = float(np.corrcoef(_ranks(spread), _ranks(error))[0, 1])
    print(f"\nmirror disagreement vs relative error ({error.size} pixels): Spearman {rho:.2f}\n")
    print("| pixels dropped | AbsRel, most disagreeing dropped | oracle (worst dropped) |")
    print("|---:|---:|---:|")
    for frac in (0.0, 0.1, 0.2, 0.5):
        keep = int(error.size * (1.0 - frac))
        by_spread = error[np.argsort(spread, kind="stable")][:keep].mean()
        print(f"| {frac:.0%} | {by_spread:.3f} | {np.sort(error)[:keep].mean():.3f} |")


def _latency(pipe: Perception, repeat: int) -> None:
    """Per-frame latency: plain, the mirror as a second call, the mirror in the same batch (flip_average)."""
    import torch

    from vb_perception.imageio import sample_frame
    from vb_perception.prompts import parse_prompt

    image = sample_frame()[0]
    prompts = ["Generate a metric depth map", "Surface normals", '{"floor": "red", "chair": "blue"}']
    specs = [parse_prompt(p) for p in prompts]
    mirrored = np.ascontiguousarray(image[:, ::-1])
    gen = pipe.generate
    sync = torch.cuda.synchronize if pipe.device.type == "cuda" else None
    rows = {
        "one generation": lambda: gen(image, specs, prompts),
        "+ mirrored, a second call": lambda: (gen(image, specs, prompts), gen(mirrored, specs[:2], prompts[:2])),
        "+ mirrored, same batch (`flip_average`)": lambda: gen(image, specs, prompts, mirror_of=[0, 1]),
    }
    print(f"\n| generation per 640x480 frame, 3 prompts ({pipe.device}) | batch | latency (ms) |")
    print("|---|---:|---:|")
    for (name, fn), batch in zip(rows.items(), ("3", "3 + 2", "5")):
        print(f"| {name} | {batch} | {median_ms(fn, repeat, sync):.0f} |")


if __name__ == "__main__":
    main()
