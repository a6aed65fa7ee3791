"""Ray casters: first hits of rays against a :class:`Scene`'s primitives.

Two backends with one contract, ``cast(scene, origins, dirs) -> (t, prim)``: ``t`` is the ray parameter of the
first hit in units of the direction's length (``inf`` on a miss) and ``prim`` the primitive index (-1 on a miss).

* ``torch``: exact analytic intersections (quads, yawed boxes, spheres, capped vertical cylinders) on any torch
  device. The renderer of the lent GPU machines, which have torch but no open3d; also runs on CPU (slower).
* ``open3d``: open3d's ``RaycastingScene`` (Embree, CPU) over triangle meshes of the same primitives (spheres and
  cylinders tessellated finely). The fast CPU renderer.

Normals are *not* taken from the backend: :func:`surface_normals` computes them analytically from the hit point and
the primitive, so both backends shade identically.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from vb_perception.offline.synth.scene import KIND_BOX, KIND_CYLINDER, KIND_QUAD, KIND_SPHERE, Scene

__all__ = ["BACKENDS", "Open3DRaycaster", "Raycaster", "TorchRaycaster", "make_raycaster", "surface_normals"]

BACKENDS = ("open3d", "torch")
_EPS = 1e-4
_OTHER_AXES = ((1, 2), (0, 2), (0, 1))


class Raycaster(Protocol):
    name: str
    device: torch.device

    def cast(self, scene: Scene, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """First hits: ``t`` float32 ``[N]`` (inf: miss) and ``prim`` int64 ``[N]`` (-1: miss)."""
        ...


def _params(scene: Scene, kind: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    idx = np.flatnonzero(scene.kind == kind)
    return torch.as_tensor(idx, device=device), torch.as_tensor(scene.params[idx], device=device)


class TorchRaycaster:
    """Analytic intersections, all primitives of a kind at once (``[P_kind, N]`` tensors)."""

    name = "torch"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def cast(self, scene: Scene, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o, d = origins.to(self.device, torch.float32), dirs.to(self.device, torch.float32)
        best_t = torch.full((o.shape[0],), math.inf, device=self.device)
        best_p = torch.full((o.shape[0],), -1, dtype=torch.int64, device=self.device)
        for kind, fn in ((KIND_QUAD, _quads), (KIND_BOX, _boxes), (KIND_SPHERE, _spheres), (KIND_CYLINDER, _cylinders)):
            idx, p = _params(scene, kind, self.device)
            if len(idx) == 0:
                continue
            t = fn(p, o, d)  # [P_kind, N], inf where missed
            t_min, arg = t.min(dim=0)
            closer = t_min < best_t
            best_t = torch.where(closer, t_min, best_t)
            best_p = torch.where(closer, idx[arg], best_p)
        return best_t, best_p


def _valid(t: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    return torch.where(ok & (t > _EPS), t, torch.full_like(t, math.inf))


def _quads(p: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    axis = p[:, 0].long()
    other = torch.tensor(_OTHER_AXES, device=o.device)[axis]  # [Q, 2]
    oa, da = o.T[axis], d.T[axis]  # [Q, N]
    t = (p[:, 1:2] - oa) / da
    a = o.T[other[:, 0]] + t * d.T[other[:, 0]]
    b = o.T[other[:, 1]] + t * d.T[other[:, 1]]
    ok = (a >= p[:, 2:3]) & (a <= p[:, 3:4]) & (b >= p[:, 4:5]) & (b <= p[:, 5:6]) & torch.isfinite(t)
    return _valid(t, ok)


def _to_box_frame(p: torch.Tensor, v: torch.Tensor, is_point: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Coordinates of points (or directions) in each box's yawed frame: three ``[B, N]`` tensors."""
    c, s = torch.cos(p[:, 6:7]), torch.sin(p[:, 6:7])
    x, y, z = v[:, 0][None], v[:, 1][None], v[:, 2][None]
    if is_point:
        x, y, z = x - p[:, 0:1], y - p[:, 1:2], z - p[:, 2:3]
    # inverse of the yaw rotation R_y(yaw) applied to world coordinates
    return c * x - s * z, y.expand_as(c * x), s * x + c * z


