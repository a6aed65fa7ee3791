#!/usr/bin/env python3
"""Synthetic data throughput at 128x128: samples per second per ray-casting backend and process count.

Usage: python bench/synth.py [--n 200] [--res 128]. Steady state: worker start-up and warm-up are not counted.
Rendering only (scene generation, ray casting, shading with shadows, sensor effects, attributes); writing npz files
with `vb-perception synth` adds compression on top.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from vb_perception.offline.synth.dataset import SynthConfig, render_sample
from vb_perception.offline.synth.raycast import make_raycaster

_CASTER = None


def _init(backend: str) -> None:
    global _CASTER
    torch.set_num_threads(1)
    _CASTER = make_raycaster(backend)


def _render(args: tuple[SynthConfig, int]) -> int:
    cfg, i = args
    render_sample(cfg, i, _CASTER)
    return i


def _single(cfg: SynthConfig, n: int) -> float:
    caster = make_raycaster(cfg.backend)
    for i in range(3):
        render_sample(cfg, 10_000 + i, caster)  # warm-up: imports, caches
    t0 = time.perf_counter()
    for i in range(n):
        render_sample(cfg, i, caster)
    return n / (time.perf_counter() - t0)


def _pool(cfg: SynthConfig, n: int, workers: int) -> float:
    with ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=_init, initargs=(cfg.backend,)
    ) as pool:
        list(pool.map(_render, [(cfg, 10_000 + i) for i in range(4 * workers)]))  # warm-up every worker
        t0 = time.perf_counter()
        list(pool.map(_render, [(cfg, i) for i in range(n)], chunksize=4))
        return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="samples per row")
    parser.add_argument("--res", type=int, default=128, help="image size (square)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"Synthetic samples at {args.res}x{args.res}, {args.n} per row; {platform.machine()}, {cores} cores\n")
    print("| backend | processes | samples/s |")
    print("|---|---:|---:|")
    torch.set_num_threads(1)
    for backend, n in (("open3d", args.n), ("torch", max(args.n // 4, 10))):
        print(f"| {backend} (CPU) | 1 | {_single(SynthConfig(res_px=args.res, backend=backend), n):.1f} |", flush=True)
    if cores > 1:
        rate = _pool(SynthConfig(res_px=args.res, backend="open3d"), args.n, cores)
        print(f"| open3d (CPU) | {cores} | {rate:.1f} |")


if __name__ == "__main__":
    main()
