"""Instruction tuning of the generator on synthetic data: ``vb-perception tune --config config/tune/<name>.yaml``.

Runs on accelerate (plain CPU here; ``accelerate launch`` for several GPUs with no code change). A run folder holds
the resolved config, ``metrics.csv``, PNG panels, a resumable checkpoint (safetensors + JSON, no pickle) and the
EMA model in ``model/`` (loadable with ``load_generator``). Running the same command again resumes.

``base: PATH`` tunes a pretrained Stable-Diffusion-family checkpoint instead of the bundled architecture
(:mod:`vb_perception.model.latent`); the training loop here is shared with ``distill`` (:mod:`.distill`).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vb_perception.errors import VbPerceptionError
from vb_perception.model.base import Generator
from vb_perception.model.conditioning import INSTANCE_TOKENS, PromptTokens, focal_ratio, tokens_for
from vb_perception.model.generator import GeneratorConfig, VBGenerator
from vb_perception.model.text import TextEncoder
from vb_perception.offline.synth.augment import hue_rotate
from vb_perception.offline.synth.dataset import SynthConfig
from vb_perception.offline.synth.examples import DEFAULT_TASK_MIX, make_example
from vb_perception.prompts import DepthSpec, TaskSpec

__all__ = ["TrainConfig", "TuneConfig", "TuneError", "load_tune_config", "run_tune"]


class TuneError(VbPerceptionError):
    """A tuning config or run folder is invalid."""


@dataclass(frozen=True)
class DataConfig:
    """Where samples come from: a pre-rendered cache (CPU) or live rendering (``cache_dir: null``, GPU)."""

    res_px: int = 64
    seed: int = 1000
    cache_dir: str | None = "out/cache/synth64"
    cache_size: int = 20000
    mix: dict[str, float] = field(default_factory=lambda: {"indoor": 0.45, "tabletop": 0.25, "street": 0.3})
    task_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TASK_MIX))
    backend: str = "auto"
    device: str = "cpu"
    workers: int = 0  # processes preparing batches ahead of the training step (0: in the training process)
    examples_per_render: int = 1  # live rendering: training examples drawn from each render (each its own task)
    #: models with focal conditioning: the share of examples trained without the focal length (an unknown camera),
    #: so the model also works where none is given (images without camera_info)
    focal_dropout: float = 0.25
    #: the share of depth and normals examples whose camera image (not the target) gets a random hue rotation, so
    #: depth cannot lean on object colour (offline/synth/augment.py); segmentation examples are never recoloured
    hue_aug: float = 0.0

    def __post_init__(self) -> None:
        for name in ("focal_dropout", "hue_aug"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise TuneError(f"data.{name} is {getattr(self, name)}; use a share in [0, 1]")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_steps: int = 20000
    ema_decay: float = 0.999
    #: False: the EMA averages at ema_decay from the first step. For runs that start from a trained model
    #: (init_from): the exports then stay near it while a new optimizer settles, instead of following the raw weights.
    ema_warmup: bool = True
    single_step_prob: float = 0.6  # share of examples trained at t = T (the one-step case)
    depth_curve_weight: float = 2.0
    #: L1 on log depth (metres, both clamped to [LOG_DEPTH_MIN_M, LOG_DEPTH_MAX_M]; targets beyond that ignored):
    #: weights every range by its relative error, as AbsRel and delta1 do. The curve's L1 alone weights 0.5 m
    #: about 3x less than 5 m and 50 m about 5x less.
    depth_log_weight: float = 0.0
    normals_cos_weight: float = 0.5
    #: models with the depth path head: MSE between its free RGB and the target colour of depth prompts in the
    #: paper's encoding, logged within ``rgb``. Without it the free RGB learns only through its projection onto the
    #: walk, which moves it along the edge it is nearest to, never across: near pixels whose free colour drifted
    #: towards magenta stay far (README: where near pixels go far).
    depth_free_rgb_weight: float = 0.0
    #: models with the depth path head: > 0 gives its projection of the free RGB onto the walk the gradient of a
    #: soft projection (weights softmax(-squared distance / this) over the 7 edges), the values unchanged
    #: (straight-through), so a colour hedged between dark red and magenta can cross to the edge the loss wants.
    #: 0.05 mixes two edges whose squared distances differ by less than about 0.1
    depth_soft_gradient: float = 0.0
    seg_ce_weight: float = 0.5  # cross-entropy on the palette head's logits (models with palette_head_dim)
    seg_dice_weight: float = 0.0  # soft Dice per requested class (small objects and referring regions count)
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    panel_every: int = 500
    log_every: int = 10
    seed: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = torch's default
    max_wall_s: float = 0.0  # stop this invocation (checkpoint + export) after this many seconds; 0 = no limit
    # "bf16" / "fp16" autocast on GPUs (accelerate), losses in fp32. CPUs train in fp32 and refuse the others: bf16
    # autocast ran 1.4x faster on these AVX-512 BF16 cores but lost metric depth (README: bf16 on the CPU)
    mixed_precision: str = "no"
    # "cosine": from lr down to lr/10 over max_steps. "wsd" (warm-up, stable, decay): lr until the last decay_steps
    # steps, then linearly to zero at max_steps; a copy of a run folder resumed with a larger max_steps and "wsd" is a
    # cool-down branch, while the original run goes on at full lr.
    lr_schedule: str = "cosine"
    decay_steps: int = 0
    # With max_wall_s: the lr falls linearly to zero over this invocation's last decay_wall_s seconds (a cool-down
    # for runs bounded by time rather than steps, such as a lent GPU's); 0 = off.
    decay_wall_s: float = 0.0
    #: torch.compile the UNet (in place, so checkpoints keep their keys). On a GPU, where this small model's step is
    #: bound by the host issuing thousands of small kernels, fusing them can pay for the minute or so it costs at
    #: the first step; on these CPU cores it does not (README: training speed).
    compile: bool = False

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML reads a bare `no` as false
            object.__setattr__(self, "mixed_precision", "no")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise TuneError(f"train.mixed_precision is {self.mixed_precision!r}; use 'no', 'bf16' or 'fp16'")
        if self.lr_schedule not in ("cosine", "wsd"):
            raise TuneError(f"train.lr_schedule is {self.lr_schedule!r}; use 'cosine' or 'wsd'")
        if self.decay_steps < 0 or self.decay_steps > self.max_steps:
            raise TuneError(f"train.decay_steps is {self.decay_steps}; use 0..max_steps ({self.max_steps})")
        if self.depth_soft_gradient < 0:
            raise TuneError(
                f"train.depth_soft_gradient is {self.depth_soft_gradient}; use 0 (off) or a temperature > 0"
            )
        if self.decay_wall_s and not 0 < self.decay_wall_s <= self.max_wall_s:
            raise TuneError(
                f"train.decay_wall_s is {self.decay_wall_s} with train.max_wall_s {self.max_wall_s}; "
                "set max_wall_s and a decay_wall_s in 0..max_wall_s"
            )

    def learning_rate(self, step: int) -> float:
        """The learning rate of training step ``step`` (0-based): linear warm-up, then the schedule."""
        warm = min(1.0, (step + 1) / max(self.warmup_steps, 1))
        if self.lr_schedule == "wsd":
            left = self.max_steps - step
            return self.lr * warm * (min(1.0, left / self.decay_steps) if self.decay_steps else 1.0)
        return self.lr * warm * (0.5 * (1 + math.cos(math.pi * min(step / self.max_steps, 1.0))) * 0.9 + 0.1)

    def wall_factor(self, elapsed_s: float) -> float:
        """The factor decay_wall_s puts on the lr after ``elapsed_s`` seconds of this invocation (1 when off)."""
        if not self.decay_wall_s:
            return 1.0
        return min(1.0, max(0.0, (self.max_wall_s - elapsed_s) / self.decay_wall_s))


@dataclass(frozen=True)
class TuneConfig:
    name: str
    run_dir: str
    model: GeneratorConfig
    data: DataConfig
    train: TrainConfig
    init_from: str | None = None  # a model folder to start from (e.g. the bundled model)
    base: str | None = None  # a local diffusers SD-family checkpoint to instruction-tune (latent model)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TuneError(f"{where}: unknown keys {unknown}; allowed: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) and k != "mix" else v for k, v in values.items()})


def read_config(path: str | Path, overrides: dict[str, Any] | None, allowed: set[str], examples: str) -> dict[str, Any]:
    """A YAML run config with ``overrides`` (dotted keys such as ``train.max_steps``) applied; only ``allowed``
    top-level keys."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TuneError(f"{p}: no such config; see {examples} for examples")
    raw = yaml.safe_load(p.read_text()) or {}
    for key, value in (overrides or {}).items():
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if set(raw) - allowed:
        raise TuneError(f"{p}: unknown top-level keys {sorted(set(raw) - allowed)}; allowed: {sorted(allowed)}")
    return raw


