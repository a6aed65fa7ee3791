"""Deterministic sample streams, the ``synth`` writer (npz + JSON sidecar, worker processes) and a torch dataset.

Sample ``i`` of seed ``s`` is generated from ``numpy.random.SeedSequence([s, i])`` alone, so a sample is the same
whichever worker, batch or run produces it.
"""

from __future__ import annotations

import json
import os
import random
import zipfile
from collections.abc import Collection, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vb_perception.errors import VbPerceptionError
from vb_perception.offline.synth.examples import make_example
from vb_perception.offline.synth.generate import generate_scene
from vb_perception.offline.synth.raycast import Raycaster, make_raycaster
from vb_perception.offline.synth.render import Sample, render_scene

__all__ = ["SynthConfig", "SynthError", "SynthStream", "load_sample", "render_sample", "write_dataset"]

NPZ_KEYS = ("rgb", "depth_m", "normals", "instance_ids", "K")


class SynthError(VbPerceptionError):
    """Synthetic data could not be generated or read."""


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: resolution (square), seed, scene-family weights, ray-casting backend and device."""

    res_px: int = 128
    seed: int = 0
    mix: tuple[tuple[str, float], ...] = (("indoor", 0.45), ("tabletop", 0.25), ("street", 0.3))
    backend: str = "auto"
    device: str = "cpu"


def render_sample(cfg: SynthConfig, index: int, caster: Raycaster | None = None) -> Sample:
    """Sample ``index`` of ``cfg.seed``: the same pixels whichever process renders it."""
    seq = np.random.SeedSequence([cfg.seed, index])
    scene_rng, sensor_rng = (np.random.default_rng(s) for s in seq.spawn(2))
    scene = generate_scene(scene_rng, (cfg.res_px, cfg.res_px), mix=dict(cfg.mix))
    return render_scene(scene, caster or make_raycaster(cfg.backend, cfg.device), sensor_rng, seed=index)


def _prompts(sample: Sample, cfg: SynthConfig, index: int) -> list[dict[str, str]]:
    rng = random.Random(f"{cfg.seed}/{index}/prompts")
    out = []
    for task in ("depth", "normals", "semantic", "instances", "referring"):
        ex = make_example(sample, rng, task=task)
        out.append({"task": ex.spec.task, "prompt": ex.prompt})
    return out


def _write_one(cfg: SynthConfig, index: int, out_dir: Path, fmt: str, caster: Raycaster | None) -> int:
    sample = render_sample(cfg, index, caster)
    stem = out_dir / f"{index:06d}"
    if fmt == "npz":
        np.savez_compressed(
            stem.with_suffix(".npz"),
            rgb=sample.rgb,
            depth_m=sample.depth_m,
            normals=sample.normals,
            instance_ids=sample.instance_ids,
            K=sample.k,
        )
    else:
        from vb_perception.imageio import write_rgb

        write_rgb(stem.with_suffix(".png"), sample.rgb)
        np.save(f"{stem}_depth_m.npy", sample.depth_m)
        np.save(f"{stem}_normals.npy", sample.normals)
        np.save(f"{stem}_instance_ids.npy", sample.instance_ids)
    sidecar = {
        "index": index,
        "seed": cfg.seed,
        "family": sample.family,
        "K": sample.k.tolist(),
        "instances": [i.to_json() for i in sample.instances],
        "prompts": _prompts(sample, cfg, index),
    }
    stem.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    return index


_WORKER_CASTER: Raycaster | None = None


def _worker_init(cfg: SynthConfig) -> None:
    import torch

    torch.set_num_threads(1)
    global _WORKER_CASTER
    _WORKER_CASTER = make_raycaster(cfg.backend, cfg.device)


def _worker_write(args: tuple[SynthConfig, int, Path, str]) -> int:
    cfg, index, out_dir, fmt = args
    return _write_one(cfg, index, out_dir, fmt, _WORKER_CASTER)


def write_dataset(
    cfg: SynthConfig,
    n: int,
    out_dir: Path,
    fmt: str = "npz",
    workers: int | None = None,
    progress: bool = True,
    skip: Collection[int] = (),
) -> float:
    """Render samples 0..n-1 into ``out_dir`` (``<index>.npz`` + ``<index>.json``), except those in ``skip`` (already
    there); returns samples per second."""
    import time

    from tqdm import tqdm

    if fmt not in ("npz", "npy"):
        raise SynthError(f"unknown format {fmt!r}; use npz (one file per sample) or npy (png + npy files)")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps({"n": n, "format": fmt, **cfg.__dict__}, indent=1) + "\n")
    workers = workers or min(os.cpu_count() or 1, 8)
    start = time.perf_counter()
    skipped = set(skip)
    todo = [i for i in range(n) if i not in skipped]
    bar = tqdm(total=len(todo), desc="synth", unit="sample", disable=not progress)
    if workers <= 1 or len(todo) < 64:  # worker start-up (~5 s each) only pays off for larger batches
        caster = make_raycaster(cfg.backend, cfg.device)
        for i in todo:
            _write_one(cfg, i, out_dir, fmt, caster)
            bar.update()
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(
            workers, mp_context=mp.get_context("spawn"), initializer=_worker_init, initargs=(cfg,)
        ) as pool:
            for _ in pool.map(_worker_write, [(cfg, i, out_dir, fmt) for i in todo], chunksize=4):
                bar.update()
    bar.close()
    return len(todo) / max(time.perf_counter() - start, 1e-9)


def load_sample(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of one ``.npz`` written by ``synth`` (keys :data:`NPZ_KEYS`), checked; pickle is never allowed."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SynthError(f"{p}: not a readable sample ({exc}); re-generate it with vb-perception synth") from exc
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise SynthError(f"{p}: missing keys {missing}; a synth sample has {list(NPZ_KEYS)}")
    return arrays


class SynthStream:
    """An endless (or ``n``-long) stream of training examples for one worker; wrap it in a torch
    ``IterableDataset`` with :meth:`as_torch_dataset`. Worker ``w`` of ``W`` takes indices ``w, w + W, ...``."""

    def __init__(self, cfg: SynthConfig, n: int | None = None, task_mix: dict[str, float] | None = None) -> None:
        self.cfg, self.n, self.task_mix = cfg, n, task_mix

    def examples(self, worker: int = 0, workers: int = 1) -> Iterator[dict[str, object]]:
        caster = make_raycaster(self.cfg.backend, self.cfg.device)
        index = worker
        while self.n is None or index < self.n:
            sample = render_sample(self.cfg, index, caster)
            ex = make_example(sample, random.Random(f"{self.cfg.seed}/{index}/train"), mix=self.task_mix)
            yield {"index": index, "image": ex.image, "prompt": ex.prompt, "task": ex.spec.task, "target": ex.target}
            index += workers

    def as_torch_dataset(self):  # type: ignore[no-untyped-def]
        import torch

        stream = self

        class _Dataset(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
            def __iter__(self):  # type: ignore[no-untyped-def]
                info = torch.utils.data.get_worker_info()
                return stream.examples(info.id if info else 0, info.num_workers if info else 1)

        return _Dataset()
