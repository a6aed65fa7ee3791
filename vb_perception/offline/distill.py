"""Few-step distillation: ``vb-perception distill --config config/distill/<name>.yaml``.

The student starts as a copy of the teacher (any model folder: the bundled kind or a latent bring-your-own-base
one) and is trained *as it will be sampled*: each batch runs the student's own K-step DDIM chain from noise
(K drawn from ``student_steps``), the earlier steps without gradients, and the last step's clean-target prediction
is scored on the decoded values (depth curve, normals, colours) against

* the ground truth (``gt_weight``: end-to-end / Lotus-style few-step fine-tuning), and/or
* the teacher's ``teacher_steps``-step answer from the same noise (``teacher_weight``: distillation).

The student keeps its noise input, so several seeds still give several samples. Its ``default_steps`` becomes
the first of ``student_steps``. Runs resume like ``tune`` runs (same checkpoint format, metrics and panels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from vb_perception.model.base import Generator
from vb_perception.offline.tune import (
    DataConfig,
    TrainConfig,
    TuneError,
    _build,
    _Examples,
    decoded_losses,
    full_precision,
    read_config,
    train_loop,
    write_resolved,
)

__all__ = ["DistillConfig", "load_distill_config", "run_distill"]


@dataclass(frozen=True)
class DistillConfig:
    name: str
    run_dir: str
    teacher: str  # a model folder
    data: DataConfig
    train: TrainConfig
    teacher_steps: int = 4
    student_steps: tuple[int, ...] = (1,)
    gt_weight: float = 1.0
    teacher_weight: float = 0.0


def load_distill_config(path: str | Path, overrides: dict[str, Any] | None = None) -> DistillConfig:
    """Read a YAML distillation config; ``overrides`` maps dotted keys (``train.max_steps``) to values."""
    p = Path(path)
    raw = read_config(p, overrides, {f.name for f in fields(DistillConfig)}, "config/distill/")
    if "teacher" not in raw:
        raise TuneError(f"{p}: needs `teacher:` (a model folder, e.g. models/vb-mini)")
    steps = tuple(int(k) for k in (raw.get("student_steps") or (1,)))
    if not steps or any(k < 1 or k > 8 for k in steps):
        raise TuneError(f"{p}: student_steps must be a list of step counts from 1 to 8, got {steps}")
    cfg = DistillConfig(
        name=str(raw.get("name", p.stem)),
        run_dir=str(raw.get("run_dir", f"out/runs/{p.stem}")),
        teacher=str(raw["teacher"]),
        data=_build(DataConfig, raw.get("data", {}), f"{p}: data"),
        train=_build(TrainConfig, raw.get("train", {}), f"{p}: train"),
        teacher_steps=int(raw.get("teacher_steps", 4)),
        student_steps=steps,
        gt_weight=float(raw.get("gt_weight", 1.0)),
        teacher_weight=float(raw.get("teacher_weight", 0.0)),
    )
    if cfg.gt_weight < 0 or cfg.teacher_weight < 0 or cfg.gt_weight + cfg.teacher_weight == 0:
        raise TuneError(f"{p}: gt_weight and teacher_weight must be >= 0 and not both 0")
    return cfg


def run_distill(cfg: DistillConfig, progress: bool = True) -> Path:
    """Distil (or resume distilling) ``cfg.teacher`` into a few-step student; returns the exported student folder."""
    from vb_perception.model.loading import load_generator

    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    run = Path(cfg.run_dir)
    resolved = {"kind": "distill"} | asdict(cfg)
    write_resolved(run, resolved, ("teacher",))
    torch.manual_seed(tc.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    teacher = load_generator(cfg.teacher, device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = load_generator(cfg.teacher)
    student.config = replace(student.config, default_steps=cfg.student_steps[0])
    data = _Examples(cfg)

    def step_losses(net: Any, raw: Generator, img: Any, tgt: Any, cond: Any, specs: Any, gen: Any, step: int) -> Any:
        k = cfg.student_steps[step % len(cfg.student_steps)]
        prepared = raw.prepare_image(img)
        noise = torch.randn(raw.target_shape(prepared), generator=gen).to(img.device, non_blocking=True)
        aux: dict[str, torch.Tensor] | None = {} if raw.has_palette_head else None
        pred, aux = full_precision(raw.rollout(prepared, cond, k, noise, grad_last=True, net=net, aux=aux), aux)
        parts: list[tuple[float, dict[str, torch.Tensor]]] = []
        if cfg.gt_weight:  # with a palette head, also its own losses on the last step, as in tuning
            gt = decoded_losses(raw, pred, raw.to_target_space(tgt), tgt, specs, tc, aux, cond[1])
            parts.append((cfg.gt_weight, gt))
        if cfg.teacher_weight:
            with torch.no_grad():
                t_pred = teacher.rollout(prepared, cond, cfg.teacher_steps, noise)
                t_rgb = teacher.from_target_space(t_pred).clamp(-1.0, 1.0)
            parts.append((cfg.teacher_weight, decoded_losses(raw, pred, t_pred, t_rgb, specs, tc)))
        losses = dict(parts[0][1])  # the logged parts: against the ground truth when it is used
        losses["total"] = sum((w * p["total"] for w, p in parts), torch.zeros((), device=img.device))
        if cfg.teacher_weight:
            losses["teacher"] = parts[-1][1]["total"]
        return losses

    notes = {
        "run": cfg.name,
        "data_res_px": cfg.data.res_px,
        "distilled_from": teacher.config.model_version,
        "teacher_steps": cfg.teacher_steps,
        "student_steps": list(cfg.student_steps),
        "gt_weight": cfg.gt_weight,
        "teacher_weight": cfg.teacher_weight,
    }
    return train_loop(
        run,
        cfg.name,
        student,
        data,
        tc,
        step_losses,
        notes,
        panel_steps=cfg.student_steps[0],
        progress=progress,
        desc="distill",
    )
