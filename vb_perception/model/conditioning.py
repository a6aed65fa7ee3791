"""From a parsed prompt to the generator's conditioning: a task code and a short token sequence.

The prompt alone selects the task. Its parsed form (:mod:`vb_perception.prompts`) gives the tokens:

* ``prompt``: the whole prompt's sentence embedding (phrasing, anything the parser does not model);
* ``background``: the background colour;
* one token per class / expression: its name's sentence embedding plus its *exact* RGB value as Fourier features,
  so requested colours come out right instead of being guessed from words;
* for instances, one token per instance slot (:data:`~vb_perception.colors.INSTANCE_SLOT_COLORS` usable on the
  background): the class name plus the slot's colour. The model paints each instance in a slot colour of its
  choice (training matches slots to instances), so instances come out in distinct, exact colours.

The task code (depth per colormap, normals, semantic, instances, referring) also conditions the UNet globally,
added to its timestep embedding. Models with ``focal_conditioning`` also get the camera's focal length there, when it
is known (:func:`camera_features`): metric depth from one image is ambiguous in scale by as much as the field of view
varies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vb_perception.colors import INSTANCE_SLOT_COLORS, instance_slots
from vb_perception.errors import VbPerceptionError
from vb_perception.model.text import TEXT_DIM, TextEncoder
from vb_perception.prompts import DepthSpec, InstanceSpec, NormalsSpec, ReferringSpec, SemanticSpec, TaskSpec

__all__ = [
    "CAMERA_DIM",
    "INSTANCE_TOKENS",
    "TASK_CODES",
    "ConditionEncoder",
    "PromptTokens",
    "camera_features",
    "focal_ratio",
    "task_code",
    "tokens_for",
]

TASK_CODES = (
    "depth/hilbert",
    "depth/plasma",
    "depth/inferno",
    "depth/viridis",
    "depth/gray",
    "normals",
    "semantic",
    "instances",
    "referring",
)
_ROLE_PROMPT, _ROLE_BACKGROUND, _ROLE_TARGET, _ROLE_INSTANCE = range(4)
ROLE_BACKGROUND, ROLE_TARGET, ROLE_INSTANCE = _ROLE_BACKGROUND, _ROLE_TARGET, _ROLE_INSTANCE
#: The most tokens an instance prompt has (prompt, background, a slot per usable colour): the longest the
#: synthetic prompts get, so training pads to it for a compiled model (``batch_tokens(min_length=...)``).
INSTANCE_TOKENS = 2 + len(INSTANCE_SLOT_COLORS)
_N_FREQ = 6


def task_code(spec: TaskSpec) -> int:
    """Index of the spec's task in :data:`TASK_CODES`."""
    if isinstance(spec, DepthSpec):
        return TASK_CODES.index(f"depth/{spec.colormap}")
    return TASK_CODES.index(spec.task)


@dataclass(frozen=True)
class PromptTokens:
    """The conditioning of one prompt on one camera before the trainable encoder: texts to embed, colours, roles,
    and the camera's focal length in units of the image's short side (:func:`focal_ratio`; None: unknown)."""

    task: int
    texts: tuple[str, ...]  # one per token ("" for the background token)
    colors: tuple[tuple[int, int, int], ...]  # one per token ((0, 0, 0) where none)
    roles: tuple[int, ...]
    focal: float | None = None


def focal_ratio(fx_px: float | None, height_px: int, width_px: int) -> float | None:
    """``fx / min(height, width)``: the focal length in units of the image's short side, which resizing keeps (None
    stays None: unknown). 0.5 / tan(hfov / 2) for a square image: 1.21 at 45 degrees, 0.42 at 100."""
    if fx_px is None:
        return None
    if not (math.isfinite(fx_px) and fx_px > 0):
        raise VbPerceptionError(f"fx_px is {fx_px}; it must be a positive focal length in pixels (camera_info K[0])")
    return float(fx_px) / min(height_px, width_px)


#: Width of :func:`camera_features`.
CAMERA_DIM = 9


