"""Render a :class:`Scene` into a training sample: RGB, z-depth, normals, instance ids and K.

Ray casting comes from a backend (:mod:`.raycast`); shading (procedural textures, one light with shadows, ambient,
sky) runs in torch on the backend's device; sensor effects (exposure, noise, blur, JPEG) in numpy on the CPU.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from vb_perception.offline.synth.attributes import InstanceInfo, describe_instances
from vb_perception.offline.synth.raycast import Raycaster, surface_normals
from vb_perception.offline.synth.scene import TEXTURES, Scene

__all__ = ["Sample", "SensorConfig", "render_scene"]


@dataclass(frozen=True)
class SensorConfig:
    """Camera effects applied to the RGB only (ground truth stays clean). Probabilities and ranges per sample."""

    exposure: tuple[float, float] = (0.75, 1.35)
    noise_sigma: tuple[float, float] = (0.0, 0.02)
    blur_prob: float = 0.3
    blur_sigma_px: tuple[float, float] = (0.3, 1.0)
    jpeg_prob: float = 0.3
    jpeg_quality: tuple[int, int] = (50, 95)


@dataclass(frozen=True)
class Sample:
    """One rendered view.

    Attributes:
        rgb: uint8 ``HxWx3``, sRGB after sensor effects.
        depth_m: float32 ``HxW``, z-depth along the optical axis in metres; NaN where nothing was hit (sky).
        normals: float32 ``HxWx3``, unit normals in the paper's camera frame (+x right, +y up, +z to the viewer);
            NaN where depth is NaN.
        instance_ids: int32 ``HxW``; 0 = nothing (sky), else the id of an entry in ``instances``.
        k: float64 ``3x3`` camera matrix in pixels.
        instances: every instance with at least one visible pixel, with attributes for referring expressions.
        family: scene family ("indoor", "tabletop", "street").
        seed: the seed this sample was generated from (None when rendered from a hand-made scene).
    """

    rgb: NDArray[np.uint8]
    depth_m: NDArray[np.float32]
    normals: NDArray[np.float32]
    instance_ids: NDArray[np.int32]
    k: NDArray[np.float64]
    instances: tuple[InstanceInfo, ...]
    family: str
    seed: int | None = None


def _hash01(cell: torch.Tensor) -> torch.Tensor:
    """A repeatable pseudo-random value in [0, 1) per integer lattice point ``[N, 3]`` (integer hashing)."""
    c = cell.to(torch.int64)
    h = (c[:, 0] * 73856093) ^ (c[:, 1] * 19349663) ^ (c[:, 2] * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).to(torch.float32) / 65536.0


def _value_noise(x: torch.Tensor) -> torch.Tensor:
    """Trilinear value noise in [0, 1] at points ``[N, 3]`` (lattice spacing 1)."""
    base = torch.floor(x)
    f = x - base
    f = f * f * (3 - 2 * f)
    out = torch.zeros(x.shape[0], device=x.device)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                corner = base + torch.tensor([dx, dy, dz], device=x.device, dtype=x.dtype)
                w = (
                    (f[:, 0] if dx else 1 - f[:, 0])
                    * (f[:, 1] if dy else 1 - f[:, 1])
                    * (f[:, 2] if dz else 1 - f[:, 2])
                )
                out = out + w * _hash01(corner)
    return out


def _albedo(scene: Scene, points: torch.Tensor, prim: torch.Tensor) -> torch.Tensor:
    dev = points.device
    mats = scene.materials
    mat = torch.as_tensor(scene.material, device=dev).long()[prim.clamp_min(0)]
    rgb = torch.tensor([m.rgb for m in mats], device=dev, dtype=torch.float32)[mat]
    tex = torch.tensor([TEXTURES.index(m.texture) for m in mats], device=dev)[mat]
    scale = torch.tensor([m.scale_m for m in mats], device=dev, dtype=torch.float32)[mat][:, None]
    contrast = torch.tensor([m.contrast for m in mats], device=dev, dtype=torch.float32)[mat]
    q = points / scale
    pattern = torch.zeros_like(contrast)
    for name in ("checker", "stripes", "noise"):  # evaluate each texture only where it is used
        sel = torch.nonzero(tex == TEXTURES.index(name)).squeeze(1)
        if len(sel) == 0:
            continue
        qs = q[sel]
        if name == "checker":
            value = torch.remainder(torch.floor(qs).sum(1), 2.0) - 0.5
        elif name == "stripes":
            value = 0.5 * torch.sin(2 * math.pi * (qs[:, 0] + qs[:, 2] + 0.3 * qs[:, 1]))
        else:
            value = _value_noise(qs * 2.0) - 0.5
        pattern[sel] = value
    return (rgb * (1.0 + contrast * pattern)[:, None]).clamp(0.0, 1.0)


def _shade(
    scene: Scene, caster: Raycaster, points: torch.Tensor, normals: torch.Tensor, prim: torch.Tensor
) -> torch.Tensor:
    dev = points.device
    light = scene.light
    lcol = torch.tensor(light.color, device=dev, dtype=torch.float32)
    start = points + normals * 2e-3
    if light.kind == "directional":
        to_light = torch.tensor(light.vector / np.linalg.norm(light.vector), device=dev, dtype=torch.float32).expand_as(
            points
        )
        t_block, _ = caster.cast(scene, start, to_light)
        visible = ~torch.isfinite(t_block.to(dev))
        falloff = torch.ones_like(t_block, device=dev)
        unit = to_light
    else:
        to_light = torch.tensor(light.vector, device=dev, dtype=torch.float32) - start
        t_block, _ = caster.cast(scene, start, to_light)
        visible = t_block.to(dev) >= 1.0  # the ray parameter reaches the light at 1
        dist2 = (to_light * to_light).sum(1)
        falloff = 8.0 / (8.0 + dist2)
        unit = torch.nn.functional.normalize(to_light, dim=1)
    ndl = (normals * unit).sum(1).clamp_min(0.0)
    ambient = light.ambient * (0.7 + 0.3 * normals[:, 1])  # a little sky-from-above
    albedo = _albedo(scene, points, prim)
    return albedo * (ambient[:, None] + (ndl * visible * falloff)[:, None] * lcol)


def _sensor(rgb_linear: NDArray[np.float32], rng: np.random.Generator, cfg: SensorConfig) -> NDArray[np.uint8]:
    img = np.clip(rgb_linear * rng.uniform(*cfg.exposure), 0.0, 1.0) ** (1 / 2.2)
    sigma = rng.uniform(*cfg.noise_sigma)
    if sigma > 0:
        img = img + rng.normal(0.0, sigma, img.shape)
    if rng.random() < cfg.blur_prob:
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, sigma=(rng.uniform(*cfg.blur_sigma_px),) * 2 + (0,))
    out = np.rint(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    if rng.random() < cfg.jpeg_prob:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, "JPEG", quality=int(rng.integers(*cfg.jpeg_quality)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def render_scene(
    scene: Scene,
    caster: Raycaster,
    rng: np.random.Generator | None = None,
    sensor: SensorConfig | None = SensorConfig(),
    seed: int | None = None,
) -> Sample:
    """Ray cast, shade and post-process one scene. ``sensor=None`` gives the clean (gamma-encoded) render."""
    rng = rng if rng is not None else np.random.default_rng(0)
    cam = scene.camera
    h, w = cam.height_px, cam.width_px
    dev = caster.device
    dirs = torch.from_numpy(cam.ray_directions()).to(dev)  # [N, 3], optical z-component 1: t is z-depth
    origins = torch.tensor(cam.position_m, dtype=torch.float32, device=dev).expand_as(dirs)
    t, prim = caster.cast(scene, origins, dirs)
    t, prim = t.to(dev), prim.to(dev)
    hit = prim >= 0
    points = origins + torch.where(hit, t, torch.zeros_like(t))[:, None] * dirs
    normals_w = surface_normals(scene, points, dirs, prim)

    colour = torch.zeros_like(points)
    if hit.any():
        colour[hit] = _shade(scene, caster, points[hit], normals_w[hit], prim[hit])
    if scene.sky_rgb is not None:
        up = torch.nn.functional.normalize(dirs, dim=1)[:, 1].clamp(-1, 1)
        sky = torch.tensor(scene.sky_rgb, device=dev) * (0.75 + 0.35 * up[:, None]) + 0.15 * (1 - up.abs())[:, None]
        colour = torch.where(hit[:, None], colour, sky)

    r = torch.as_tensor(cam.r_cam_to_world, dtype=torch.float32, device=dev)
    normals_cam = normals_w @ r  # R^T n, row-vector form
    depth = torch.where(hit, t, torch.full_like(t, math.nan))
    inst = torch.as_tensor(scene.instance, device=dev)[prim.clamp_min(0)]
    inst = torch.where(hit, inst, torch.zeros_like(inst))

    linear = colour.reshape(h, w, 3).cpu().numpy().astype(np.float32)
    rgb = (
        _sensor(linear, rng, sensor)
        if sensor is not None
        else np.rint(np.clip(linear, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)
    )
    depth_np = depth.reshape(h, w).cpu().numpy().astype(np.float32)
    ids = inst.reshape(h, w).cpu().numpy().astype(np.int32)
    return Sample(
        rgb=rgb,
        depth_m=depth_np,
        normals=normals_cam.reshape(h, w, 3).cpu().numpy().astype(np.float32),
        instance_ids=ids,
        k=cam.k.copy(),
        instances=describe_instances(scene.instances, ids, depth_np),
        family=scene.family,
        seed=seed,
    )