def _boxes(p: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    lo = torch.full((p.shape[0], o.shape[0]), -math.inf, device=o.device)
    hi = torch.full_like(lo, math.inf)
    for oo, dd, half in zip(_to_box_frame(p, o, True), _to_box_frame(p, d, False), (p[:, 3:4], p[:, 4:5], p[:, 5:6])):
        inv = 1.0 / dd
        t1, t2 = (-half - oo) * inv, (half - oo) * inv
        # A ray parallel to a slab and outside it has t1 = t2 = +-inf of the same sign: no hit; inside: nan-free.
        lo = torch.maximum(lo, torch.nan_to_num(torch.minimum(t1, t2), nan=-math.inf))
        hi = torch.minimum(hi, torch.nan_to_num(torch.maximum(t1, t2), nan=math.inf))
    return _valid(lo, hi >= lo)


def _spheres(p: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    oc = o[None] - p[:, None, 0:3]  # [S, N, 3]
    a = (d * d).sum(-1)[None]
    b = (oc * d[None]).sum(-1)
    c = (oc * oc).sum(-1) - p[:, 3:4] ** 2
    disc = b * b - a * c
    t = (-b - torch.sqrt(disc.clamp_min(0.0))) / a
    return _valid(t, disc >= 0)


def _cylinders(p: torch.Tensor, o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    x0, y0, z0, height, r = (p[:, i : i + 1] for i in range(5))
    ox, oy, oz = o[:, 0][None] - x0, o[:, 1][None] - y0, o[:, 2][None] - z0  # [C, N]
    dx, dy, dz = d[:, 0][None], d[:, 1][None], d[:, 2][None]
    a = dx * dx + dz * dz
    b = ox * dx + oz * dz
    c = ox * ox + oz * oz - r * r
    disc = b * b - a * c
    t_side = (-b - torch.sqrt(disc.clamp_min(0.0))) / a.clamp_min(1e-12)
    y_side = oy + t_side * dy
    t_side = _valid(t_side, (disc >= 0) & (a > 1e-12) & (y_side >= 0) & (y_side <= height))
    best = t_side
    for cap in (torch.zeros_like(height), height):
        t_cap = (cap - oy) / dy
        px, pz = ox + t_cap * dx, oz + t_cap * dz
        best = torch.minimum(best, _valid(t_cap, (px * px + pz * pz <= r * r) & torch.isfinite(t_cap)))
    return best


def surface_normals(scene: Scene, points: torch.Tensor, dirs: torch.Tensor, prim: torch.Tensor) -> torch.Tensor:
    """Unit world-frame normals ``[N, 3]`` at hit ``points`` of primitives ``prim``, facing against ``dirs``
    (NaN where ``prim`` is -1)."""
    dev = points.device
    params = torch.as_tensor(scene.params, device=dev)
    kind = torch.as_tensor(scene.kind, device=dev).long()
    n = torch.full_like(points, math.nan)
    hit = prim >= 0
    kk = torch.where(hit, kind[prim.clamp_min(0)], torch.full_like(prim, -1))
    for k in (KIND_QUAD, KIND_BOX, KIND_SPHERE, KIND_CYLINDER):  # each formula only on its own pixels
        sel = torch.nonzero(kk == k).squeeze(1)
        if len(sel) == 0:
            continue
        x, pp = points[sel], params[prim[sel]]
        if k == KIND_QUAD:  # the axis normal
            n[sel] = torch.nn.functional.one_hot(pp[:, 0].long().clamp(0, 2), 3).to(points.dtype)
        elif k == KIND_BOX:  # the face whose slab the local point presses hardest against, rotated back
            c, s = torch.cos(pp[:, 6]), torch.sin(pp[:, 6])
            rel = x - pp[:, 0:3]
            local = torch.stack([c * rel[:, 0] - s * rel[:, 2], rel[:, 1], s * rel[:, 0] + c * rel[:, 2]], 1)
            local = local / pp[:, 3:6].clamp_min(1e-9)
            face = local.abs().argmax(1)
            ln = torch.nn.functional.one_hot(face, 3).to(points.dtype) * torch.sign(local.gather(1, face[:, None]))
            n[sel] = torch.stack([c * ln[:, 0] + s * ln[:, 2], ln[:, 1], -s * ln[:, 0] + c * ln[:, 2]], 1)
        elif k == KIND_SPHERE:  # radial
            n[sel] = x - pp[:, 0:3]
        else:  # cylinders: radial on the side, vertical on the caps (whichever surface the point is closer to)
            dxz = torch.stack([x[:, 0] - pp[:, 0], torch.zeros_like(x[:, 0]), x[:, 2] - pp[:, 2]], 1)
            side_err = (dxz.norm(dim=1) - pp[:, 4]).abs()
            y_rel = x[:, 1] - pp[:, 1]
            cap_err = torch.minimum(y_rel.abs(), (y_rel - pp[:, 3]).abs())
            up = torch.zeros_like(x)
            up[:, 1] = 1.0
            n[sel] = torch.where((cap_err < side_err)[:, None], up, dxz)
    n = torch.nn.functional.normalize(n, dim=1, eps=1e-12)
    return torch.where(((n * dirs).sum(1) > 0)[:, None], -n, n)  # face the ray; NaN stays NaN on misses


# ------------------------------------------------------------------------------------------------ open3d backend


def _unit_sphere(n_lat: int = 16, n_lon: int = 32) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    v = np.stack([np.sin(la) * np.cos(lo), np.cos(la), np.sin(la) * np.sin(lo)], -1).reshape(-1, 3)
    tris = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, e = a + n_lon, b + n_lon
            tris += [(a, c, b), (b, c, e)]
    # Vertices lie on the sphere; facet centres dip inside by about r (1 - cos(pi / n_lon)), 0.5 % of r here.
    return v.astype(np.float32), np.array(tris, dtype=np.int32)


def _unit_cylinder(n: int = 32) -> tuple[NDArray[np.float32], NDArray[np.int32]]:
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(ang), np.zeros(n), np.sin(ang)], -1)
    top = ring + [0, 1, 0]
    v = np.concatenate([ring, top, [[0, 0, 0], [0, 1, 0]]]).astype(np.float32)
    tris = []
    for j in range(n):
        k = (j + 1) % n
        tris += [(j, n + j, k), (k, n + j, n + k), (2 * n, j, k), (2 * n + 1, n + k, n + j)]
    return v, np.array(tris, dtype=np.int32)


_BOX_V = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32)
_BOX_T = np.array(
    [
        (0, 1, 3),
        (0, 3, 2),
        (4, 6, 7),
        (4, 7, 5),
        (0, 4, 5),
        (0, 5, 1),
        (2, 3, 7),
        (2, 7, 6),
        (0, 2, 6),
        (0, 6, 4),
        (1, 5, 7),
        (1, 7, 3),
    ],
    dtype=np.int32,
)
_SPHERE_V, _SPHERE_T = _unit_sphere()
_CYL_V, _CYL_T = _unit_cylinder()


