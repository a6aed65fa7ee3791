"""The few-step sampler as a plain network: DDIM steps unrolled, so one call (one ONNX / TensorRT graph) returns
the final generated RGB. Deterministic DDIM (eta = 0), the same arithmetic as diffusers' ``DDIMScheduler.step``
with ``prediction_type="sample"``; parity with :meth:`Generator.sample` is tested."""

from __future__ import annotations

import torch
from torch import nn

from vb_perception.model.base import Generator

__all__ = ["UnrolledSampler"]


class UnrolledSampler(nn.Module):
    """``(image, noise, *cond) -> rgb``: image ``[B, 3, H, W]`` and output in [-1, 1]; ``noise`` in target space."""

    def __init__(self, model: Generator, steps: int) -> None:
        super().__init__()
        self.model = model
        self.steps = steps
        sched = model.scheduler(steps)
        acp = sched.alphas_cumprod  # float32, as the scheduler computes
        stride = model.config.num_train_timesteps // steps
        self.plan: list[tuple[int, float, float, float, float]] = []
        for t in (int(x) for x in sched.timesteps):
            a_t = float(acp[t])
            prev = t - stride
            a_prev = float(acp[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
            self.plan.append((t, a_t**0.5, (1 - a_t) ** 0.5, a_prev**0.5, (1 - a_prev) ** 0.5))

    def forward(self, image: torch.Tensor, noise: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        m = self.model
        prepared = m.prepare_image(image)
        x = noise
        x0 = noise
        for i, (t, sa, s1a, sap, s1ap) in enumerate(self.plan):
            timesteps = torch.full((image.shape[0],), t, dtype=torch.long, device=image.device)
            pred = m(prepared, x, timesteps, tuple(cond))
            x0 = pred.clamp(-1.0, 1.0) if m.clip_sample else pred
            if i < len(self.plan) - 1:
                eps = (x - sa * pred) / s1a  # as diffusers: the noise estimate from the unclipped prediction
                x = sap * x0 + s1ap * eps
        return m.from_target_space(x0).clamp(-1.0, 1.0)
