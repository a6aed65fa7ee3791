"""Tiny randomly initialised generators for tests that need a model folder but not a trained one."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vb_perception.model.generator import GeneratorConfig, VBGenerator

#: ~0.3 M parameters at 32 px; two UNet levels, cross-attention at the lower one.
TINY = GeneratorConfig(
    resolution_px=32,
    block_out_channels=(16, 32),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=8,
    cond_dim=32,
    norm_num_groups=8,
)


def save_tiny(folder: Path, **changes: object) -> Path:
    """A tiny model folder (seeded, so every test gets the same weights); ``changes`` edit the config."""
    import torch

    torch.manual_seed(0)
    return VBGenerator(replace(TINY, **changes)).save_pretrained(folder)  # type: ignore[arg-type]