def _on(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on ``device`` without waiting for the device (a host-to-GPU copy from pageable memory is staged
    at once; a blocking one would wait for the queued GPU work)."""
    return t.to(device, non_blocking=True)


def camera_features(focal: Sequence[float | None], device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, CAMERA_DIM]``: for a known focal ratio f, ``(1, 0, log f, sin(2^k log f), cos(2^k log f), k = 0..2)``;
    for an unknown one ``(0, 1, 0, ...)``, so the (bias-free) projection learns a separate "unknown camera" vector."""
    rows = []
    for f in focal:
        if f is None:
            rows.append([0.0, 1.0] + [0.0] * (CAMERA_DIM - 2))
            continue
        u = math.log(f)
        rows.append([1.0, 0.0, u] + [math.sin(u * 2**k) for k in range(3)] + [math.cos(u * 2**k) for k in range(3)])
    return _on(torch.tensor(rows, dtype=torch.float32).reshape(len(rows), CAMERA_DIM), device)


def tokens_for(prompt: str, spec: TaskSpec, focal: float | None = None) -> PromptTokens:
    """Token texts, colours and roles for ``prompt`` parsed as ``spec``, on a camera of focal ratio ``focal``
    (:func:`focal_ratio`; None: unknown)."""
    texts, colors, roles = [prompt], [(0, 0, 0)], [_ROLE_PROMPT]
    if isinstance(spec, (SemanticSpec, ReferringSpec, InstanceSpec)):
        texts.append("")
        colors.append(spec.background)
        roles.append(_ROLE_BACKGROUND)
    if isinstance(spec, (SemanticSpec, ReferringSpec)):
        for name, rgb in spec.palette.items():
            texts.append(name)
            colors.append(rgb)
            roles.append(_ROLE_TARGET)
    elif isinstance(spec, InstanceSpec):
        for rgb in instance_slots(spec.background):
            texts.append(spec.class_name)
            colors.append(rgb)
            roles.append(_ROLE_INSTANCE)
    elif not isinstance(spec, (DepthSpec, NormalsSpec)):
        raise TypeError(f"unknown spec {spec!r}")
    return PromptTokens(task_code(spec), tuple(texts), tuple(colors), tuple(roles), focal)


def _fourier(rgb01: torch.Tensor) -> torch.Tensor:
    freqs = (2.0 ** torch.arange(_N_FREQ, device=rgb01.device, dtype=rgb01.dtype)) * math.pi
    x = rgb01[..., None] * freqs  # [..., 3, F]
    return torch.cat([rgb01, torch.sin(x).flatten(-2), torch.cos(x).flatten(-2)], dim=-1)


class ConditionEncoder(nn.Module):
    """Trainable: sentence embeddings + colour Fourier features + role embeddings -> ``dim``-wide tokens."""

    def __init__(self, dim: int, text_dim: int = TEXT_DIM) -> None:
        super().__init__()
        self.text = nn.Linear(text_dim, dim)
        self.color = nn.Sequential(nn.Linear(3 + 6 * _N_FREQ, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.role = nn.Embedding(4, dim)
        self.task = nn.Embedding(len(TASK_CODES), dim)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def forward(
        self, text_emb: torch.Tensor, colors: torch.Tensor, roles: torch.Tensor, task: torch.Tensor
    ) -> torch.Tensor:
        """``text_emb [B, L, 384]``, ``colors [B, L, 3]`` (0-1), ``roles [B, L]``, ``task [B]`` -> ``[B, L + 1, dim]``
        (the task token first)."""
        tok = self.text(text_emb) + self.color(_fourier(colors)) + self.role(roles)
        return self.out(torch.cat([self.task(task)[:, None], tok], dim=1))


def batch_tokens(
    items: Sequence[PromptTokens],
    text: TextEncoder | Any,
    device: torch.device,
    camera: bool = False,
    min_length: int = 0,
) -> tuple[torch.Tensor, ...]:
    """Padded batch tensors: text embeddings (``text.encode``: MiniLM, or the latent model's CLIP), colours, roles,
    task codes and the attention mask ``[B, L + 1]``; with ``camera``, :func:`camera_features` of the items' focal
    ratios last. ``L`` is the most tokens an item has, or ``min_length`` if that is more (padding is masked out: the
    same outputs, in a shape that stays put, as a compiled model wants)."""
    length = max(min_length, *(len(t.texts) for t in items))
    unique = list(dict.fromkeys(s for t in items for s in t.texts if s))
    where = {s: i for i, s in enumerate(unique)}
    dim = getattr(text, "dim", TEXT_DIM)
    # every token's embedding by one lookup into the unique sentences' (row len(unique): zeros, for empty texts and
    # padding); the tables are built on the host and sent in one non-blocking copy each, so on a GPU the host neither
    # waits for it nor issues an op per token
    table = torch.cat([text.encode(unique).to(device), torch.zeros(1, dim, device=device)])
    pad = len(unique)
    rows = [[where[s] if s else pad for s in t.texts] + [pad] * (length - len(t.texts)) for t in items]
    emb = table[_on(torch.tensor(rows), device)]
    colors = torch.tensor([list(t.colors) + [(0, 0, 0)] * (length - len(t.colors)) for t in items], dtype=torch.float32)
    roles = torch.tensor([list(t.roles) + [0] * (length - len(t.roles)) for t in items])
    task = torch.tensor([t.task for t in items])
    mask = torch.tensor([[1] * (len(t.texts) + 1) + [0] * (length - len(t.texts)) for t in items])
    out = (emb, _on(colors / 255.0, device), _on(roles, device), _on(task, device), _on(mask, device))
    return out + (camera_features([t.focal for t in items], device),) if camera else out
