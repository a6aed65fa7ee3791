"""Back-projection and normals from depth, checked against analytic planes and the real TUM frame."""

from __future__ import annotations

import numpy as np
import pytest

from vb_perception.errors import CodecError
from vb_perception.geometry import backproject, normals_from_depth

K = np.array([[200.0, 0, 31.5], [0, 210.0, 23.5], [0, 0, 1]])


def test_backproject_follows_the_pinhole_model() -> None:
    depth = np.full((48, 64), 2.0, dtype=np.float32)
    depth[5, 7] = np.nan
    p = backproject(depth, K)
    assert p.shape == (48, 64, 3)
    np.testing.assert_allclose(p[10, 40], [(40 - 31.5) / 200 * 2, (10 - 23.5) / 210 * 2, 2.0], rtol=1e-6)
    assert np.all(np.isnan(p[5, 7]))


def test_normals_of_a_tilted_plane_are_exact() -> None:
    # Plane n . X = d in the optical frame, facing the camera; z-depth of each pixel's ray.
    n = np.array([0.3, -0.4, -1.0])
    n /= np.linalg.norm(n)
    h, w = 48, 64
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], -1)
    depth = (-3.0 / (rays @ n)).astype(np.float32)  # n . (z * ray) = -3
    est = normals_from_depth(depth, K)
    inner = est[1:-1, 1:-1].reshape(-1, 3)
    angle = np.degrees(np.arccos(np.clip(inner @ n, -1, 1)))
    assert angle.max() < 0.05
    assert np.all(np.isnan(est[0])) and np.all(np.isnan(est[:, -1]))


def test_tum_frame_normals_face_the_camera(tum_frame: tuple[np.ndarray, ...]) -> None:
    _, depth, k = tum_frame
    n = normals_from_depth(depth, k)
    p = backproject(depth, k)
    ok = np.isfinite(n[..., 0])
    assert ok.mean() > 0.6
    assert np.all(np.sum(n[ok] * p[ok], axis=-1) <= 1e-6)


def test_bad_camera_matrix_is_rejected() -> None:
    with pytest.raises(CodecError, match="3x3 camera matrix"):
        backproject(np.ones((4, 4), np.float32), np.eye(2))
