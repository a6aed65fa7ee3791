"""Metric depth <-> RGB, exactly as in the Vision Banana paper.

Depth is first *curved* with Barron's power transform,

    f(d) = 1 - (1 - d / (lambda * c)) ** (lambda + 1),  lambda = -3, c = 10/3,  i.e.  f(d) = 1 - (1 + d/10) ** -2,

which maps [0, inf) metres onto [0, 1), then ``f`` walks the edges of the RGB cube along a fixed path of 8 vertices
(black, red, yellow, green, cyan, blue, magenta, white), each of the 7 edges taking 1/7 of [0, 1). Decoding projects
an RGB value onto the nearest edge, inverts the linear interpolation and inverts ``f``.

The path order is the one of the public ``hilbertmap`` package, so depth images interoperate; **it must never change**
because trained checkpoints depend on it.

Invalid depth (NaN, +-inf, <= 0) is never encoded silently: ``encode_depth(..., invalid=...)`` says where it goes
(``"min"``: the start of the curve, black, which is 0 m; ``"max"``: its end, white, which is infinitely far; or
``"raise"``), and :func:`valid_depth_mask` gives the mask to keep beside the image. ``decode_depth`` returns NaN for
both ends of the curve (0 m and infinity) and for anything outside ``[min_depth_m, max_depth_m]``, as REP 118 wants.

Colormap variants (``plasma``, ``inferno``, ``viridis``, ``gray``) colour the *same* curved value ``f`` for training
augmentation; they decode by projecting onto the colormap's polyline of 256 entries (matplotlib's tables, linearly
interpolated between entries).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs._checks import as_float_array, map_rgb, to_uint8
from vb_perception.errors import CodecError

__all__ = [
    "COLORMAPS",
    "DEPTH_C",
    "DEPTH_LAMBDA",
    "PATH_VERTICES",
    "Colormap",
    "InvalidPolicy",
    "colormap_polyline",
    "curve_to_depth",
    "curve_to_rgb",
    "decode_depth",
    "depth_code_step_m",
    "depth_to_curve",
    "encode_depth",
    "rgb_to_curve",
    "valid_depth_mask",
]

#: Power-transform parameters of the paper. Fixed: checkpoints depend on them.
DEPTH_LAMBDA: float = -3.0
DEPTH_C: float = 10.0 / 3.0

#: The fixed walk over the RGB cube (black -> red -> yellow -> green -> cyan -> blue -> magenta -> white).
#: Never reorder: every trained checkpoint and every depth image depends on it.
PATH_VERTICES: NDArray[np.float32] = np.array(
    [
        [0, 0, 0],  # black
        [1, 0, 0],  # red
        [1, 1, 0],  # yellow
        [0, 1, 0],  # green
        [0, 1, 1],  # cyan
        [0, 0, 1],  # blue
        [1, 0, 1],  # magenta
        [1, 1, 1],  # white
    ],
    dtype=np.float32,
)
PATH_VERTICES.setflags(write=False)
_N_SEGMENTS = len(PATH_VERTICES) - 1
_EDGES = PATH_VERTICES[1:] - PATH_VERTICES[:-1]

Colormap = Literal["hilbert", "plasma", "inferno", "viridis", "gray"]
COLORMAPS: tuple[str, ...] = ("hilbert", "plasma", "inferno", "viridis", "gray")
InvalidPolicy = Literal["min", "max", "raise"]
_INVALID_POLICIES = ("min", "max", "raise")


def _segment_structure() -> tuple[NDArray[np.intp], NDArray[np.bool_], NDArray[np.intp], NDArray[np.intp]]:
    """Per edge: the moving channel, whether it rises, and the two fixed channels with their values (0 or 1)."""
    axis = np.argmax(np.abs(_EDGES), axis=1)
    rising = _EDGES[np.arange(_N_SEGMENTS), axis] > 0
    fixed = np.array([[c for c in range(3) if c != a] for a in axis], dtype=np.intp)
    fixed_value = PATH_VERTICES[:-1][np.arange(_N_SEGMENTS)[:, None], fixed].astype(np.intp)
    # Every edge of the walk is a unit edge of the cube along one axis: the fast decoder relies on it.
    assert np.all(np.sum(np.abs(_EDGES), axis=1) == 1.0)
    return axis, rising, fixed, fixed_value


_AXIS, _RISING, _FIXED, _FIXED_VALUE = _segment_structure()


def _hilbert_code_table() -> NDArray[np.uint8]:
    """uint8 RGB of each of the 7 * 255 + 1 codes along the walk, in order (code q sits at f = q / 1785)."""
    q = np.arange(_N_SEGMENTS * 255 + 1)
    k = np.minimum(q // 255, _N_SEGMENTS - 1)
    table = PATH_VERTICES[k] * 255 + (q - 255 * k)[:, None] * _EDGES[k]
    table = table.astype(np.uint8)
    table.setflags(write=False)
    return table


_HILBERT_CODES = _hilbert_code_table()
_FINE_STEPS = 65535


@cache
def _colormap_codes(colormap: str) -> NDArray[np.uint8]:
    table = to_uint8(curve_to_rgb(np.linspace(0.0, 1.0, _FINE_STEPS + 1, dtype=np.float32), colormap))
    table.setflags(write=False)
    return table


_N_CODES = len(_HILBERT_CODES) - 1


def _check_colormap(colormap: str) -> None:
    if colormap not in COLORMAPS:
        raise CodecError(f"unknown depth colormap {colormap!r}; use one of {', '.join(COLORMAPS)}")


def depth_to_curve(depth_m: NDArray[np.floating]) -> NDArray[np.float32]:
    """Curve metric depth: ``f = 1 - (1 + d/10)^-2`` for d >= 0, in [0, 1). NaN stays NaN, +inf gives 1.

    Negative depths are clipped to 0 (callers mask them with :func:`valid_depth_mask` first).
    """
    d = np.maximum(as_float_array(depth_m, "depth_to_curve"), np.float32(0.0))
    # The power transform with lambda = -3, c = 10/3 in closed form: (1 - d/(lambda c))^(lambda+1) = (1 + d/10)^-2.
    # Multiplications instead of pow() make encoding 3x faster; the tests check it against the generic formula.
    x = np.float32(1.0) + d * np.float32(-1.0 / (DEPTH_LAMBDA * DEPTH_C))
    with np.errstate(over="ignore", invalid="ignore"):
        return np.float32(1.0) - np.float32(1.0) / (x * x)


def curve_to_depth(f: NDArray[np.floating]) -> NDArray[np.float32]:
    """Invert :func:`depth_to_curve`: f in [0, 1] to metres (f = 1 gives +inf)."""
    ff = np.clip(np.asarray(f, dtype=np.float32), 0.0, 1.0)
    # d = lambda c (1 - (1 - f)^(1/(lambda+1))) = 10 ((1 - f)^-1/2 - 1), in closed form for speed (see above).
    with np.errstate(divide="ignore"):
        inv_sqrt = np.float32(1.0) / np.sqrt(np.float32(1.0) - ff)
    return np.float32(-DEPTH_LAMBDA * DEPTH_C) * (inv_sqrt - np.float32(1.0))


def valid_depth_mask(depth_m: NDArray[np.floating]) -> NDArray[np.bool_]:
    """True where depth is a usable measurement: finite and > 0 metres."""
    d = as_float_array(depth_m, "valid_depth_mask")
    return np.isfinite(d) & (d > 0.0)


@cache
def colormap_polyline(colormap: str) -> NDArray[np.float32]:
    """The colour polyline a colormap walks as f goes 0 -> 1, shape ``(N, 3)`` float32 in [0, 1].

    ``hilbert`` is the 8-vertex cube walk; ``gray`` is black -> white; the others are matplotlib's 256-entry tables.
    """
    _check_colormap(colormap)
    if colormap == "hilbert":
        return PATH_VERTICES
    if colormap == "gray":
        line = np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32)
    else:
        from matplotlib import colormaps  # lazy: only the augmentation colormaps need matplotlib

        line = np.asarray(colormaps[colormap].colors, dtype=np.float32)[:, :3]
    line.setflags(write=False)
    return line


def curve_to_rgb(f: NDArray[np.floating], colormap: Colormap = "hilbert") -> NDArray[np.float32]:
    """Colour curved depth ``f`` in [0, 1] along ``colormap``: float32 ``(..., 3)`` in [0, 1]."""
    line = colormap_polyline(colormap)
    n_seg = len(line) - 1
    s = np.clip(np.asarray(f, dtype=np.float32), 0.0, 1.0) * np.float32(n_seg)
    k = np.minimum(s.astype(np.intp), n_seg - 1)  # s >= 0, so truncation is floor
    t = (s - k)[..., None]
    v0 = line[k]
    return v0 + t * (line[k + 1] - v0)


def _chunked(rgb: NDArray[np.generic], fn: Callable[[NDArray[np.float32]], NDArray[np.float32]]) -> NDArray[np.float32]:
    """Apply ``fn`` (float32 ``[n, 3]`` in [0, 1] -> float32 ``[n]``) to ``(..., 3)`` RGB chunk by chunk."""
    return map_rgb(rgb, fn, (), np.float32, "rgb_to_curve")  # type: ignore[return-value]


def _hilbert_chunk(p: NDArray[np.float32]) -> NDArray[np.float32]:
    # Each edge moves one channel between 0 and 1 and holds the other two at 0 or 1, so for p in [0, 1]^3 the
    # projection onto edge k is exact along its axis (t = p_axis or 1 - p_axis) and the squared distance is the sum
    # over its two fixed channels of (p_c - v_c)^2. Channel planes, six squared terms and a running minimum over the
    # seven edges (strict <, so ties go to the first edge, like an argmin), selected by arithmetic rather than masked
    # copies: ~35x faster than projecting onto every segment with generic vector algebra (bench/codecs.py), with the
    # same result.
    planes = [np.ascontiguousarray(p[:, c]) for c in range(3)]
    comp = [np.float32(1.0) - x for x in planes]
    sq = ([x * x for x in planes], [x * x for x in comp])  # sq[v][c] = (p_c - v)^2
    best_d = np.full(len(p), np.inf, dtype=np.float32)
    best_f = np.zeros(len(p), dtype=np.float32)
    d, step = np.empty_like(best_d), np.empty_like(best_d)
    closer = np.empty(len(p), dtype=np.bool_)
    for k in range(_N_SEGMENTS):
        (c0, c1), (v0, v1) = _FIXED[k], _FIXED_VALUE[k]
        np.add(sq[v0][c0], sq[v1][c1], out=d)
        np.less(d, best_d, out=closer)
        np.minimum(best_d, d, out=best_d)
        t = planes[_AXIS[k]] if _RISING[k] else comp[_AXIS[k]]
        np.add(t, np.float32(k), out=step)  # best_f += closer * ((t + k) / 7 - best_f)
        step *= np.float32(1.0 / _N_SEGMENTS)
        step -= best_f
        step *= closer
        best_f += step
    return best_f


_LUT_BITS = 6  # nearest-vertex table over a 64^3 grid of the RGB cube
_REFINE = 4  # segments either side of the table's vertex that the exact projection then checks


@cache
def _nearest_vertex_table(colormap: str) -> NDArray[np.int16]:
    """For each cell of a 64^3 RGB grid, the index of the colormap entry nearest to the cell centre."""
    from scipy.spatial import cKDTree  # lazy: only augmentation colormaps need it

    n = 1 << _LUT_BITS
    centres = (np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), axis=-1).reshape(-1, 3) + 0.5) / n
    _, nearest = cKDTree(colormap_polyline(colormap)).query(centres)
    table = nearest.astype(np.int16).reshape(n, n, n)
    table.setflags(write=False)
    return table


def _polyline_rgb_to_curve(p: NDArray[np.float32], colormap: str) -> NDArray[np.float32]:
    # A cached 64^3 table gives a vertex near the answer; projecting exactly onto the 2 * _REFINE segments around
    # it, on channel planes, finds the nearest point of the polyline: ~20x faster than a k-d tree query per pixel.
    line = colormap_polyline(colormap)
    n_seg = len(line) - 1
    start = line[:-1].T  # [3, n_seg] segment starts, channel planes
    edge = (line[1:] - line[:-1]).T  # [3, n_seg]
    inv_len2 = np.float32(1.0) / np.maximum(np.sum(edge * edge, axis=0), np.float32(1e-12))
    planes = [p[..., c].ravel() for c in range(3)]
    cell = [np.minimum((x * (1 << _LUT_BITS)).astype(np.intp), (1 << _LUT_BITS) - 1) for x in planes]
    first = _nearest_vertex_table(colormap)[cell[0], cell[1], cell[2]].astype(np.intp)
    best_f = np.zeros(len(first), dtype=np.float32)
    best_d = np.full(len(first), np.inf, dtype=np.float32)
    for offset in range(-_REFINE, _REFINE):
        k = np.clip(first + offset, 0, n_seg - 1)
        rel = [planes[c] - start[c][k] for c in range(3)]
        e = [edge[c][k] for c in range(3)]
        t = np.clip((rel[0] * e[0] + rel[1] * e[1] + rel[2] * e[2]) * inv_len2[k], 0.0, 1.0)
        d = sum((r - t * ec) ** 2 for r, ec in zip(rel, e))
        closer = d < best_d
        best_d = np.minimum(best_d, d)
        best_f += closer * ((k + t) * np.float32(1.0 / n_seg) - best_f)
    return best_f.reshape(p.shape[:-1])


def _curve_fn(colormap: str) -> Callable[[NDArray[np.float32]], NDArray[np.float32]]:
    if colormap == "hilbert":
        return _hilbert_chunk
    if colormap == "gray":
        return lambda p: p.mean(axis=-1, dtype=np.float32)
    return lambda p: _polyline_rgb_to_curve(p, colormap)


def rgb_to_curve(rgb: NDArray[np.generic], colormap: Colormap = "hilbert") -> NDArray[np.float32]:
    """Project RGB (uint8 or float in [0, 1], ``(..., 3)``) onto ``colormap`` and return curved depth f in [0, 1]."""
    _check_colormap(colormap)
    return _chunked(rgb, _curve_fn(colormap))


def encode_depth(
    depth_m: NDArray[np.floating],
    *,
    colormap: Colormap = "hilbert",
    invalid: InvalidPolicy = "min",
) -> NDArray[np.uint8]:
    """Encode metric depth (float metres, any shape ``S``) as uint8 RGB of shape ``S + (3,)``.

    Args:
        depth_m: metres along the optical axis. NaN, +-inf and values <= 0 are *invalid*.
        colormap: ``hilbert`` (the paper's encoding) or an augmentation colormap.
        invalid: where invalid pixels go: ``"min"`` (start of the curve, 0 m: black for hilbert), ``"max"``
            (end of the curve, infinitely far: white for hilbert; natural for sky) or ``"raise"``.
            Both ends decode to NaN. Keep :func:`valid_depth_mask` beside the image if you need to tell
            invalid pixels from depths below ~3 mm or beyond ~400 m, which quantise to the same codes.

    Raises:
        CodecError: unknown colormap or policy; ``invalid="raise"`` and some pixel is invalid.
    """
    _check_colormap(colormap)
    if invalid not in _INVALID_POLICIES:
        raise CodecError(f"unknown invalid-depth policy {invalid!r}; use one of {', '.join(_INVALID_POLICIES)}")
    d = as_float_array(depth_m, "encode_depth")
    valid = np.isfinite(d) & (d > 0.0)
    f = depth_to_curve(np.where(valid, d, 0.0))
    if not valid.all():
        if invalid == "raise":
            raise CodecError(
                f"encode_depth: {int((~valid).sum())} pixels are NaN, inf or <= 0 m; "
                "mask them or choose invalid='min' or 'max'"
            )
        f[~valid] = 0.0 if invalid == "min" else 1.0
    if colormap == "hilbert":
        # Rounding each channel to 8 bits equals rounding f to one of the 7 * 255 codes along the walk, because
        # exactly one channel moves per edge and the others sit at 0 or 255: one table lookup per pixel.
        return _HILBERT_CODES[np.rint(f * np.float32(_N_CODES)).astype(np.intp)]
    if colormap == "gray":
        return np.repeat(np.rint(f * np.float32(255.0)).astype(np.uint8)[..., None], 3, axis=-1)
    # Matplotlib tables: a 65536-entry lookup (f steps of 1.5e-5, far below one 8-bit step of the colours).
    return _colormap_codes(colormap)[np.rint(f * np.float32(_FINE_STEPS)).astype(np.intp)]


def decode_depth(
    rgb: NDArray[np.generic],
    *,
    colormap: Colormap = "hilbert",
    min_depth_m: float = 0.0,
    max_depth_m: float = float("inf"),
) -> NDArray[np.float32]:
    """Decode an RGB depth image (uint8, or float in [0, 1]; shape ``S + (3,)``) to float32 metres of shape ``S``.

    NaN marks invalid pixels (REP 118): the ends of the curve (0 m, infinity) and depths outside
    ``[min_depth_m, max_depth_m]``. Off-path colours (generator output, JPEG) snap to the nearest point of the path.
    """
    _check_colormap(colormap)
    to_curve = _curve_fn(colormap)

    def decode_chunk(p: NDArray[np.float32]) -> NDArray[np.float32]:
        d = curve_to_depth(to_curve(p))
        valid = (d > 0.0) & (d >= min_depth_m) & (d <= max_depth_m) & (d < np.inf)  # 0 m and inf are the ends
        d[~valid] = np.nan
        return d

    return _chunked(rgb, decode_chunk)


def depth_code_step_m(depth_m: NDArray[np.floating], colormap: Colormap = "hilbert") -> NDArray[np.float32]:
    """Depth spanned by one 8-bit code step at ``depth_m``: the quantisation an 8-bit depth image cannot beat.

    Rounding to the nearest code errs by at most half of this.
    """
    if colormap not in ("hilbert", "gray"):
        raise CodecError(f"depth_code_step_m is defined for the hilbert and gray encodings, not {colormap!r}")
    d = as_float_array(depth_m, "depth_code_step_m").astype(np.float64)
    n_steps = (len(colormap_polyline(colormap)) - 1) * 255  # codes along the curve (one channel moves per edge)
    dfdd = -(DEPTH_LAMBDA + 1.0) / (-DEPTH_LAMBDA * DEPTH_C) * (1.0 - d / (DEPTH_LAMBDA * DEPTH_C)) ** DEPTH_LAMBDA
    return (1.0 / n_steps / dfdd).astype(np.float32)