def scene_mesh(scene: Scene) -> tuple[NDArray[np.float32], NDArray[np.int32], NDArray[np.int64]]:
    """Triangle mesh of all primitives: vertices ``[V, 3]``, triangles ``[T, 3]``, owning primitive ``[T]``."""
    verts, tris, owner = [], [], []
    offset = 0
    for i, (kind, p) in enumerate(zip(scene.kind, scene.params)):
        if kind == KIND_QUAD:
            axis, off = int(p[0]), p[1]
            a, b = _OTHER_AXES[axis]
            v = np.zeros((4, 3), np.float32)
            v[:, axis] = off
            v[:, a] = [p[2], p[3], p[3], p[2]]
            v[:, b] = [p[4], p[4], p[5], p[5]]
            t = np.array([(0, 1, 2), (0, 2, 3)], np.int32)
        elif kind == KIND_BOX:
            c, s = math.cos(p[6]), math.sin(p[6])
            local = _BOX_V * p[3:6]
            rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float32)
            v, t = local @ rot.T + p[0:3], _BOX_T
        elif kind == KIND_SPHERE:
            v, t = _SPHERE_V * p[3] + p[0:3], _SPHERE_T
        else:
            x, y0, z, h, r = p[:5]
            v, t = _CYL_V * np.array([r, h, r], np.float32) + np.array([x, y0, z], np.float32), _CYL_T
        verts.append(v)
        tris.append(t + offset)
        owner.append(np.full(len(t), i, np.int64))
        offset += len(v)
    return np.concatenate(verts).astype(np.float32), np.concatenate(tris), np.concatenate(owner)


class Open3DRaycaster:
    """open3d ``RaycastingScene`` (Embree) over :func:`scene_mesh`; CPU only. Caches the last scene's BVH."""

    name = "open3d"

    def __init__(self) -> None:
        import open3d  # noqa: F401  (fail early with ImportError if the wheel is missing)

        self.device = torch.device("cpu")
        self._cached: tuple[Scene, object, NDArray[np.int64]] | None = None

    def _scene(self, scene: Scene) -> tuple[object, NDArray[np.int64]]:
        # Keyed by the scene object itself (held here, so its id cannot be reused by a new scene meanwhile).
        if self._cached is None or self._cached[0] is not scene:
            import open3d as o3d

            v, t, owner = scene_mesh(scene)
            rc = o3d.t.geometry.RaycastingScene()
            rc.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(t.astype(np.uint32)))
            self._cached = (scene, rc, owner)
        return self._cached[1], self._cached[2]

    def cast(self, scene: Scene, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import open3d as o3d

        rc, owner = self._scene(scene)
        rays = torch.cat([origins, dirs], dim=1).to(torch.float32).cpu().numpy()
        out = rc.cast_rays(o3d.core.Tensor(rays))  # type: ignore[attr-defined]
        t = out["t_hit"].numpy()
        tri = out["primitive_ids"].numpy().astype(np.int64)
        hit = np.isfinite(t)
        prim = np.where(hit, owner[np.where(hit, tri, 0)], -1)
        return torch.from_numpy(t), torch.from_numpy(prim)


def make_raycaster(backend: str = "auto", device: str = "cpu") -> Raycaster:
    """``auto``: open3d on CPU when installed, else torch (on ``device``)."""
    if backend == "auto":
        if device == "cpu":
            try:
                return Open3DRaycaster()
            except ImportError:
                pass
        return TorchRaycaster(device)
    if backend == "open3d":
        return Open3DRaycaster()
    if backend == "torch":
        return TorchRaycaster(device)
    raise ValueError(f"unknown ray-casting backend {backend!r}; use auto, {' or '.join(BACKENDS)}")
