"""The scene description both ray casters render: analytic primitives, instances, materials, camera and light.

World frame: x right, y up, z towards the initial viewer (right-handed). Lengths in metres. The camera frame is the
paper's (+x right, +y up, +z out of the image towards the viewer; the camera looks along -z); its pose maps camera
coordinates to world coordinates: ``X_world = R_cam_to_world @ X_cam + position_m``.

Primitives (one flat table, index = primitive id):

* ``quad``: an axis-aligned rectangle facing ``+/-axis`` (floors, walls, ceilings, ground), two-sided;
* ``box``: a box with half-extents, rotated by ``yaw_rad`` about the vertical axis through its centre;
* ``sphere``: centre and radius;
* ``cylinder``: a vertical capped cylinder: centre of its base circle at (x, y0, z), height, radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "KIND_BOX",
    "KIND_CYLINDER",
    "KIND_QUAD",
    "KIND_SPHERE",
    "TEXTURES",
    "Camera",
    "Instance",
    "Light",
    "Material",
    "Scene",
    "SceneBuilder",
]

KIND_QUAD, KIND_BOX, KIND_SPHERE, KIND_CYLINDER = 0, 1, 2, 3
#: Procedural textures, evaluated on world coordinates of the hit point.
TEXTURES = ("plain", "checker", "stripes", "noise")


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. ``k`` is the 3x3 matrix in pixels (pixel centres at integer coordinates, as ROS)."""

    width_px: int
    height_px: int
    k: NDArray[np.float64]
    r_cam_to_world: NDArray[np.float64]
    position_m: NDArray[np.float64]

    def ray_directions(self) -> NDArray[np.float32]:
        """World-frame ray directions ``[H*W, 3]`` scaled so that the ray parameter *is* the z-depth in metres."""
        u, v = np.meshgrid(np.arange(self.width_px), np.arange(self.height_px))
        x = (u - self.k[0, 2]) / self.k[0, 0]
        y = (v - self.k[1, 2]) / self.k[1, 1]
        d_cam = np.stack([x, -y, -np.ones_like(x)], axis=-1).reshape(-1, 3)  # optical (x, y, 1) in paper frame
        return (d_cam @ self.r_cam_to_world.T).astype(np.float32)


@dataclass(frozen=True)
class Light:
    """One light with shadows: ``directional`` (sun; ``vector`` points towards the light) or ``point`` (position)."""

    kind: str
    vector: NDArray[np.float64]
    color: NDArray[np.float64]
    ambient: float


@dataclass(frozen=True)
class Material:
    """Albedo ``rgb`` (linear, 0-1) with a procedural texture of ``scale_m`` and ``contrast`` (0-1)."""

    rgb: tuple[float, float, float]
    texture: str = "plain"
    scale_m: float = 0.5
    contrast: float = 0.0


@dataclass(frozen=True)
class Instance:
    """One object: its class, the basic colour name it was painted in, and its largest extent in metres."""

    id: int
    class_name: str
    color_name: str
    size_m: float
    is_object: bool = True  # False for stuff (floor, wall, road...), which instance prompts never target


@dataclass(frozen=True)
class Scene:
    """Everything a ray caster and the shader need. Primitive arrays all have length P."""

    family: str
    kind: NDArray[np.int32]  # [P] KIND_*
    params: NDArray[np.float32]  # [P, 8] per kind, see SceneBuilder
    instance: NDArray[np.int32]  # [P] instance id (>= 1) of each primitive
    material: NDArray[np.int32]  # [P] index into materials
    materials: tuple[Material, ...]
    instances: tuple[Instance, ...]
    camera: Camera
    light: Light
    sky_rgb: tuple[float, float, float] | None  # colour of rays that hit nothing (None: closed scene)

    @property
    def n_primitives(self) -> int:
        return len(self.kind)


@dataclass
class SceneBuilder:
    """Collects primitives, materials and instances; :meth:`build` freezes them into a :class:`Scene`.

    ``params`` layout per kind (8 floats):
    quad ``[axis, offset, lo_a, hi_a, lo_b, hi_b, 0, 0]`` (a, b: the other two axes in increasing order);
    box ``[cx, cy, cz, hx, hy, hz, yaw, 0]``; sphere ``[cx, cy, cz, r, 0...]``;
    cylinder ``[x, y0, z, height, radius, 0...]``.
    """

    family: str
    kinds: list[int] = field(default_factory=list)
    params: list[list[float]] = field(default_factory=list)
    prim_instance: list[int] = field(default_factory=list)
    prim_material: list[int] = field(default_factory=list)
    materials: list[Material] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)

    def instance(self, class_name: str, color_name: str, size_m: float, is_object: bool = True) -> int:
        """Register an instance and return its id (1, 2, ...)."""
        iid = len(self.instances) + 1
        self.instances.append(Instance(iid, class_name, color_name, float(size_m), is_object))
        return iid

    def material(self, m: Material) -> int:
        self.materials.append(m)
        return len(self.materials) - 1

    def _add(self, kind: int, p: list[float], iid: int, mat: int) -> None:
        self.kinds.append(kind)
        self.params.append([float(x) for x in p] + [0.0] * (8 - len(p)))
        self.prim_instance.append(iid)
        self.prim_material.append(mat)

    def quad(
        self, axis: int, offset: float, lo_a: float, hi_a: float, lo_b: float, hi_b: float, iid: int, mat: int
    ) -> None:
        self._add(KIND_QUAD, [axis, offset, lo_a, hi_a, lo_b, hi_b], iid, mat)

    def box(
        self, center: tuple[float, float, float], half: tuple[float, float, float], yaw: float, iid: int, mat: int
    ) -> None:
        self._add(KIND_BOX, [*center, *half, yaw], iid, mat)

    def sphere(self, center: tuple[float, float, float], radius: float, iid: int, mat: int) -> None:
        self._add(KIND_SPHERE, [*center, radius], iid, mat)

    def cylinder(self, x: float, y0: float, z: float, height: float, radius: float, iid: int, mat: int) -> None:
        self._add(KIND_CYLINDER, [x, y0, z, height, radius], iid, mat)

    def build(self, camera: Camera, light: Light, sky_rgb: tuple[float, float, float] | None) -> Scene:
        return Scene(
            family=self.family,
            kind=np.array(self.kinds, dtype=np.int32),
            params=np.array(self.params, dtype=np.float32).reshape(-1, 8),
            instance=np.array(self.prim_instance, dtype=np.int32),
            material=np.array(self.prim_material, dtype=np.int32),
            materials=tuple(self.materials),
            instances=tuple(self.instances),
            camera=camera,
            light=light,
            sky_rgb=sky_rgb,
        )
