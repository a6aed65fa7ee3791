"""Load any vb_perception model folder: the pixel-space bundled kind or a latent (bring-your-own-base) one."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vb_perception.model.base import Generator
from vb_perception.model.generator import CONFIG_NAME, ModelError, VBGenerator

__all__ = ["load_generator"]


def load_generator(folder: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The model in ``folder`` (``config.json`` says which kind), in eval mode on ``device``."""
    root = Path(folder)
    kind = "pixel"
    if (root / CONFIG_NAME).is_file():
        try:
            kind = json.loads((root / CONFIG_NAME).read_text()).get("kind", "pixel")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ModelError(f"{root / CONFIG_NAME}: unreadable config ({exc})") from exc
    if kind == "latent":
        from vb_perception.model.latent import LatentGenerator

        return LatentGenerator.from_pretrained(root, device=device)
    if kind != "pixel":
        raise ModelError(f"{root}: unknown model kind {kind!r}; this vb_perception reads 'pixel' and 'latent'")
    return VBGenerator.from_pretrained(root, device=device)
