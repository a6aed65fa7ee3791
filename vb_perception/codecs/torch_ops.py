"""Torch twins of the codecs, for training losses on decoded values and for exported graphs.

Same maths as :mod:`vb_perception.codecs.depth` and :mod:`vb_perception.codecs.normals`, on float tensors in
[0, 1], differentiable almost everywhere (the choice of the nearest edge is piecewise constant). The colour axis is
``channel_dim`` (``-1`` for ``[..., 3]``, ``1`` for ``[B, 3, H, W]``). Importing this module imports torch.
"""

from __future__ import annotations

import torch

from vb_perception.codecs.depth import DEPTH_C, DEPTH_LAMBDA, PATH_VERTICES

__all__ = [
    "curve_to_depth",
    "curve_to_rgb",
    "decode_depth",
    "decode_normals",
    "depth_to_curve",
    "encode_depth",
    "encode_normals",
    "rgb_to_curve",
]

#: Largest curve value decoded to a finite depth (about 400 m), so losses never see inf.
MAX_FINITE_CURVE = 1.0 - 1.0 / (7 * 255)


def depth_to_curve(depth_m: torch.Tensor) -> torch.Tensor:
    """``f = 1 - (1 - d/(lambda c))^(lambda + 1)``; depths below 0 are clamped to 0."""
    d = depth_m.clamp_min(0.0)
    return 1.0 - (1.0 - d / (DEPTH_LAMBDA * DEPTH_C)) ** (DEPTH_LAMBDA + 1.0)


def curve_to_depth(f: torch.Tensor, max_curve: float = MAX_FINITE_CURVE) -> torch.Tensor:
    """Invert :func:`depth_to_curve`; ``f`` is clamped to ``[0, max_curve]`` so the result stays finite."""
    ff = f.clamp(0.0, max_curve)
    return DEPTH_LAMBDA * DEPTH_C * (1.0 - (1.0 - ff) ** (1.0 / (DEPTH_LAMBDA + 1.0)))


def _path(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor(PATH_VERTICES.tolist(), dtype=like.dtype, device=like.device)
    return v[:-1], v[1:] - v[:-1]


def curve_to_rgb(f: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
    """Curved depth ``f [...]`` in [0, 1] to float RGB in [0, 1] on the cube walk, colour axis inserted at
    ``channel_dim`` (differentiable in ``f`` within each edge).

    The walk is a polyline with one edge per 1/7 of ``f``, so ``rgb = v0 + sum_k clamp(7 f - k, 0, 1) edge_k``,
    computed with the edge axis first (see :func:`rgb_to_curve` for why)."""
    starts, edges = _path(f)
    col = (len(edges),) + (1,) * f.dim()
    s = f.clamp(0.0, 1.0).unsqueeze(0) * len(edges)
    along = (s - torch.arange(len(edges), dtype=f.dtype, device=f.device).view(col)).clamp(0.0, 1.0)  # [7, ...]
    rgb = [starts[0, c] + (along * edges[:, c].view(col)).sum(0) for c in range(3)]
    return torch.stack(rgb, dim=channel_dim)


def encode_depth(depth_m: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
    """Metric depth ``[...]`` to float RGB in [0, 1] along the cube walk, colour axis inserted at ``channel_dim``."""
    return curve_to_rgb(depth_to_curve(depth_m), channel_dim)


def rgb_to_curve(rgb: torch.Tensor, channel_dim: int = -1, soft_gradient: float = 0.0) -> torch.Tensor:
    """Float RGB in [0, 1] to curved depth in [0, 1] by projecting onto the nearest edge of the walk.

    The squared distance to edge k is ``|p - s_k|^2 - 2 t_k u_k + t_k^2`` (u_k the unclamped, t_k the clamped
    position along the unit-length edge), computed on ``[7, ...]`` tensors with the edge axis first and written out
    per colour channel. A ``[..., 7, 3]`` broadcast gives the same numbers, but ONNX Runtime ran it about 5x slower
    (innermost axes of 3), and matrix products with the edges would be quantized in the int8 copy.

    ``soft_gradient`` > 0 (training only) keeps these values but takes the gradient of a soft projection: the
    edges' curve values weighted by ``softmax(-distance^2 / soft_gradient)`` (straight-through). The hard choice of
    the nearest edge passes no gradient across to another edge, so a colour half-way between two distant edges
    (dark red and magenta: near and far) can only slide along the one it is nearer to; the soft one pulls it
    towards the edge whose value the loss prefers."""
    p = rgb.clamp(0.0, 1.0).movedim(channel_dim, 0)  # [3, ...]
    starts, edges = _path(rgb)  # [7, 3]
    col = (len(edges),) + (1,) * (p.dim() - 1)
    u = sum(p[c] * edges[:, c].view(col) for c in range(3)) - (starts * edges).sum(-1).view(col)  # [7, ...]
    t = u.clamp(0.0, 1.0)
    to_start = sum((p[c] - starts[:, c].view(col)) ** 2 for c in range(3))
    dist = to_start - 2.0 * t * u + t * t
    k = dist.argmin(0, keepdim=True)
    hard = (k.to(rgb.dtype) + t.gather(0, k)).squeeze(0) / len(edges)
    if soft_gradient <= 0.0:
        return hard
    values = (t + torch.arange(len(edges), dtype=rgb.dtype, device=rgb.device).view(col)) / len(edges)
    soft = (torch.softmax(-dist / soft_gradient, dim=0) * values).sum(0)
    return hard + (soft - soft.detach())


def decode_depth(rgb: torch.Tensor, channel_dim: int = -1, max_curve: float = MAX_FINITE_CURVE) -> torch.Tensor:
    """Float RGB in [0, 1] to metric depth by projecting onto the nearest edge of the walk (finite everywhere)."""
    return curve_to_depth(rgb_to_curve(rgb, channel_dim), max_curve)


def encode_normals(normals: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
    """Unit normals (paper camera frame) to float RGB ``(n + 1) / 2``."""
    n = torch.nn.functional.normalize(normals, dim=channel_dim, eps=1e-6)
    return (n + 1.0) * 0.5


def decode_normals(rgb: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
    """Float RGB in [0, 1] to unit normals ``normalize(2 rgb - 1)``."""
    return torch.nn.functional.normalize(rgb * 2.0 - 1.0, dim=channel_dim, eps=1e-6)
