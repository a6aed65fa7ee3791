#!/usr/bin/env python3
"""Run on a machine with an NVIDIA GPU: build the TensorRT engine, compare it with torch, print a speed table.

Usage:  python scripts/gpu_check.py [--model models/vb-mini] [--steps 1] [--height 480 --width 640] [--repeat 50]

Steps: (1) export the model to ONNX with the sampler unrolled (or reuse the cached export), (2) build / load the
TensorRT engine (fp16; cached by ONNX hash, TensorRT version and GPU), (3) run torch CUDA fp32, torch CUDA fp16,
torch CUDA fp16 + CUDA graphs, ONNX Runtime (CUDA provider when installed) and TensorRT on the same inputs
(depth + normals + one prompt, one batch), (4) print the decoded-depth AbsRel, normals angle and label agreement
of each against torch fp32, and latency / frames per second. Exits non-zero when a backend misses the parity
bounds (depth AbsRel <= 0.5 %, normals <= 0.5 deg, labels >= 99.5 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

PROMPTS = ["Generate a metric depth map.", "Estimate the surface normals.", "Segment the floor in red."]


def _time(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    for _ in range(3):
        fn()
    sync()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs)


def _decode(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from vb_perception.codecs import decode_depth, decode_normals, decode_semantic
    from vb_perception.pipeline import generated_uint8
    from vb_perception.prompts import parse_prompt

    u8 = generated_uint8(rgb)
    spec = parse_prompt(PROMPTS[2])
    seg = decode_semantic(u8[2], spec.palette, background_rgb=spec.background)  # type: ignore[attr-defined]
    return decode_depth(u8[0]), decode_normals(u8[1]), seg.labels


def main() -> int:
    import torch

    from vb_perception.model.conditioning import tokens_for
    from vb_perception.model.loading import load_generator
    from vb_perception.model.text import TextEncoder
    from vb_perception.offline.export import default_export_path, export_onnx
    from vb_perception.pipeline import default_model_dir, processing_size
    from vb_perception.prompts import parse_prompt
    from vb_perception.runtime import load_backend
    from vb_perception.runtime.unrolled import UnrolledSampler

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--height", type=int, default=480, help="camera height (the processing size follows the model)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU here: run this on the robot / workstation with the GPU", file=sys.stderr)
        return 2
    folder = args.model or default_model_dir()
    model = load_generator(folder, "cuda")
    steps = args.steps or model.config.default_steps
    h, w = processing_size(args.height, args.width, model.config.resolution_px, model.size_multiple)
    cond = model.conditioning([tokens_for(p, parse_prompt(p)) for p in PROMPTS], TextEncoder("cuda"))
    image = torch.rand(3, 3, h, w, device="cuda") * 2 - 1
    noise = torch.randn(3, 3, h, w, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    net = UnrolledSampler(model, steps).eval()
    args_t = (image, noise, *cond)
    feeds = {n: t.cpu().numpy() for n, t in zip(["image", "noise", *model.cond_names], args_t)}
    sync = torch.cuda.synchronize
    results: dict[str, tuple[np.ndarray, float]] = {}
    with torch.no_grad():
        ref = net(*args_t)
        results["torch CUDA fp32"] = (ref.cpu().numpy(), _time(lambda: net(*args_t), args.repeat, sync))
        with torch.autocast("cuda", dtype=torch.float16):
            out = net(*args_t).float()
            results["torch CUDA fp16"] = (out.cpu().numpy(), _time(lambda: net(*args_t), args.repeat, sync))
            static = [a.clone() for a in args_t]
            graph = torch.cuda.CUDAGraph()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    net(*static)
            torch.cuda.current_stream().wait_stream(s)
            with torch.cuda.graph(graph):
                static_out = net(*static)
            graph.replay()
            results["torch CUDA fp16 + CUDA graph"] = (
                static_out.float().cpu().numpy(),
                _time(graph.replay, args.repeat, sync),
            )
    onnx_path = default_export_path(model.config.model_version, steps)
    if not onnx_path.is_file():
        export_onnx(folder, steps, out=onnx_path)
    for name in ("onnxruntime", "tensorrt"):
        try:
            backend = load_backend(onnx_path, name)
        except Exception as exc:  # report and go on: the table shows what ran
            print(f"{name}: skipped ({exc})")
            continue
        label = f"{name} ({getattr(backend, 'providers', ['TensorRT fp16'])[0]})"
        rgb = backend.infer(feeds)["rgb"]
        results[label] = (rgb, _time(lambda b=backend: b.infer(feeds), args.repeat, sync))
    d0, n0, l0 = _decode(results["torch CUDA fp32"][0])
    ok = True
    print(
        f"\n{model.config.model_version}, {steps} step(s), {h}x{w}, batch 3 (depth + normals + 1 prompt), "
        f"{torch.cuda.get_device_name()}\n"
    )
    print("| backend | latency [ms] | frames/s | depth AbsRel vs torch | normals [deg] | labels agree |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, (rgb, ms) in results.items():
        d, n, lab = _decode(rgb)
        valid = np.isfinite(d) & np.isfinite(d0)
        absrel = float(np.mean(np.abs(d[valid] - d0[valid]) / d0[valid]))
        both = np.isfinite(n).all(-1) & np.isfinite(n0).all(-1)
        ang = float(np.degrees(np.arccos(np.clip((n[both] * n0[both]).sum(-1), -1, 1))).mean())
        agree = float(np.mean(lab == l0))
        ok &= absrel <= 0.005 and ang <= 0.5 and agree >= 0.995
        print(f"| {label} | {ms:.2f} | {1000 / ms:.0f} | {absrel:.4%} | {ang:.3f} | {agree:.2%} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
