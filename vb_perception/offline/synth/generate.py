"""Procedural scene families: indoor rooms, tabletops and outdoor streets, drawn from a numpy Generator.

Every object is an instance with a class name, the basic colour name it is painted in and its size, so that
prompts (semantic classes, instances, referring expressions) can be written about what is visible.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from vb_perception.offline.synth.scene import Camera, Light, Material, Scene, SceneBuilder

__all__ = ["BASIC_COLORS", "FAMILIES", "OBJECT_CLASSES", "generate_scene"]

#: Basic colour names objects are painted in (linear albedo), for referring expressions like "the red chair".
BASIC_COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.75, 0.08, 0.07),
    "green": (0.12, 0.55, 0.15),
    "blue": (0.08, 0.18, 0.75),
    "yellow": (0.9, 0.78, 0.1),
    "orange": (0.95, 0.45, 0.05),
    "purple": (0.45, 0.12, 0.6),
    "pink": (0.95, 0.45, 0.6),
    "brown": (0.4, 0.24, 0.1),
    "white": (0.88, 0.88, 0.86),
    "black": (0.04, 0.04, 0.045),
    "gray": (0.45, 0.45, 0.47),
    "cyan": (0.1, 0.65, 0.75),
}
_STUFF_COLORS = ("white", "gray", "brown", "yellow", "blue", "green", "pink", "orange", "cyan")
FAMILIES = ("indoor", "tabletop", "street")

#: Object classes each family can place (stuff classes: floor, wall, ceiling, table top, road, sidewalk, sky...).
OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "indoor": ("table", "chair", "shelf", "sofa", "bed", "cabinet", "box", "lamp", "plant", "ball", "door"),
    "tabletop": ("cup", "bottle", "book", "ball", "bowl", "apple", "orange", "box", "laptop", "can"),
    "street": ("car", "truck", "bus", "building", "pole", "traffic sign", "tree", "person", "bench", "trash can"),
}


def _mat(b: SceneBuilder, rng: np.random.Generator, color: str, texture: str | None = None) -> int:
    base = np.array(BASIC_COLORS[color]) * rng.uniform(0.85, 1.1)
    tex = texture if texture is not None else str(rng.choice(["plain", "plain", "noise", "stripes", "checker"]))
    return b.material(
        Material(
            rgb=tuple(float(c) for c in np.clip(base, 0.0, 1.0)),  # type: ignore[arg-type]
            texture=tex,
            scale_m=float(rng.uniform(0.05, 0.6)),
            contrast=float(rng.uniform(0.1, 0.45)) if tex != "plain" else 0.0,
        )
    )


def _color(rng: np.random.Generator, choices: tuple[str, ...] | None = None) -> str:
    return str(rng.choice(list(choices or BASIC_COLORS)))


def _rot(x: float, z: float, yaw: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return c * x + s * z, -s * x + c * z


# ------------------------------------------------------------------------------------------------ object recipes
# Each recipe places one instance at ground position (x, z) on a support at height y with a yaw, and returns its
# footprint radius (metres) for spacing.


def _table(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, d, h = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0), rng.uniform(0.68, 0.78)
    color = _color(rng, ("brown", "white", "black", "gray"))
    iid, m = b.instance("table", color, max(w, d)), _mat(b, rng, color, "stripes")
    b.box((x, y + h - 0.02, z), (w / 2, 0.02, d / 2), yaw, iid, m)
    for sx in (-1, 1):
        for sz in (-1, 1):
            dx, dz = _rot(sx * (w / 2 - 0.05), sz * (d / 2 - 0.05), yaw)
            b.box((x + dx, y + (h - 0.04) / 2, z + dz), (0.025, (h - 0.04) / 2, 0.025), yaw, iid, m)
    return max(w, d) / 2


def _chair(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    s, seat_h, back_h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48), rng.uniform(0.35, 0.5)
    color = _color(rng)
    iid, m = b.instance("chair", color, seat_h + back_h), _mat(b, rng, color)
    b.box((x, y + seat_h, z), (s / 2, 0.025, s / 2), yaw, iid, m)
    bx, bz = _rot(0.0, -s / 2 + 0.02, yaw)
    b.box((x + bx, y + seat_h + back_h / 2, z + bz), (s / 2, back_h / 2, 0.02), yaw, iid, m)
    for sx in (-1, 1):
        for sz in (-1, 1):
            dx, dz = _rot(sx * (s / 2 - 0.03), sz * (s / 2 - 0.03), yaw)
            b.box((x + dx, y + seat_h / 2, z + dz), (0.02, seat_h / 2, 0.02), yaw, iid, m)
    return s * 0.75


def _box_object(
    cls: str, size: tuple[float, float]
) -> Callable[[SceneBuilder, np.random.Generator, float, float, float, float], float]:
    def recipe(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
        w, h, d = (rng.uniform(*size) for _ in range(3))
        if cls == "book":
            w, h, d = rng.uniform(0.14, 0.24), rng.uniform(0.02, 0.06), rng.uniform(0.2, 0.3)
        color = _color(rng)
        iid = b.instance(cls, color, max(w, h, d))
        b.box((x, y + h / 2, z), (w / 2, h / 2, d / 2), yaw, iid, _mat(b, rng, color))
        return max(w, d) / 2

    return recipe


def _shelf(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, h, d, n = rng.uniform(0.6, 1.2), rng.uniform(1.0, 2.0), rng.uniform(0.3, 0.4), int(rng.integers(2, 5))
    color = _color(rng, ("brown", "white", "black", "gray"))
    iid, m = b.instance("shelf", color, max(w, h)), _mat(b, rng, color, "stripes")
    for sx in (-1, 1):
        dx, dz = _rot(sx * (w / 2 - 0.015), 0.0, yaw)
        b.box((x + dx, y + h / 2, z + dz), (0.015, h / 2, d / 2), yaw, iid, m)
    for i in range(n + 1):
        b.box((x, y + 0.015 + i * (h - 0.03) / n, z), (w / 2, 0.015, d / 2), yaw, iid, m)
    bx, bz = _rot(0.0, -d / 2 + 0.005, yaw)
    b.box((x + bx, y + h / 2, z + bz), (w / 2, h / 2, 0.005), yaw, iid, m)
    return max(w, d) / 2


def _sofa(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, d = rng.uniform(1.4, 2.2), rng.uniform(0.8, 1.0)
    color = _color(rng)
    iid, m = b.instance("sofa", color, w), _mat(b, rng, color, "noise")
    b.box((x, y + 0.22, z), (w / 2, 0.22, d / 2), yaw, iid, m)
    bx, bz = _rot(0.0, -d / 2 + 0.1, yaw)
    b.box((x + bx, y + 0.55, z + bz), (w / 2, 0.35, 0.1), yaw, iid, m)
    for sx in (-1, 1):
        ax, az = _rot(sx * (w / 2 - 0.09), 0.0, yaw)
        b.box((x + ax, y + 0.4, z + az), (0.09, 0.18, d / 2), yaw, iid, m)
    return max(w, d) / 2


def _bed(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, d = rng.uniform(1.0, 1.8), rng.uniform(1.9, 2.1)
    color = _color(rng)
    iid = b.instance("bed", color, d)
    b.box((x, y + 0.2, z), (w / 2, 0.2, d / 2), yaw, iid, _mat(b, rng, "brown", "stripes"))
    b.box((x, y + 0.48, z), (w / 2 - 0.02, 0.08, d / 2 - 0.02), yaw, iid, _mat(b, rng, color, "noise"))
    hx, hz = _rot(0.0, -d / 2, yaw)
    b.box((x + hx, y + 0.5, z + hz), (w / 2, 0.5, 0.04), yaw, iid, _mat(b, rng, "brown", "stripes"))
    return max(w, d) / 2


def _lamp(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    h = rng.uniform(1.2, 1.7)
    color = _color(rng)
    iid, m = b.instance("lamp", color, h), _mat(b, rng, color)
    b.cylinder(x, y, z, 0.03, 0.15, iid, m)
    b.cylinder(x, y, z, h, 0.015, iid, m)
    b.cylinder(x, y + h - 0.05, z, 0.25, rng.uniform(0.15, 0.22), iid, m)
    return 0.2


def _plant(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    pot_r, pot_h = rng.uniform(0.1, 0.2), rng.uniform(0.2, 0.4)
    iid = b.instance("plant", "green", pot_h + 2 * pot_r * 2)
    b.cylinder(x, y, z, pot_h, pot_r, iid, _mat(b, rng, _color(rng, ("brown", "white", "orange", "gray"))))
    b.sphere((x, y + pot_h + pot_r * 1.6, z), pot_r * 1.9, iid, _mat(b, rng, "green", "noise"))
    return pot_r * 1.9


def _sphere_object(
    cls: str, radius: tuple[float, float], colors: tuple[str, ...] | None = None
) -> Callable[..., float]:
    def recipe(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
        r = rng.uniform(*radius)
        color = _color(rng, colors)
        iid = b.instance(cls, color, 2 * r)
        b.sphere((x, y + r, z), r, iid, _mat(b, rng, color, "plain" if cls != "ball" else None))
        return r

    return recipe


def _cylinder_object(cls: str, radius: tuple[float, float], height: tuple[float, float]) -> Callable[..., float]:
    def recipe(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
        r, h = rng.uniform(*radius), rng.uniform(*height)
        color = _color(rng)
        iid, m = b.instance(cls, color, max(2 * r, h)), _mat(b, rng, color)
        b.cylinder(x, y, z, h, r, iid, m)
        if cls == "bottle":
            b.cylinder(x, y + h, z, h * 0.35, r * 0.35, iid, m)
        return r

    return recipe


def _laptop(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, d = rng.uniform(0.3, 0.38), rng.uniform(0.22, 0.26)
    color = _color(rng, ("gray", "black", "white"))
    iid, m = b.instance("laptop", color, w), _mat(b, rng, color, "plain")
    b.box((x, y + 0.01, z), (w / 2, 0.01, d / 2), yaw, iid, m)
    sx, sz = _rot(0.0, -d / 2, yaw)
    b.box((x + sx, y + 0.02 + d / 2, z + sz), (w / 2, d / 2, 0.006), yaw, iid, m)
    return w / 2


def _door(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    color = _color(rng, ("brown", "white", "gray", "blue", "green"))
    iid = b.instance("door", color, 2.05)
    b.box((x, y + 1.02, z), (0.45, 1.02, 0.03), yaw, iid, _mat(b, rng, color, "stripes"))
    return 0.5


def _car(cls: str) -> Callable[..., float]:
    dims = {"car": (1.8, 4.3, 1.45), "truck": (2.4, 7.0, 3.0), "bus": (2.5, 11.0, 3.1)}[cls]

    def recipe(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
        w, length, h = (v * rng.uniform(0.9, 1.1) for v in dims)
        color = _color(rng)
        iid, m = b.instance(cls, color, length), _mat(b, rng, color, "plain")
        body_h = h * (0.55 if cls == "car" else 0.95)
        b.box((x, y + 0.3 + body_h / 2 - 0.15, z), (w / 2, body_h / 2, length / 2), yaw, iid, m)
        if cls == "car":
            cx, cz = _rot(0.0, -0.2, yaw)
            b.box(
                (x + cx, y + 0.15 + body_h + (h - body_h) / 2, z + cz),
                (w / 2 - 0.1, (h - body_h) / 2, length / 4),
                yaw,
                iid,
                m,
            )
        dark = _mat(b, rng, "black", "plain")
        for sz in (-1, 1):
            for sx in (-1, 1):
                wx, wz = _rot(sx * (w / 2 - 0.05), sz * (length / 2 - 0.7), yaw)
                b.box((x + wx, y + 0.32, z + wz), (0.1, 0.32, 0.32), yaw, iid, dark)
        return length / 2

    return recipe


def _pole(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    h = rng.uniform(3.0, 7.0)
    color = _color(rng, ("gray", "black", "white"))
    iid = b.instance("pole", color, h)
    b.cylinder(x, y, z, h, rng.uniform(0.05, 0.12), iid, _mat(b, rng, color, "plain"))
    return 0.2


def _sign(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    color = _color(rng, ("red", "blue", "yellow", "white", "green"))
    iid = b.instance("traffic sign", color, 2.6)
    b.cylinder(x, y, z, 2.2, 0.04, iid, _mat(b, rng, "gray", "plain"))
    b.box((x, y + 2.4, z), (0.35, 0.35, 0.02), yaw, iid, _mat(b, rng, color, "plain"))
    return 0.4


def _tree(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    h, r = rng.uniform(2.0, 4.0), rng.uniform(1.0, 2.2)
    iid = b.instance("tree", "green", h + r)
    b.cylinder(x, y, z, h, rng.uniform(0.12, 0.25), iid, _mat(b, rng, "brown", "noise"))
    b.sphere((x, y + h + r * 0.6, z), r, iid, _mat(b, rng, "green", "noise"))
    return r


def _person(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    h = rng.uniform(1.55, 1.9)
    color = _color(rng)
    iid = b.instance("person", color, h)
    b.cylinder(x, y, z, h * 0.48, 0.14, iid, _mat(b, rng, _color(rng, ("blue", "black", "gray", "brown")), "plain"))
    b.cylinder(x, y + h * 0.48, z, h * 0.36, 0.19, iid, _mat(b, rng, color, "plain"))
    b.sphere((x, y + h - 0.11, z), 0.11, iid, _mat(b, rng, _color(rng, ("brown", "orange", "pink")), "plain"))
    return 0.3


def _bench(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    color = _color(rng, ("brown", "green", "gray", "black"))
    iid, m = b.instance("bench", color, 1.6), _mat(b, rng, color, "stripes")
    b.box((x, y + 0.45, z), (0.8, 0.03, 0.22), yaw, iid, m)
    bx, bz = _rot(0.0, -0.2, yaw)
    b.box((x + bx, y + 0.7, z + bz), (0.8, 0.2, 0.02), yaw, iid, m)
    for sx in (-1, 1):
        lx, lz = _rot(sx * 0.7, 0.0, yaw)
        b.box((x + lx, y + 0.22, z + lz), (0.03, 0.22, 0.2), yaw, iid, m)
    return 0.8


def _building(b: SceneBuilder, rng: np.random.Generator, x: float, y: float, z: float, yaw: float) -> float:
    w, h, d = rng.uniform(6, 15), rng.uniform(6, 30), rng.uniform(6, 15)
    color = _color(rng, ("white", "gray", "brown", "yellow", "orange", "pink", "red"))
    iid = b.instance("building", color, max(w, h, d))
    b.box((x, y + h / 2, z), (w / 2, h / 2, d / 2), yaw, iid, _mat(b, rng, color, "checker"))
    return max(w, d) / 2


_RECIPES: dict[str, Callable[..., float]] = {
    "table": _table,
    "chair": _chair,
    "shelf": _shelf,
    "sofa": _sofa,
    "bed": _bed,
    "cabinet": _box_object("cabinet", (0.4, 1.0)),
    "box": _box_object("box", (0.15, 0.5)),
    "lamp": _lamp,
    "plant": _plant,
    "ball": _sphere_object("ball", (0.08, 0.15)),
    "door": _door,
    "cup": _cylinder_object("cup", (0.035, 0.05), (0.08, 0.12)),
    "bottle": _cylinder_object("bottle", (0.03, 0.045), (0.15, 0.25)),
    "can": _cylinder_object("can", (0.03, 0.035), (0.1, 0.13)),
    "bowl": _cylinder_object("bowl", (0.07, 0.12), (0.04, 0.07)),
    "book": _box_object("book", (0.1, 0.2)),
    "apple": _sphere_object("apple", (0.035, 0.045), ("red", "green", "yellow")),
    "orange": _sphere_object("orange", (0.035, 0.045), ("orange",)),
    "laptop": _laptop,
    "car": _car("car"),
    "truck": _car("truck"),
    "bus": _car("bus"),
    "pole": _pole,
    "traffic sign": _sign,
    "tree": _tree,
    "person": _person,
    "bench": _bench,
    "trash can": _cylinder_object("trash can", (0.25, 0.35), (0.8, 1.0)),
    "building": _building,
}


# ------------------------------------------------------------------------------------------------ cameras & lights


def _camera(rng: np.random.Generator, res: tuple[int, int], position: np.ndarray, yaw: float, pitch: float) -> Camera:
    w, h = res
    hfov = math.radians(rng.uniform(45.0, 100.0))
    fx = (w / 2) / math.tan(hfov / 2)
    k = np.array(
        [
            [fx, 0, (w - 1) / 2 + rng.uniform(-0.02, 0.02) * w],
            [0, fx, (h - 1) / 2 + rng.uniform(-0.02, 0.02) * h],
            [0, 0, 1],
        ]
    )
    roll = math.radians(rng.uniform(-3.0, 3.0))
    cy, sy, cp, sp, cr, sr = (
        math.cos(yaw),
        math.sin(yaw),
        math.cos(pitch),
        math.sin(pitch),
        math.cos(roll),
        math.sin(roll),
    )
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return Camera(w, h, k, ry @ rx @ rz, np.asarray(position, dtype=np.float64))


def _look_yaw(frm: np.ndarray, to: np.ndarray) -> float:
    """Yaw that points the camera (which looks along -z) from ``frm`` towards ``to`` in the ground plane."""
    d = to - frm
    return math.atan2(-d[0], -d[2])


def _place(
    b: SceneBuilder,
    rng: np.random.Generator,
    classes: tuple[str, ...],
    n: int,
    area: tuple[float, float, float, float],
    y: float,
    taken: list[tuple[float, float, float]],
    yaw_towards: np.ndarray | None = None,
) -> None:
    """Place up to n objects of random classes in the x/z rectangle ``area`` without overlapping footprints."""
    x0, x1, z0, z1 = area
    for _ in range(n):
        cls = str(rng.choice(list(classes)))
        for _attempt in range(12):
            x, z = rng.uniform(x0, x1), rng.uniform(z0, z1)
            if all((x - tx) ** 2 + (z - tz) ** 2 > (tr + 0.3) ** 2 for tx, tz, tr in taken):
                yaw = rng.uniform(-math.pi, math.pi)
                if yaw_towards is not None:
                    yaw = _look_yaw(np.array([x, 0.0, z]), yaw_towards) + math.pi + rng.uniform(-0.5, 0.5)
                r = _RECIPES[cls](b, rng, x, y, z, yaw)
                taken.append((x, z, r))
                break


# ------------------------------------------------------------------------------------------------ families


def _room_shell(b: SceneBuilder, rng: np.random.Generator, w: float, d: float, h: float) -> None:
    floor_c, wall_c = _color(rng, ("brown", "gray", "white", "orange")), _color(rng, _STUFF_COLORS)
    floor = b.instance("floor", floor_c, max(w, d), is_object=False)
    b.quad(
        1,
        0.0,
        -w / 2,
        w / 2,
        -d / 2,
        d / 2,
        floor,
        _mat(b, rng, floor_c, str(rng.choice(["checker", "stripes", "noise"]))),
    )
    ceiling = b.instance("ceiling", "white", max(w, d), is_object=False)
    b.quad(1, h, -w / 2, w / 2, -d / 2, d / 2, ceiling, _mat(b, rng, "white", "plain"))
    wall_m = _mat(b, rng, wall_c, str(rng.choice(["plain", "noise"])))
    for axis, off, (la, ha), (lb, hb) in (
        (0, -w / 2, (0, h), (-d / 2, d / 2)),
        (0, w / 2, (0, h), (-d / 2, d / 2)),
        (2, -d / 2, (-w / 2, w / 2), (0, h)),
        (2, d / 2, (-w / 2, w / 2), (0, h)),
    ):
        b.quad(axis, off, la, ha, lb, hb, b.instance("wall", wall_c, max(w, d, h), is_object=False), wall_m)


def _indoor(rng: np.random.Generator, res: tuple[int, int]) -> Scene:
    b = SceneBuilder("indoor")
    w, d, h = rng.uniform(3.5, 8.0), rng.uniform(3.5, 8.0), rng.uniform(2.4, 3.2)
    _room_shell(b, rng, w, d, h)
    taken: list[tuple[float, float, float]] = []
    cam_pos = np.array([rng.uniform(-w / 4, w / 4), rng.uniform(0.8, 1.8), d / 2 - rng.uniform(0.3, 0.8)])
    taken.append((cam_pos[0], cam_pos[2], 0.6))
    # Furniture along the far half, big things first; a door on the far wall.
    if rng.random() < 0.6:
        _door(b, rng, rng.uniform(-w / 2 + 0.6, w / 2 - 0.6), 0.0, -d / 2 + 0.035, 0.0)
    _place(
        b,
        rng,
        ("table", "sofa", "bed", "shelf", "cabinet"),
        int(rng.integers(1, 4)),
        (-w / 2 + 0.6, w / 2 - 0.6, -d / 2 + 0.6, d / 4),
        0.0,
        taken,
    )
    _place(
        b,
        rng,
        ("chair", "chair", "box", "lamp", "plant", "ball", "cabinet"),
        int(rng.integers(2, 7)),
        (-w / 2 + 0.4, w / 2 - 0.4, -d / 2 + 0.4, d / 3),
        0.0,
        taken,
    )
    look = np.array([rng.uniform(-w / 4, w / 4), 0.0, -d / 2])
    cam = _camera(rng, res, cam_pos, _look_yaw(cam_pos, look), math.radians(rng.uniform(-25.0, 5.0)))
    light = Light(
        "point",
        np.array([rng.uniform(-w / 3, w / 3), h - 0.3, rng.uniform(-d / 3, d / 3)]),
        np.ones(3) * rng.uniform(0.9, 1.3),
        float(rng.uniform(0.25, 0.45)),
    )
    return b.build(cam, light, None)


def _tabletop(rng: np.random.Generator, res: tuple[int, int]) -> Scene:
    b = SceneBuilder("tabletop")
    w, d, h = rng.uniform(4.0, 7.0), rng.uniform(4.0, 7.0), rng.uniform(2.5, 3.0)
    _room_shell(b, rng, w, d, h)
    tw, td, th = rng.uniform(1.2, 2.0), rng.uniform(0.8, 1.2), rng.uniform(0.7, 0.78)
    color = _color(rng, ("brown", "white", "gray", "black", "green", "blue"))
    iid = b.instance("table", color, tw, is_object=False)
    b.box(
        (0.0, th - 0.02, 0.0),
        (tw / 2, 0.02, td / 2),
        0.0,
        iid,
        _mat(b, rng, color, str(rng.choice(["stripes", "noise", "plain"]))),
    )
    taken: list[tuple[float, float, float]] = []
    _place(
        b,
        rng,
        OBJECT_CLASSES["tabletop"],
        int(rng.integers(3, 9)),
        (-tw / 2 + 0.12, tw / 2 - 0.12, -td / 2 + 0.12, td / 2 - 0.12),
        th,
        taken,
    )
    cam_pos = np.array([rng.uniform(-0.3, 0.3), th + rng.uniform(0.3, 0.7), td / 2 + rng.uniform(0.1, 0.45)])
    target = np.array([rng.uniform(-0.2, 0.2), th, rng.uniform(-0.15, 0.1)])
    pitch = -math.atan2(cam_pos[1] - target[1], cam_pos[2] - target[2])
    cam = _camera(
        rng, res, cam_pos, _look_yaw(cam_pos, target) + rng.uniform(-0.15, 0.15), pitch + rng.uniform(-0.08, 0.08)
    )
    light = Light(
        "point",
        np.array([rng.uniform(-1, 1), h - 0.2, rng.uniform(-1, 1)]),
        np.ones(3) * rng.uniform(0.9, 1.3),
        float(rng.uniform(0.25, 0.45)),
    )
    return b.build(cam, light, None)


def _street(rng: np.random.Generator, res: tuple[int, int]) -> Scene:
    b = SceneBuilder("street")
    road_w, walk_w, length = rng.uniform(6.0, 12.0), rng.uniform(2.0, 4.0), 150.0
    road = b.instance("road", "gray", road_w, is_object=False)
    b.quad(1, 0.0, -200.0, 200.0, -length, 40.0, road, _mat(b, rng, "gray", "noise"))
    walk_c = _color(rng, ("gray", "white", "brown"))
    for side in (-1, 1):
        sw = b.instance("sidewalk", walk_c, walk_w, is_object=False)
        b.box(
            (side * (road_w / 2 + walk_w / 2), 0.075, -length / 2 + 20),
            (walk_w / 2, 0.075, length / 2 + 20),
            0.0,
            sw,
            _mat(b, rng, walk_c, "checker"),
        )
    taken: list[tuple[float, float, float]] = []
    for side in (-1, 1):  # buildings along both sides
        z = 10.0
        while z > -length:
            depth = rng.uniform(8.0, 16.0)
            if rng.random() < 0.85:
                _building(b, rng, side * (road_w / 2 + walk_w + rng.uniform(4.5, 8.0)), 0.0, z - depth / 2, 0.0)
            z -= depth + rng.uniform(0.0, 4.0)
    side_objects = ("pole", "traffic sign", "tree", "person", "bench", "trash can", "person", "tree")
    for side in (-1, 1):
        _place(
            b,
            rng,
            side_objects,
            int(rng.integers(2, 7)),
            tuple(sorted((side * (road_w / 2 + 0.3), side * (road_w / 2 + walk_w - 0.3)))) + (-60.0, -3.0),
            0.15,
            taken,
        )  # type: ignore[arg-type]
    for _ in range(int(rng.integers(1, 7))):
        lane = rng.choice([-1, 1]) * road_w / 4
        cls = str(rng.choice(["car", "car", "car", "truck", "bus"]))
        z = rng.uniform(-70.0, -6.0)
        if all((lane - tx) ** 2 + (z - tz) ** 2 > (tr + 3.0) ** 2 for tx, tz, tr in taken):
            r = _RECIPES[cls](
                b, rng, lane + rng.uniform(-0.4, 0.4), 0.0, z, rng.uniform(-0.08, 0.08) + (math.pi if lane < 0 else 0.0)
            )
            taken.append((lane, z, r))
    cam_pos = np.array([rng.uniform(-road_w / 4, road_w / 4), rng.uniform(1.2, 2.5), rng.uniform(0.0, 4.0)])
    cam = _camera(rng, res, cam_pos, rng.uniform(-0.3, 0.3), math.radians(rng.uniform(-12.0, 4.0)))
    elev, azim = math.radians(rng.uniform(20.0, 70.0)), rng.uniform(-math.pi, math.pi)
    sun = np.array([math.cos(elev) * math.sin(azim), math.sin(elev), math.cos(elev) * math.cos(azim)])
    light = Light("directional", sun, np.array([1.0, 0.95, 0.85]) * rng.uniform(0.9, 1.2), float(rng.uniform(0.3, 0.5)))
    sky = tuple(float(c) for c in np.clip(np.array([0.45, 0.65, 0.95]) * rng.uniform(0.8, 1.1), 0, 1))
    return b.build(cam, light, sky)  # type: ignore[arg-type]


_FAMILY_FNS = {"indoor": _indoor, "tabletop": _tabletop, "street": _street}


def generate_scene(
    rng: np.random.Generator, res: tuple[int, int], family: str | None = None, mix: dict[str, float] | None = None
) -> Scene:
    """One random scene of ``family`` (or drawn from ``mix``: family -> weight) at ``res`` = (width, height) px."""
    if family is None:
        weights = mix or {"indoor": 0.45, "tabletop": 0.25, "street": 0.3}
        names = list(weights)
        p = np.array([weights[n] for n in names], dtype=np.float64)
        family = str(rng.choice(names, p=p / p.sum()))
    if family not in _FAMILY_FNS:
        raise ValueError(f"unknown scene family {family!r}; use one of {', '.join(FAMILIES)}")
    return _FAMILY_FNS[family](rng, res)
