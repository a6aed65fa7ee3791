"""What every generator shares: the few-step sampler and the hooks that map RGB targets to the space it denoises in.

A generator denoises *targets* (pixel RGB for :class:`~vb_perception.model.generator.VBGenerator`, VAE latents for
:class:`~vb_perception.model.latent.LatentGenerator`) conditioned on the camera image and the prompt, and predicts
the clean target (``prediction_type="sample"``). Subclasses implement ``forward`` and the three space hooks;
``sample`` and ``rollout`` are shared, so tuning, distillation, evaluation and export treat both kinds alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Generator", "draw_noise"]


def draw_noise(
    shape: Sequence[int],
    generator: torch.Generator | None,
    noise_index: Sequence[int] | None = None,
    device: Any = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Start noise of ``shape`` ``[B, ...]``: row i is draw ``noise_index[i]`` of ``max(noise_index) + 1`` draws
    (default: draw i of B), so several rows can start from the same noise."""
    if noise_index is None:
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if len(noise_index) != shape[0] or min(noise_index, default=0) < 0:
        raise ValueError(f"noise_index needs one draw index >= 0 per row ({shape[0]}), got {list(noise_index)}")
    draws = torch.randn((max(noise_index) + 1, *shape[1:]), generator=generator, device=device, dtype=dtype)
    return draws[list(noise_index)]


class Generator(nn.Module):
    """Base class. ``config`` has at least ``resolution_px``, ``default_steps``, ``num_train_timesteps`` and
    ``model_version``."""

    config: Any
    #: ``True`` when ``conditioning`` needs the shared MiniLM :class:`~vb_perception.model.text.TextEncoder`.
    uses_minilm: bool = True
    #: ``True`` when the targets are VAE latents rather than RGB.
    denoises_latents: bool = False
    #: DDIM clamps predicted targets to [-1, 1]: right for RGB, wrong for latents.
    clip_sample: bool = True
    #: names of the tensors ``conditioning`` returns, in order (the exported graph's inputs after image and noise).
    cond_names: tuple[str, ...] = ("text_emb", "colors", "roles", "task", "mask")
    #: state-dict prefixes of frozen parts (VAE, text encoder) that checkpoints and the EMA leave out.
    frozen_prefixes: tuple[str, ...] = ()
    #: ``True`` when ``forward`` fills its ``aux`` dict with palette-head outputs (for the palette losses).
    has_palette_head: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (the UNet's downsampling, times the VAE's for latent models)."""
        return max(8, 2 ** (len(self.unet.config.block_out_channels) - 1))

    def named_trainable(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters tuning updates (and the EMA tracks), by name."""
        frozen = self.frozen_prefixes
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad and not n.startswith(frozen)]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state a training checkpoint needs: everything but the frozen parts."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.frozen_prefixes)}

    # -------------------------------------------------------------------------------- space hooks (identity: RGB)

    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """The camera image ``[B, 3, H, W]`` in [-1, 1] as the network's image input."""
        return image

    def to_target_space(self, rgb: torch.Tensor) -> torch.Tensor:
        """Target RGB ``[B, 3, H, W]`` in [-1, 1] -> the space the model denoises in."""
        return rgb

    def from_target_space(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_target_space`: RGB in [-1, 1] (differentiable)."""
        return x

    def target_shape(self, prepared_image: torch.Tensor) -> tuple[int, ...]:
        return tuple(prepared_image.shape[:1]) + (3,) + tuple(prepared_image.shape[2:])

    def conditioning(self, items: list[Any], text: Any, min_length: int = 0) -> tuple[torch.Tensor, ...]:
        """The batch's conditioning tensors, tokens padded to at least ``min_length``."""
        raise NotImplementedError

    # -------------------------------------------------------------------------------- sampling

    def scheduler(self, steps: int) -> Any:
        from diffusers import DDIMScheduler

        sched = DDIMScheduler(
            num_train_timesteps=self.config.num_train_timesteps,
            prediction_type="sample",
            timestep_spacing="trailing",
            clip_sample=self.clip_sample,
        )
        sched.set_timesteps(steps)
        return sched

    def rollout(
        self,
        prepared: torch.Tensor,
        cond: tuple[torch.Tensor, ...],
        steps: int,
        noise: torch.Tensor,
        grad_last: bool = False,
        net: Any = None,
        aux: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """``steps`` DDIM steps from ``noise``; returns the last step's clean-target prediction (target space).

        With ``grad_last`` only the final network call keeps gradients (few-step fine-tuning of a student); the
        earlier steps run without them, as at inference. ``net`` (default: ``self``) is what the network calls go
        through, e.g. the accelerate-wrapped model, so multi-GPU gradient sync sees them. ``aux``, when given, goes
        to the last call (a pixel model's palette-head outputs, for its losses).
        """
        call = net if net is not None else self
        sched = self.scheduler(steps)
        x, pred = noise, noise
        timesteps = list(sched.timesteps)
        for i, t in enumerate(timesteps):
            last = i == len(timesteps) - 1
            with torch.set_grad_enabled(grad_last and last and torch.is_grad_enabled()):
                pred = call(prepared, x, t.expand(prepared.shape[0]).to(prepared.device), cond, aux if last else None)
            if not last:
                x = sched.step(pred.detach(), t, x).prev_sample
        return pred.clamp(-1.0, 1.0) if self.clip_sample else pred

    @torch.no_grad()
    def sample(
        self,
        image: torch.Tensor,
        cond: tuple[torch.Tensor, ...],
        steps: int | None = None,
        generator: torch.Generator | None = None,
        noise_index: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Generate target RGB ``[B, 3, H, W]`` in [-1, 1] with ``steps`` DDIM steps (default: the model's).

        Several seeds give several samples (a spread, for uncertainty). ``noise_index``: which of the generator's
        noise draws each row starts from (default: row i from draw i), so rows can share one, e.g. an image and its
        mirror in one batch start as the two would in calls of their own."""
        prepared = self.prepare_image(image)
        noise = draw_noise(self.target_shape(prepared), generator, noise_index, image.device, image.dtype)
        pred = self.rollout(prepared, cond, steps or self.config.default_steps, noise)
        return self.from_target_space(pred).clamp(-1.0, 1.0)