def load_tune_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TuneConfig:
    """Read a YAML tuning config; ``overrides`` maps dotted keys (``train.max_steps``) to values."""
    p = Path(path)
    allowed = {"name", "run_dir", "model", "data", "train", "init_from", "base"}
    raw = read_config(p, overrides, allowed, "config/tune/")
    return TuneConfig(
        name=str(raw.get("name", p.stem)),
        run_dir=str(raw.get("run_dir", f"out/runs/{p.stem}")),
        model=_build(GeneratorConfig, raw.get("model", {}), f"{p}: model"),
        data=_build(DataConfig, raw.get("data", {}), f"{p}: data"),
        train=_build(TrainConfig, raw.get("train", {}), f"{p}: train"),
        init_from=raw.get("init_from"),
        base=raw.get("base"),
    )


# ------------------------------------------------------------------------------------------------ data


class _Examples:
    """Random training examples: cached samples (or live renders) + a random task, prompt and target each."""

    def __init__(self, cfg: TuneConfig | Any) -> None:
        self.cfg = cfg
        synth = SynthConfig(
            res_px=cfg.data.res_px,
            seed=cfg.data.seed,
            mix=tuple(cfg.data.mix.items()),
            backend=cfg.data.backend,
            device=cfg.data.device,
        )
        self.synth = synth
        self.cache = None
        if cfg.data.cache_dir:
            from vb_perception.offline.cache import ensure_cache

            self.cache = ensure_cache(cfg.data.cache_dir, synth, cfg.data.cache_size)
        self._caster: Any = None  # made on first use, in the process that renders (batch workers included)
        self._last: tuple[int, Any] | None = None  # the latest live render, shared by examples_per_render slots

    def __getstate__(self) -> dict[str, Any]:  # batch workers make their own ray caster
        return {**self.__dict__, "_caster": None, "_last": None}

    def sample(self, rng: random.Random, index: int) -> Any:
        """A cached sample drawn with ``rng``, or (no cache) the live render of example ``index`` (one render serves
        ``examples_per_render`` consecutive examples)."""
        if self.cache is not None:
            return self.cache[rng.randrange(len(self.cache))]
        from vb_perception.offline.synth.dataset import render_sample
        from vb_perception.offline.synth.raycast import make_raycaster

        render = index // max(1, self.cfg.data.examples_per_render)
        if self._last is None or self._last[0] != render:
            if self._caster is None:
                self._caster = make_raycaster(self.cfg.data.backend, self.cfg.data.device)
            self._last = (render, render_sample(self.synth, render, self._caster))
        return self._last[1]

    def get(self, step: int, slot: int) -> tuple[np.ndarray, np.ndarray, PromptTokens, TaskSpec]:
        rng = random.Random(f"{self.cfg.train.seed}/{step}/{slot}")
        sample = self.sample(rng, step * self.cfg.train.batch_size + slot)
        ex = make_example(sample, rng, mix=self.cfg.data.task_mix)
        # Horizontal flip (image, target and, for normals, the x component); not for referring prompts, whose
        # expressions may say "left" or "right".
        if ex.spec.task != "referring" and rng.random() < 0.5:
            image, target = ex.image[:, ::-1], ex.target[:, ::-1]
            if ex.spec.task == "normals":
                target = target.copy()
                target[..., 0] = 255 - target[..., 0]
            ex_image, ex_target = np.ascontiguousarray(image), np.ascontiguousarray(target)
        else:
            ex_image, ex_target = ex.image, ex.target
        # Hue rotation of depth / normals inputs, from its own random stream (the other examples stay the same).
        if self.cfg.data.hue_aug and ex.spec.task in ("depth", "normals"):
            hue = random.Random(f"{self.cfg.train.seed}/{step}/{slot}/hue")
            if hue.random() < self.cfg.data.hue_aug:
                ex_image = hue_rotate(ex_image, hue.uniform(0.0, 2.0 * math.pi))
        # The camera's focal ratio (a flip keeps it), withheld for focal_dropout of the examples. Its own random stream:
        # the examples stay the same whatever the model does with it.
        known = random.Random(f"{self.cfg.train.seed}/{step}/{slot}/focal").random() >= self.cfg.data.focal_dropout
        focal = focal_ratio(float(sample.k[0, 0]), *ex_image.shape[:2]) if known else None
        return ex_image, ex_target, tokens_for(ex.prompt, ex.spec, focal), ex.spec

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, list[PromptTokens], list[TaskSpec]]:
        items = [self.get(step, i) for i in range(self.cfg.train.batch_size)]
        img = torch.from_numpy(np.stack([i[0] for i in items])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        tgt = torch.from_numpy(np.stack([i[1] for i in items])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return img, tgt, [i[2] for i in items], [i[3] for i in items]


class _StepBatches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Batches ``start``, ``start + 1``, ... of ``data`` for a ``DataLoader`` whose workers prepare them ahead."""

    def __init__(self, data: _Examples, start: int, stop: int) -> None:
        self.data, self.start, self.stop = data, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __getitem__(self, i: int) -> Any:
        return self.data.batch(self.start + i)


def step_batches(data: _Examples, start: int, stop: int, workers: int, pin_memory: bool = False) -> Any:
    """The training batches from step ``start`` on: made in this process, or by ``workers`` processes ahead of the
    step (the same batches either way: each depends only on its step). ``pin_memory``: in page-locked memory, for
    copies to a GPU that do not block (worker batches only)."""
    if workers <= 0:
        return (data.batch(s) for s in range(start, stop))
    loader = torch.utils.data.DataLoader(
        _StepBatches(data, start, stop),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2,
        pin_memory=pin_memory,
        multiprocessing_context="spawn",
    )
    return iter(loader)


# ------------------------------------------------------------------------------------------------ losses


def _losses(
    pred: torch.Tensor, target: torch.Tensor, specs: list[TaskSpec], cfg: TrainConfig
) -> dict[str, torch.Tensor]:
    from vb_perception.codecs import torch_ops

    out = {"rgb": torch.nn.functional.mse_loss(pred, target)}
    p01, t01 = (pred.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    depth = torch.tensor([isinstance(s, DepthSpec) and s.colormap == "hilbert" for s in specs], device=pred.device)
    normals = torch.tensor([s.task == "normals" for s in specs], device=pred.device)
    zero = pred.sum() * 0.0
    if depth.any():  # L1 on the curved depth value the RGB decodes to: what evaluation measures, not colour
        f_pred = torch_ops.depth_to_curve(torch_ops.decode_depth(p01[depth], channel_dim=1))
        f_true = torch_ops.depth_to_curve(torch_ops.decode_depth(t01[depth], channel_dim=1))
        out["depth_curve"] = (f_pred - f_true).abs().mean() * cfg.depth_curve_weight
        out["depth_log"] = _log_depth_l1(f_pred, f_true) * cfg.depth_log_weight if cfg.depth_log_weight else zero
    else:
        out["depth_curve"] = out["depth_log"] = zero
    if normals.any():
        n_pred = torch_ops.decode_normals(p01[normals], channel_dim=1)
        n_true = torch_ops.decode_normals(t01[normals], channel_dim=1)
        out["normals_cos"] = (1.0 - (n_pred * n_true).sum(1)).mean() * cfg.normals_cos_weight
    else:
        out["normals_cos"] = zero
    out["total"] = out["rgb"] + out["depth_curve"] + out["depth_log"] + out["normals_cos"]
    return out


#: The range :func:`_log_depth_l1` compares depths over: below, the log's slope explodes; above, targets are sky.
LOG_DEPTH_MIN_M, LOG_DEPTH_MAX_M = 0.05, 100.0


@functools.lru_cache(maxsize=1)
def _log_depth_curve_limits() -> tuple[float, float]:
    """[LOG_DEPTH_MIN_M, LOG_DEPTH_MAX_M] as curve values (computed once)."""
    from vb_perception.codecs import torch_ops

    lo, hi = (float(torch_ops.depth_to_curve(torch.tensor(v))) for v in (LOG_DEPTH_MIN_M, LOG_DEPTH_MAX_M))
    return lo, hi


def _log_depth_l1(f_pred: torch.Tensor, f_true: torch.Tensor) -> torch.Tensor:
    """Mean ``|log d_pred - log d_true|`` over target pixels inside [LOG_DEPTH_MIN_M, LOG_DEPTH_MAX_M], from the
    curve values; 0 when no pixel is."""
    from vb_perception.codecs import torch_ops

    lo, hi = _log_depth_curve_limits()
    keep = f_true <= hi
    d_pred = torch_ops.curve_to_depth(f_pred.clamp(lo, hi))
    d_true = torch_ops.curve_to_depth(f_true.clamp(lo, hi))
    err = (d_pred.log() - d_true.log()).abs() * keep
    return err.sum() / keep.sum().clamp_min(1)


def palette_targets(
    aux: dict[str, torch.Tensor], target: torch.Tensor, colors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The palette token each target pixel should get, ``[b, H, W]`` over the examples that use the palette head,
    and ``target`` with the instance examples repainted to match.

    A pixel's token is the nearest valid palette entry to its colour (targets are painted in exactly those
    colours). Instance targets use the slot colours in an arbitrary order, so for them the target instances are
    matched one-to-one to the slots the model already prefers for them (Hungarian, on the mean log-probability of
    each slot over each instance), as DETR-style set prediction does: the model may give any instance any slot, as
    long as they differ. Their RGB target is repainted in the matched colours."""
    from scipy.optimize import linear_sum_assignment

    uses = aux["uses_palette"]
    t01 = (target[uses] + 1.0) / 2.0  # [b, 3, H, W]
    dist = ((t01[:, None] - colors[uses][:, :, :, None, None]) ** 2).sum(2)  # [b, L, H, W]
    dist = dist.masked_fill(~aux["valid"][uses][:, :, None, None], float("inf"))
    index = dist.argmin(dim=1)
    instances = aux["is_instances"][uses]
    if not bool(instances.any()):
        return index, target
    target = target.clone()
    rows = torch.nonzero(uses).flatten()
    logp = aux["logits"][uses].detach().float().log_softmax(dim=1)  # [b, L, H, W]
    for j in torch.nonzero(instances).flatten().tolist():
        slots = torch.nonzero(aux["is_class"][rows[j]]).flatten()  # the slot tokens
        groups = slots[torch.isin(slots, index[j].unique())]  # slot colours the target uses, one per instance
        if len(groups) == 0:
            continue
        member = (index[j][None] == groups[:, None, None]).to(logp.dtype)  # [G, H, W]
        cost = -torch.einsum("ghw,shw->gs", member, logp[j][slots]) / member.sum((1, 2))[:, None]
        g, s = linear_sum_assignment(cost.cpu().numpy())
        lut = torch.arange(logp.shape[1], device=index.device)
        lut[groups[g]] = slots[s]
        index[j] = lut[index[j]]
        target[rows[j]] = colors[rows[j]][index[j]].permute(2, 0, 1) * 2.0 - 1.0
    return index, target


def _palette_terms(aux: dict[str, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    uses = aux["uses_palette"]
    logits = aux["logits"][uses]
    ce = torch.nn.functional.cross_entropy(logits, index)
    probs = logits.softmax(dim=1)
    onehot = torch.nn.functional.one_hot(index, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum((2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (probs.sum((2, 3)) + onehot.sum((2, 3)) + 1.0)  # [b, L]
    is_class = aux["is_class"][uses].to(dice.dtype)
    return ce, (dice * is_class).sum() / is_class.sum().clamp_min(1.0)


def palette_losses(
    aux: dict[str, torch.Tensor], target: torch.Tensor, colors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The palette head's losses over the examples that use it (semantic, referring, instances): the cross-entropy
    of its logits against :func:`palette_targets`, and a soft Dice per class or instance slot (1 - Dice, smoothed
    by 1 pixel, so a class the target lacks, or a second slot on one instance, is penalised by the mass given to
    it). Cross-entropy alone lets the background swallow small regions."""
    if not bool(aux["uses_palette"].any()):
        zero = target.sum() * 0.0
        return zero, zero
    return _palette_terms(aux, palette_targets(aux, target, colors)[0])


# ------------------------------------------------------------------------------------------------ checkpoints


def _save_checkpoint(
    folder: Path, model: Generator, ema: Any, opt: torch.optim.Optimizer, step: int, elapsed_s: float
) -> None:
    """Trainable weights, EMA and optimizer tensors in safetensors; everything else in JSON. Written atomically
    (tmp + rename). Frozen parts (a latent model's VAE and CLIP) stay out: they never change."""
    import shutil

    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    state = model.trainable_state_dict()
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
    names = [n for n, _ in model.named_trainable()]
    save_file(
        {n: p.detach().cpu().contiguous() for n, p in zip(names, ema.shadow_params)}, str(tmp / "ema.safetensors")
    )
    opt_state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in opt_state["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = float(value)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    meta = {"step": step, "elapsed_s": elapsed_s, "param_groups": opt_state["param_groups"], "scalars": scalars}
    meta["ema_step"] = int(ema.optimization_step)  # the EMA's decay schedule goes on where it was after a resume
    (tmp / "state.json").write_text(json.dumps(meta) + "\n")
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old)
    else:
        tmp.rename(folder)


def _load_checkpoint(folder: Path, model: Generator, ema: Any, opt: torch.optim.Optimizer) -> tuple[int, float]:
    from safetensors.torch import load_file

    missing, unexpected = model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    missing = [k for k in missing if not k.startswith(model.frozen_prefixes)]
    if missing or unexpected:
        raise TuneError(
            f"{folder}: the checkpoint does not fit the model ({len(missing)} missing, {len(unexpected)} unexpected "
            "weights); it belongs to another run: use a new run_dir"
        )
    shadow = load_file(str(folder / "ema.safetensors"))
    for (name, _), p in zip(model.named_trainable(), ema.shadow_params):
        p.data.copy_(shadow[name])
    meta = json.loads((folder / "state.json").read_text())
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = torch.tensor(value)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    # checkpoints written before ema_step was saved: as if the EMA had run since step 0 (it restarted on resume)
    ema.optimization_step = int(meta.get("ema_step", meta["step"]))
    return int(meta["step"]), float(meta["elapsed_s"])


def _export(folder: Path, model: Generator, ema: Any, name: str, step: int, notes: dict[str, Any]) -> None:
    """The EMA weights as a loadable fp16 model folder, with the run's provenance in its config notes."""
    import copy
    from dataclasses import replace

    export = copy.deepcopy(model)
    export.config = replace(model.config, model_version=f"{name}@{step}", notes=notes)
    ema.copy_to([p for _, p in export.named_trainable()])
    export.save_pretrained(folder)


# ------------------------------------------------------------------------------------------------ panels


@torch.no_grad()
def _panel(path: Path, model: Generator, text: TextEncoder | None, data: _Examples, steps: int = 1) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vb_perception.pipeline import generated_uint8

    rows = []
    for slot, task in enumerate(("depth", "normals", "semantic", "instances", "referring")):
        rng = random.Random(f"panel/{slot}")
        sample = data.sample(rng, slot)
        ex = make_example(sample, rng, task=task)
        rows.append((ex, tokens_for(ex.prompt, ex.spec, focal_ratio(float(sample.k[0, 0]), *ex.image.shape[:2]))))
    img = torch.from_numpy(np.stack([r[0].image for r in rows])).permute(0, 3, 1, 2).float() / 127.5 - 1
    cond = model.conditioning([r[1] for r in rows], text)
    gen = torch.Generator(device=model.device).manual_seed(0)
    pred = model.sample(img.to(model.device), cond, steps=steps, generator=gen)
    pred_np = generated_uint8(pred.cpu().numpy())
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.5, 2.2 * len(rows)), squeeze=False)
    for i, ((ex, _), p) in enumerate(zip(rows, pred_np)):
        for ax, im, title in zip(
            axes[i], (ex.image, ex.target, p), ("input", f"target ({ex.spec.task})", f"generated ({steps} step(s))")
        ):
            ax.imshow(im, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ the loop

#: ``step_losses(net, model, image, target, cond, specs, gen, step)`` -> losses with ``total``; ``net`` is the
#: accelerate-wrapped model (call it for anything that needs gradients), ``model`` the bare one.
StepLosses = Callable[..., dict[str, torch.Tensor]]


def write_resolved(run: Path, resolved: dict[str, Any], identity_keys: tuple[str, ...]) -> None:
    """Save the run's resolved config; refuse a run folder whose earlier config differs in ``identity_keys``."""
    import yaml

    run.mkdir(parents=True, exist_ok=True)
    plain = json.loads(json.dumps(resolved))
    previous = run / "config.resolved.yaml"
    if previous.is_file():
        old = yaml.safe_load(previous.read_text()) or {}
        if isinstance(old.get("model"), dict):  # fields added since that run was made take their defaults
            old["model"] = json.loads(json.dumps(asdict(GeneratorConfig.from_dict(old["model"]))))
        for key in identity_keys:
            if old.get(key) != plain.get(key):
                what = "model architecture" if key == "model" else f"{key!r}"
                raise TuneError(f"{run}: holds a run with another {what}; use a new run_dir")
    previous.write_text(yaml.safe_dump(plain, sort_keys=False))


def train_loop(
    run: Path,
    name: str,
    model: Generator,
    data: _Examples,
    tc: TrainConfig,
    step_losses: StepLosses,
    notes: dict[str, Any],
    panel_steps: int = 1,
    progress: bool = True,
    desc: str = "train",
) -> Path:
    """Train ``model`` in ``run`` up to ``tc.max_steps`` (resuming its checkpoint); returns the exported model."""
    from accelerate import Accelerator
    from diffusers.training_utils import EMAModel
    from tqdm import tqdm

    if tc.depth_soft_gradient:  # tune and distill alike
        if not (isinstance(model, VBGenerator) and model.config.depth_head):
            raise TuneError("train.depth_soft_gradient needs a model with the depth path head (model.depth_head: true)")
        model.depth_soft_gradient = tc.depth_soft_gradient
    on_gpu = torch.cuda.is_available()
    if not on_gpu and tc.mixed_precision != "no":
        raise TuneError(
            f"train.mixed_precision={tc.mixed_precision} is for GPUs; set train.mixed_precision=no on a CPU. "
            "bf16 autocast ran 1.4x faster on these AVX-512 BF16 cores, but a bf16 run from vb-mini2@24623 reached "
            "held-out AbsRel 1.61 at step 700; fp32 on the same batches had 0.23 at step 500 (README: bf16 on the CPU)"
        )
    accelerator = Accelerator(cpu=not on_gpu, mixed_precision=tc.mixed_precision)
    # where this invocation trains, for the export's notes (a bundle's card tells CPU and GPU time apart)
    n = torch.get_num_threads()
    hardware = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({n} thread{'s' if n != 1 else ''})"
    notes = notes | {"device": hardware}
    model.train()
    if tc.compile:
        model.unet.compile()
    params = [p for _, p in model.named_trainable()]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    # EMA with warm-up (decay 1 - (1 + n)^(-2/3), capped at ema_decay): early exports follow the model instead of
    # averaging in the random initialisation. The step n is checkpointed, so a resume goes on with the same decay.
    # Without warm-up (ema_warmup false: runs that start from a trained model) the decay is ema_decay throughout.
    # foreach: one fused update for all the parameters instead of a few ops each (on a GPU, each op is a launch).
    ema = EMAModel(
        params,
        decay=tc.ema_decay,
        use_ema_warmup=tc.ema_warmup,
        inv_gamma=1.0,
        power=2 / 3,
        min_decay=0.0 if tc.ema_warmup else tc.ema_decay,
        foreach=True,
    )
    step, elapsed = 0, 0.0
    for ckpt in ("checkpoint", "checkpoint.old"):  # .old: a run killed between the two renames of a save
        if (run / ckpt / "state.json").is_file():
            step, elapsed = _load_checkpoint(run / ckpt, model, ema, opt)
            break
    net, opt = accelerator.prepare(model, opt)
    ema.to(accelerator.device)
    raw: Generator = accelerator.unwrap_model(net)
    text = TextEncoder(accelerator.device) if raw.uses_minilm else None

    metrics_path = run / "metrics.csv"
    columns = ["total", "rgb", "depth_curve", "depth_log", "normals_cos", "seg_ce"]
    new_file = not metrics_path.is_file()
    if not new_file:  # drop rows logged after the checkpoint we resume from (they will be redone)
        lines = metrics_path.read_text().splitlines(keepends=True)
        first = [ln.split(",", 1)[0] for ln in lines]
        kept = lines[:1] + [ln for ln, s in zip(lines[1:], first[1:]) if s.isdigit() and int(s) <= step]
        metrics_path.write_text("".join(kept))
        header = lines[0].rstrip("\r\n").split(",") if lines else []
        columns = ["total"] + [c for c in columns[1:] if c in header]  # an older run keeps its columns
    metrics = metrics_path.open("a", newline="")
    writer = csv.writer(metrics)
    if new_file:
        writer.writerow(["step", "loss"] + columns[1:] + ["lr", "samples_per_s", "elapsed_s"])
    bar = tqdm(total=tc.max_steps, initial=step, desc=f"{desc} {name}", unit="step", disable=not progress)
    window: list[float] = []
    t_last = t_start = time.perf_counter()

    def save(step: int, elapsed: float) -> int:  # the resumable checkpoint and the exported EMA model
        _save_checkpoint(run / "checkpoint", raw, ema, opt, step, elapsed)
        info = notes | {"step": step, "samples_seen": step * tc.batch_size, "train_wall_s": round(elapsed)}
        _export(run / "model", raw, ema, name, step, info)
        return step

    batches = step_batches(data, step, tc.max_steps, data.cfg.data.workers, pin_memory=on_gpu)
    saved = first = step
    while step < tc.max_steps:
        if tc.max_wall_s and step > first and time.perf_counter() - t_start > tc.max_wall_s:
            break  # this invocation's time is up (after at least one step): save below, resume later
        img, tgt, toks, specs = next(batches)
        # non-blocking: the host goes on issuing this step while the copies (from pinned memory on a GPU) run
        img, tgt = img.to(accelerator.device, non_blocking=True), tgt.to(accelerator.device, non_blocking=True)
        gen = torch.Generator().manual_seed(tc.seed * 1_000_003 + step)
        cond = raw.conditioning(toks, text, min_length=INSTANCE_TOKENS if tc.compile else 0)  # compiled: one shape
        lr = tc.learning_rate(step) * tc.wall_factor(time.perf_counter() - t_start)
        for g in opt.param_groups:
            g["lr"] = lr
        with accelerator.accumulate(net):
            losses = step_losses(net, raw, img, tgt, cond, specs, gen, step)
            accelerator.backward(losses["total"])
            if tc.grad_clip:
                accelerator.clip_grad_norm_(params, tc.grad_clip)
            opt.step()
            opt.zero_grad()
        ema.step(params)
        step += 1
        now = time.perf_counter()
        elapsed += now - t_last
        window.append(now - t_last)
        t_last = now
        bar.update()
        if step % tc.log_every == 0 or step == tc.max_steps:
            rate = tc.batch_size * len(window) / max(sum(window), 1e-9)
            window.clear()
            writer.writerow(
                [step]
                + [f"{float(losses[k].detach()) if k in losses else 0.0:.5f}" for k in columns]
                + [f"{lr:.2e}", f"{rate:.2f}", f"{elapsed:.0f}"]
            )
            metrics.flush()
            bar.set_postfix(loss=f"{float(losses['total'].detach()):.4f}", sps=f"{rate:.1f}")
        if accelerator.is_main_process and (step % tc.checkpoint_every == 0 or step == tc.max_steps):
            saved = save(step, elapsed)
        if accelerator.is_main_process and (step % tc.panel_every == 0 or step == tc.max_steps):
            from vb_perception.model.loading import load_generator

            panel_model = load_generator(run / "model", accelerator.device) if (run / "model").is_dir() else raw
            _panel(run / f"panel_{step:07d}.png", panel_model, text, data, steps=panel_steps)
            t_last = time.perf_counter()
    del batches  # stops the batch workers
    if accelerator.is_main_process and saved != step:  # stopped by max_wall_s between checkpoints
        from vb_perception.model.loading import load_generator

        save(step, elapsed)
        panel = run / f"panel_{step:07d}.png"
        _panel(panel, load_generator(run / "model", accelerator.device), text, data, steps=panel_steps)
    bar.close()
    metrics.close()
    return run / "model"


def full_precision(
    pred: torch.Tensor, aux: dict[str, torch.Tensor] | None
) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """A prediction (and palette head outputs) in fp32: decoded depth needs more than bf16's 8 mantissa bits."""
    if aux is not None:
        aux.update({k: v.float() for k, v in aux.items() if v.is_floating_point()})
    return pred.float(), aux


def decoded_losses(
    model: Generator,
    pred: torch.Tensor,
    target_space: torch.Tensor,
    target_rgb: torch.Tensor,
    specs: list[TaskSpec],
    tc: TrainConfig,
    aux: dict[str, torch.Tensor] | None = None,
    colors: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Losses of a clean-target prediction: on the decoded RGB value (depth curve, normals, colour), for latent
    models the latent MSE too, and with a palette head's ``aux`` (and the prompts' ``colors``) its cross-entropy and
    Dice as ``seg_ce``."""
    index = None
    if aux and bool(aux["uses_palette"].any()):
        assert colors is not None, "the palette losses need the prompts' colours"
        index, target_rgb = palette_targets(aux, target_rgb, colors)  # instances: repainted in matched slots
    losses = _losses(model.from_target_space(pred), target_rgb, specs, tc)
    if model.denoises_latents:
        losses["latent"] = torch.nn.functional.mse_loss(pred, target_space)
        losses["total"] = losses["total"] + losses["latent"]
    if aux and tc.depth_free_rgb_weight and "depth_free" in aux and bool(aux["is_depth"].any()):
        d = aux["is_depth"]
        free = aux["depth_free"][d].clamp(-1.0, 1.0)
        term = torch.nn.functional.mse_loss(free, target_rgb[d]) * tc.depth_free_rgb_weight
        losses["rgb"] = losses["rgb"] + term
        losses["total"] = losses["total"] + term
    if aux:
        ce, dice = _palette_terms(aux, index) if index is not None else (losses["rgb"] * 0.0,) * 2
        losses["seg_ce"] = ce * tc.seg_ce_weight + dice * tc.seg_dice_weight
        losses["total"] = losses["total"] + losses["seg_ce"]
    return losses


def build_model(cfg: TuneConfig) -> Generator:
    """The model a tuning run starts from: ``init_from``, else a new latent model over ``base``, else a new
    bundled-architecture model."""
    if cfg.init_from:
        from dataclasses import replace

        from vb_perception.model.loading import load_generator

        model = load_generator(cfg.init_from)
        if isinstance(model, VBGenerator) and model.config.palette_channels != cfg.model.palette_channels:
            model = model.with_palette_channels(cfg.model.palette_channels)  # grows the input, same function
        if isinstance(model, VBGenerator) and cfg.model.depth_head and not model.config.depth_head:
            model = model.with_depth_head()  # zero correction weights: the same depths until trained
        if isinstance(model, VBGenerator) and cfg.model.focal_conditioning and not model.config.focal_conditioning:
            model = model.with_focal_conditioning()  # a zero projection: the same model until trained
        if isinstance(model, VBGenerator) and cfg.model.refine_channels and not model.config.refine_channels:
            model = model.with_refine(cfg.model.refine_channels)  # last convolution zero: the same model until trained
        if isinstance(model, VBGenerator) and cfg.model.attention_head_channels != model.config.attention_head_channels:
            model = model.with_attention_head_channels(cfg.model.attention_head_channels)  # same weights, regrouped
        if isinstance(model, VBGenerator):
            keep = ("model_version", "notes")
            mine = {k: v for k, v in asdict(model.config).items() if k not in keep}
            wanted = {k: v for k, v in asdict(cfg.model).items() if k not in keep}
            if mine != wanted:
                diff = sorted(k for k in mine if mine[k] != wanted.get(k))
                raise TuneError(f"init_from {cfg.init_from} differs from the config's model in {diff}")
            model.config = replace(model.config, default_steps=cfg.model.default_steps)
        return model
    if cfg.base:
        from vb_perception.model.latent import LatentConfig, LatentGenerator

        m = cfg.model
        return LatentGenerator.from_base(
            cfg.base,
            LatentConfig(
                resolution_px=m.resolution_px, default_steps=m.default_steps, num_train_timesteps=m.num_train_timesteps
            ),
        )
    return VBGenerator(cfg.model)


def tuning_losses(model: Generator, tc: TrainConfig) -> StepLosses:
    """The tuning step's losses: a timestep (t = T with ``single_step_prob``), the noised target, the prediction and
    :func:`decoded_losses` on it."""
    from diffusers import DDPMScheduler

    sched = DDPMScheduler(num_train_timesteps=model.config.num_train_timesteps, prediction_type="sample")
    t_max = model.config.num_train_timesteps - 1

    def step_losses(net: Any, raw: Generator, img: Any, tgt: Any, cond: Any, specs: Any, gen: Any, step: int) -> Any:
        b = img.shape[0]
        t = torch.where(
            torch.rand(b, generator=gen) < tc.single_step_prob,
            torch.full((b,), t_max),
            torch.randint(0, model.config.num_train_timesteps, (b,), generator=gen),
        ).to(img.device, non_blocking=True)
        x0 = raw.to_target_space(tgt)
        noise = torch.randn(x0.shape, generator=gen).to(img.device, non_blocking=True)
        aux: dict[str, torch.Tensor] | None = {} if raw.has_palette_head else None
        pred = net(raw.prepare_image(img), sched.add_noise(x0, noise, t), t, cond, aux)
        pred, aux = full_precision(pred, aux)  # bf16 / fp16 under mixed precision: losses in fp32
        return decoded_losses(raw, pred, x0, tgt, specs, tc, aux, cond[1])

    return step_losses


def run_tune(cfg: TuneConfig, progress: bool = True) -> Path:
    """Train (or resume) the run in ``cfg.run_dir`` up to ``cfg.train.max_steps``; returns the exported model folder."""
    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    run = Path(cfg.run_dir)
    resolved = {
        "name": cfg.name,
        "run_dir": cfg.run_dir,
        "init_from": cfg.init_from,
        "model": asdict(cfg.model),
        "data": asdict(cfg.data),
        "train": asdict(tc),
    }
    if cfg.base:
        resolved["base"] = cfg.base
    write_resolved(run, resolved, ("model", "base"))
    torch.manual_seed(tc.seed)
    model = build_model(cfg)
    data = _Examples(cfg)
    notes = {"run": cfg.name, "data_res_px": cfg.data.res_px} | ({"base": cfg.base} if cfg.base else {})
    return train_loop(run, cfg.name, model, data, tc, tuning_losses(model, tc), notes, progress=progress, desc="tune")
