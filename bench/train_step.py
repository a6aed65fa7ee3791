#!/usr/bin/env python3
"""Where a tuning step's time goes, and what ``torch.compile`` buys: batch, forward + losses, backward, optimizer.

Usage:
    python bench/train_step.py --config config/tune/vb-mini2.yaml --steps 12 [--compile] [--threads 2]

Uses the run config's model (from ``init_from`` when set), data (its sample cache, made if missing) and losses, on
batches of the config's size; the first ``--warmup`` steps (compilation included) are not timed. Prints a markdown
table of median milliseconds per part and samples per second.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/tune/vb-mini2.yaml")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (in place: same state_dict keys)")
    ap.add_argument("--channels-last", action="store_true", help="the UNet's weights in channels_last memory format")
    ap.add_argument("--int8-text", action="store_true", help="dynamically quantized (int8) text encoder linears")
    args = ap.parse_args()

    from vb_perception.model.text import TextEncoder
    from vb_perception.offline.tune import _Examples, build_model, load_tune_config, tuning_losses

    torch.set_num_threads(args.threads)
    cfg = load_tune_config(args.config)
    model = build_model(cfg)
    model.train()
    if args.compile:
        model.unet.compile()
    if args.channels_last:
        model.unet.to(memory_format=torch.channels_last)
    data = _Examples(cfg)
    text = TextEncoder("cpu") if model.uses_minilm else None
    if args.int8_text and text is not None:
        text.model = torch.ao.quantization.quantize_dynamic(text.model, {torch.nn.Linear}, dtype=torch.qint8)
    params = [p for _, p in model.named_trainable()]
    opt = torch.optim.AdamW(params, lr=1e-5)
    losses_of = tuning_losses(model, cfg.train)
    parts: dict[str, list[float]] = {"batch": [], "forward + losses": [], "backward": [], "optimizer": []}
    for step in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        img, tgt, toks, specs = data.batch(step)
        cond = model.conditioning(toks, text)
        t1 = time.perf_counter()
        gen = torch.Generator().manual_seed(step)
        losses = losses_of(model, model, img, tgt, cond, specs, gen, step)
        t2 = time.perf_counter()
        losses["total"].backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        t4 = time.perf_counter()
        if step >= args.warmup:
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[k].append(v * 1000.0)
    total = sum(statistics.median(v) for v in parts.values())
    flags = [("compiled UNet", args.compile), ("channels_last", args.channels_last), ("int8 text", args.int8_text)]
    mode = ", ".join(k for k, on in flags if on) or "eager"
    print(f"| part ({mode}, batch {cfg.train.batch_size}, {args.threads} threads) | median ms |")
    print("|---|---:|")
    for k, v in parts.items():
        print(f"| {k} | {statistics.median(v):.0f} |")
    print(f"| **step** | **{total:.0f}** ({cfg.train.batch_size / total * 1000:.1f} samples/s) |")


if __name__ == "__main__":
    main()
