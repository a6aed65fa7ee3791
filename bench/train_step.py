#!/usr/bin/env python3
"""Where a tuning step's time goes, on the CPU or a GPU: data, text conditioning, forward + losses, backward,
optimizer, EMA; and what ``torch.compile`` buys.

Usage:
    python bench/train_step.py --config config/tune/vb-mini2.yaml --steps 12 [--compile] [--threads 2]
    python bench/train_step.py --config config/tune/vb-mini2-gpu.yaml --device cuda --bf16 --batch 64 256

Uses the run config's model (from ``init_from`` when set), data (its sample cache, made if missing, or live renders
in this process: the ``data`` row is then what one worker process supplies) and losses; the first ``--warmup``
steps (compilation included) are not timed. On a GPU each part ends with a synchronize, so a part's time is its
own. Prints a markdown table of median milliseconds per part and examples per second for each batch size: a step
that takes ``data`` ms per worker needs ``data / (step - data)`` workers to keep up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Any

import torch

PARTS = ("data", "text conditioning", "forward + losses", "backward", "optimizer", "EMA")


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


@contextlib.contextmanager
def _threads(n: int) -> Any:
    """torch's CPU threads set to ``n`` (0: unchanged) inside the block."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure(args: argparse.Namespace, batch: int | None) -> tuple[int, dict[str, float], float, float]:
    """Median milliseconds of each part of a training step at ``batch`` (None: the config's), the seconds the
    warm-up steps took (compilation included) and the milliseconds of a step without data when the parts are not
    synchronized one by one."""
    from diffusers.training_utils import EMAModel

    from vb_perception.model.conditioning import INSTANCE_TOKENS
    from vb_perception.model.text import TextEncoder
    from vb_perception.offline.tune import _Examples, build_model, load_tune_config, tuning_losses

    overrides: dict[str, Any] = {"data.workers": 0}
    if batch:
        overrides["train.batch_size"] = batch
    cfg = load_tune_config(args.config, overrides)
    device = torch.device(args.device)
    model = build_model(cfg).to(device)
    model.train()
    if args.compile:
        model.unet.compile()
    if args.channels_last:
        model.unet.to(memory_format=torch.channels_last)
    data = _Examples(cfg)
    text = TextEncoder(device) if model.uses_minilm else None
    if args.int8_text and text is not None:
        text.model = torch.ao.quantization.quantize_dynamic(text.model, {torch.nn.Linear}, dtype=torch.qint8)
    params = [p for _, p in model.named_trainable()]
    opt = torch.optim.AdamW(params, lr=1e-5)
    ema = EMAModel(params, decay=0.999, foreach=True)  # as training
    losses_of = tuning_losses(model, cfg.train)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)
    min_length = INSTANCE_TOKENS if args.compile else 0  # as training: one token count for a compiled UNet

    def one_step(step: int, batch: Any, mark: Any) -> None:
        """A training step on ``batch``; ``mark()`` at the end of each part after the data."""
        img, tgt, toks, specs = batch
        img, tgt = img.to(device, non_blocking=True), tgt.to(device, non_blocking=True)
        mark()
        cond = model.conditioning(toks, text, min_length=min_length)
        mark()
        with autocast:
            losses = losses_of(model, model, img, tgt, cond, specs, torch.Generator().manual_seed(step), step)
        mark()
        losses["total"].backward()
        mark()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        mark()
        ema.step(params)
        mark()

    def batch_of(step: int) -> Any:
        with _threads(args.data_threads):  # batch worker processes render with one thread each
            return data.batch(step)

    times: dict[str, list[float]] = {k: [] for k in PARTS}
    t_begin = time.perf_counter()
    warmup_s = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            warmup_s = time.perf_counter() - t_begin
        t = [_sync(device)]
        batch = batch_of(step)
        one_step(step, batch, lambda t=t: t.append(_sync(device)))
        if step >= args.warmup:
            for k, a, b in zip(PARTS, t, t[1:]):
                times[k].append((b - a) * 1000.0)
    # The same steps without a synchronize between parts (the data made beforehand, as workers do): on a GPU the
    # host then queues work while earlier kernels run, as in training, so this is the step time training sees.
    ahead = [batch_of(args.warmup + args.steps + k) for k in range(args.steps)]
    t0 = _sync(device)
    for k, batch in enumerate(ahead):
        one_step(args.warmup + args.steps + k, batch, lambda: None)
    pipelined_ms = (_sync(device) - t0) * 1000.0 / max(len(ahead), 1)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return cfg.train.batch_size, medians, warmup_s, pipelined_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/tune/vb-mini2.yaml")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, nargs="*", default=[], help="batch sizes to compare (default: the config's)")
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast for forward + losses, as training on GPUs (tune refuses it on CPUs: README)",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile the UNet (in place: same state_dict keys)")
    ap.add_argument("--channels-last", action="store_true", help="the UNet's weights in channels_last memory format")
    ap.add_argument("--int8-text", action="store_true", help="dynamically quantized (int8) text encoder linears")
    ap.add_argument("--data-threads", type=int, default=0, help="torch threads for the data part (0: --threads)")
    ap.add_argument("--json", help="append one JSON line per batch size to this file (scripts/device_kit.py pick)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu")
    torch.set_num_threads(args.threads)
    measured = [measure(args, b) for b in (args.batch or [None])]
    results = [(b, ms) for b, ms, _, _ in measured]
    flags = [("bf16", args.bf16), ("compiled UNet", args.compile), ("channels_last", args.channels_last)]
    flags.append(("int8 text", args.int8_text))
    mode = ", ".join(k for k, on in flags if on) or "eager"
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU, {args.threads} threads"
    print(f"| part ({mode}, {where}) | " + " | ".join(f"batch {b}" for b, _ in results) + " |")
    print("|---|" + "---:|" * len(results))
    for k in PARTS:
        print(f"| {k} | " + " | ".join(f"{ms[k]:.0f} ms" for _, ms in results) + " |")
    steps = [(b, sum(ms.values()), sum(ms.values()) - ms["data"]) for b, ms in results]
    print("| **step** | " + " | ".join(f"**{s:.0f} ms** ({b / s * 1000:.1f}/s)" for b, s, _ in steps) + " |")
    cells = " | ".join(f"{s:.0f} ms ({b / s * 1000:.1f}/s)" for b, _, s in steps)
    print(f"| step without data (workers prepare it) | {cells} |")
    cells = " | ".join(f"{s:.0f} ms ({b / s * 1000:.1f}/s)" for b, _, _, s in measured)
    print(f"| the same, parts not synchronized (as training runs) | {cells} |")
    if args.json:
        with open(args.json, "a") as f:
            for b, ms, warmup_s, pipelined_ms in measured:
                row = {"batch": b, "compile": args.compile, "bf16": args.bf16, "device": where, "warmup_s": warmup_s}
                row |= {"data_threads": args.data_threads or args.threads, "parts_ms": ms}
                row |= {"pipelined_step_ms": pipelined_ms}
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
