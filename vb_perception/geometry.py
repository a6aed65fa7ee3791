"""Camera geometry on depth maps: back-projection and normals from depth, in the ROS optical frame.

Optical frame (REP 103): x right, y down, z forward. Depth is z-depth in metres along the optical axis, NaN = invalid.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import CodecError

__all__ = ["backproject", "normals_from_depth"]


def _check(depth_m: NDArray[np.floating], k: NDArray[np.floating]) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    d = np.asarray(depth_m, dtype=np.float32)
    kk = np.asarray(k, dtype=np.float64)
    if d.ndim != 2:
        raise CodecError(f"depth must be HxW, got shape {d.shape}")
    if kk.shape != (3, 3) or kk[0, 0] <= 0 or kk[1, 1] <= 0:
        raise CodecError(f"K must be a 3x3 camera matrix with positive fx, fy; got {kk.tolist()}")
    return d, kk


def backproject(depth_m: NDArray[np.floating], k: NDArray[np.floating]) -> NDArray[np.float32]:
    """Points ``HxWx3`` (metres, optical frame) of a z-depth map with camera matrix ``k``; NaN where depth is."""
    d, kk = _check(depth_m, k)
    h, w = d.shape
    u = (np.arange(w, dtype=np.float32) - np.float32(kk[0, 2])) / np.float32(kk[0, 0])
    v = (np.arange(h, dtype=np.float32) - np.float32(kk[1, 2])) / np.float32(kk[1, 1])
    return np.stack([d * u[None, :], d * v[:, None], d], axis=-1)


def normals_from_depth(depth_m: NDArray[np.floating], k: NDArray[np.floating]) -> NDArray[np.float32]:
    """Unit surface normals ``HxWx3`` in the optical frame, facing the camera (n . ray < 0); NaN where undefined.

    Central differences of the back-projected points. A normal needs a valid depth at the pixel and at both
    neighbours in each direction; borders and pixels beside invalid depth get NaN (no one-sided guesses).
    """
    p = backproject(depth_m, k)
    du = np.full_like(p, np.nan)
    dv = np.full_like(p, np.nan)
    du[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dv[1:-1, :] = p[2:, :] - p[:-2, :]
    n = np.cross(du, dv)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / length
        flip = np.sum(n * p, axis=-1, keepdims=True) > 0  # face the camera
    n = np.where(flip, -n, n)
    n[~np.isfinite(length[..., 0]) | (length[..., 0] < 1e-12) | ~np.isfinite(p[..., 2])] = np.nan
    return n.astype(np.float32)
