#!/usr/bin/env python3
"""Generator latency and throughput per backend and processing resolution, next to Depth-Anything-V2-Small.

Usage: python bench/runtime.py [--res 64 128 266] [--rounds 4] [--threads 2] [--profile]

One frame = depth + normals + one segmentation prompt in ONE batched call of the exported few-step graph (batch 3),
network only (resizing and decoding are in bench/steps.py's end-to-end figure), in torch, ONNX Runtime fp32 and
its int8 copy (``vb-perception export --int8``). The reference is the Depth-Anything-V2-Small architecture from
``transformers`` (randomly initialised: the same compute as the released weights, which cannot be downloaded here),
one image, depth only, at the same processing resolution (short side rounded to its 14-px patches), in torch. A 4:3
camera (640x480) sets the aspect ratio. ONNX exports for each resolution go to the export cache
(``vb-perception export``); ``--profile`` prints where torch spends the time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

PROMPTS = ["Generate a metric depth map.", "Estimate the surface normals.", "Segment the chair in red."]


def interleaved_ms(fns: dict[str, Callable[[], object]], rounds: int, calls: int = 5) -> dict[str, float]:
    """Median wall time of each call in milliseconds. The calls take turns in ``rounds`` blocks of ``calls`` timed
    calls each, so a slow spell of a shared machine hits all of them alike and the ratios hold. Each block starts
    after a pause and two warm-up calls: ONNX Runtime's and OpenMP's idle worker threads keep spinning for a while
    after a call and would otherwise slow down whichever runtime comes next."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # first calls size arenas and pick kernels
    for _ in range(rounds):
        for name, fn in fns.items():
            time.sleep(0.3)
            for _ in range(2):
                fn()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                runs[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: statistics.median(r) for name, r in runs.items()}


def depth_anything_small() -> object:
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        hidden_size=384, num_attention_heads=6, out_indices=[3, 6, 9, 12], reshape_hidden_states=False, image_size=518
    )
    cfg = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64)
    torch.manual_seed(0)
    return DepthAnythingForDepthEstimation(cfg).eval()


def feeds_for(res: int, multiple: int, cond_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    import torch

    from vb_perception.model.conditioning import batch_tokens, tokens_for
    from vb_perception.model.text import TextEncoder
    from vb_perception.pipeline import processing_size
    from vb_perception.prompts import parse_prompt

    h, w = processing_size(480, 640, res, multiple)
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS]
    cond = batch_tokens(items, TextEncoder(), torch.device("cpu"), camera="camera" in cond_names)
    image = np.random.default_rng(0).uniform(-1, 1, (3, 3, h, w)).astype(np.float32)
    noise = np.random.default_rng(1).standard_normal((3, 3, h, w)).astype(np.float32)
    return {"image": image, "noise": noise} | {n: c.numpy() for n, c in zip(cond_names, cond)}


def main() -> None:
    import torch

    from vb_perception.offline.export import default_export_path, export_onnx
    from vb_perception.offline.quantize import int8_path, quantize_int8
    from vb_perception.pipeline import default_model_dir
    from vb_perception.runtime import load_backend

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--res", type=int, nargs="+", default=[64, 128, 266], help="processing short sides [px]")
    ap.add_argument("--rounds", type=int, default=4, help="blocks of 5 timed calls per backend, taking turns")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="torch profile of the generator at the first --res")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = default_model_dir()
    torch_backend = load_backend(model_dir, "torch")
    version, steps = torch_backend.metadata["model_version"], torch_backend.metadata["steps"]
    m = torch_backend.net.model.size_multiple
    da = depth_anything_small()
    rows = []
    for res in args.res:
        feeds = feeds_for(res, m, torch_backend.net.model.cond_names)
        h, w = feeds["image"].shape[2:]
        onnx_path = default_export_path(f"{version}-opt{h}x{w}", steps)
        if not onnx_path.is_file():
            export_onnx(model_dir, steps, h, w, onnx_path, max_batch=4)
        q_path = int8_path(onnx_path)
        if not q_path.is_file():
            quantize_int8(onnx_path, q_path)  # the CLI default: 16 calibration frames
        ort = load_backend(onnx_path, "onnxruntime", threads=args.threads)
        ort8 = load_backend(q_path, "onnxruntime", threads=args.threads)
        dh, dw = (round(v / 14) * 14 for v in (h * 1.0, w * 1.0))
        pixels = torch.randn(1, 3, max(dh, 14), max(dw, 14))
        with torch.no_grad():
            t = interleaved_ms(
                {
                    "torch": lambda f=feeds: torch_backend.infer(f),
                    "ort": lambda f=feeds, o=ort: o.infer(f),
                    "ort8": lambda f=feeds, o=ort8: o.infer(f),
                    "da": lambda p=pixels: da(pixel_values=p),
                },
                args.rounds,
            )
        t_torch, t_ort, t_ort8, t_da = t["torch"], t["ort"], t["ort8"], t["da"]
        rows.append((res, f"{h}x{w}", f"{dh}x{dw}", t_torch, t_ort, t_ort8, t_da))
    print(f"{version}, {steps} step(s), {args.threads} CPU threads; one frame = depth + normals + 1 prompt (batch 3)\n")
    print(
        "| short side | ours (HxW) | torch [ms] | onnxruntime fp32 [ms] | onnxruntime int8 [ms] | DA-V2-S (HxW) | "
        "DA-V2-S torch [ms] | frames/s ours (fp32 / int8) | frames/s DA-V2-S | ratio fp32 | ratio int8 |"
    )
    print("|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for res, ours, theirs, t_torch, t_ort, t_ort8, t_da in rows:
        best = min(t_torch, t_ort)
        print(
            f"| {res} | {ours} | {t_torch:.1f} | {t_ort:.1f} | {t_ort8:.1f} | {theirs} | {t_da:.1f} | "
            f"{1000 / t_ort:.1f} / {1000 / t_ort8:.1f} | {1000 / t_da:.1f} | {t_da / best:.2f}x | "
            f"{t_da / t_ort8:.2f}x |"
        )
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        feeds = feeds_for(args.res[0], m, torch_backend.net.model.cond_names)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                torch_backend.infer(feeds)
        print("\nwhere torch spends the generator's time (top ops by self CPU time):\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


if __name__ == "__main__":
    main()
