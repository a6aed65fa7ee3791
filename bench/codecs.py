#!/usr/bin/env python3
"""Codec speed at 640x480 on this machine: encode/decode of depth (all colormaps), normals and masks.

Usage: python bench/codecs.py [--repeat N]. Prints a markdown table (median and best of N runs, milliseconds)
and, for reference, the independent ``hilbertmap`` implementation of the same depth encoding when installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from vb_perception.codecs import (
    decode_depth,
    decode_instances,
    decode_normals,
    decode_semantic,
    encode_depth,
    encode_normals,
)
from vb_perception.imageio import sample_frame


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up: caches, lazy imports
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs), min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per row")
    args = parser.parse_args()

    _, depth, _ = sample_frame()  # real 640x480 depth, 19 % invalid
    depth = np.nan_to_num(depth, nan=0.0)
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(480, 640, 3)).astype(np.float32)
    palette = {
        "cat": (255, 0, 0),
        "dog": (0, 0, 255),
        "sign": (192, 128, 192),
        "lock": (255, 255, 0),
        "cup": (0, 255, 0),
    }
    labels = rng.integers(0, 6, (480 // 16, 640 // 16)).repeat(16, 0).repeat(16, 1)
    seg = np.array([(0, 0, 0), *palette.values()], np.uint8)[labels]
    inst = np.zeros((480, 640, 3), np.uint8)
    for i in range(12):
        inst[40 * (i // 4) + 10 : 40 * (i // 4) + 40, 150 * (i % 4) + 10 : 150 * (i % 4) + 130] = rng.integers(
            60, 256, 3
        )

    rows: list[tuple[str, Callable[[], object]]] = []
    for cm in ("hilbert", "gray", "plasma", "viridis", "inferno"):
        rgb = encode_depth(depth, colormap=cm)  # type: ignore[arg-type]
        rows.append((f"encode_depth ({cm})", lambda cm=cm: encode_depth(depth, colormap=cm)))
        rows.append((f"decode_depth ({cm})", lambda rgb=rgb, cm=cm: decode_depth(rgb, colormap=cm)))
    try:
        import hilbertmap

        rgb01 = encode_depth(depth).astype(np.float64) / 255.0
        rows.append(("hilbertmap.depth_to_rgb (reference)", lambda: hilbertmap.depth_to_rgb(depth)))
        rows.append(("hilbertmap.rgb_to_depth (reference)", lambda: hilbertmap.rgb_to_depth(rgb01)))
    except ImportError:
        pass
    nrgb = encode_normals(normals)
    rows.append(("encode_normals", lambda: encode_normals(normals)))
    rows.append(("decode_normals", lambda: decode_normals(nrgb)))
    rows.append(("decode_semantic (5 classes)", lambda: decode_semantic(seg, palette)))
    rows.append(("decode_instances (12 instances)", lambda: decode_instances(inst)))

    print(
        f"Codecs at 640x480, {args.repeat} runs each; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, numpy {np.__version__}\n"
    )
    print("| operation | median ms | best ms |")
    print("|---|---:|---:|")
    for name, fn in rows:
        med, best = _time(fn, args.repeat)
        print(f"| {name} | {med:.1f} | {best:.1f} |")


if __name__ == "__main__":
    main()
