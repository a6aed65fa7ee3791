"""Segmentation images -> label maps.

*Semantic* (and referring) images colour each prompt's target in the colour the prompt named: decode by assigning
each pixel to the nearest prompt colour (background included); pixels farther than ``max_distance`` from all of them
are *unassigned* (label 0, flagged and counted). *Instance* images colour each instance of one class in a colour the
model picked: decode by clustering the distinct foreground colours, optionally splitting each colour into connected
components, and dropping instances smaller than ``min_area_px``.

Distances are Euclidean in 8-bit RGB units (0-255 per channel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs._checks import map_pixels
from vb_perception.errors import CodecError

__all__ = [
    "DEFAULT_INSTANCE_RADIUS",
    "DEFAULT_MAX_DISTANCE",
    "RGB",
    "InstanceMasks",
    "SemanticMasks",
    "as_rgb_uint8",
    "decode_instances",
    "decode_semantic",
]

RGB = tuple[int, int, int]
#: A pixel farther than this (8-bit RGB units) from every prompt colour is unassigned.
DEFAULT_MAX_DISTANCE = 64.0
#: Instance colours closer than this are the same instance colour (JPEG and generator noise stay well below it).
DEFAULT_INSTANCE_RADIUS = 40.0
_QUANT_SHIFT = 3  # instance colours are histogrammed on a 32^3 grid
_RIM_PASSES = 3  # layers of blended rim around an instance that can be folded back into it


def as_rgb_uint8(rgb: NDArray[np.generic], what: str = "rgb") -> NDArray[np.uint8]:
    """Return an ``HxWx3`` RGB image as uint8 (float input in [0, 1] is scaled and rounded)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise CodecError(f"{what}: expected an HxWx3 RGB image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.nanmin(arr) >= -0.02 and np.nanmax(arr) <= 1.02):
            raise CodecError(f"{what}: float RGB must lie in [0, 1]; divide 0-255 floats by 255 or pass uint8")
        return np.rint(np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise CodecError(f"{what}: unsupported dtype {arr.dtype}; pass uint8 (0-255) or float (0-1) RGB")


def _check_colour(c: Sequence[int], what: str) -> RGB:
    if len(c) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= int(v) <= 255 for v in c):
        raise CodecError(f"{what}: colour {tuple(c)!r} is not three integers in 0-255")
    return (int(c[0]), int(c[1]), int(c[2]))


@dataclass(frozen=True)
class SemanticMasks:
    """A decoded semantic / referring segmentation image.

    Attributes:
        labels: uint16 ``HxW``; 0 = background or unassigned, ``i`` = the i-th class (1-based) of ``class_names``.
        unassigned: bool ``HxW``; True where the pixel is farther than ``max_distance`` from every prompt colour.
        class_names: class (or referring expression) of each label, ``class_names[i - 1]`` for label ``i``.
        colors: uint8 ``Kx3``; the prompt colour of each class, same order.
    """

    labels: NDArray[np.uint16]
    unassigned: NDArray[np.bool_]
    class_names: tuple[str, ...]
    colors: NDArray[np.uint8]

    @property
    def unassigned_count(self) -> int:
        """Number of pixels that matched no prompt colour (an off-prompt generator output shows up here)."""
        return int(self.unassigned.sum())

    @property
    def masks(self) -> NDArray[np.bool_]:
        """bool ``KxHxW``: one mask per class, in ``class_names`` order."""
        ids = np.arange(1, len(self.class_names) + 1, dtype=np.uint16)
        return self.labels[None, :, :] == ids[:, None, None]

    def mask(self, name: str) -> NDArray[np.bool_]:
        """bool ``HxW`` mask of one class by name."""
        if name not in self.class_names:
            raise KeyError(f"no class {name!r}; classes are {list(self.class_names)}")
        return self.labels == self.class_names.index(name) + 1


def _nearest_colour(
    img: NDArray[np.uint8], palette: NDArray[np.float32]
) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
    """Index of the nearest palette colour for every pixel and its squared distance (running minimum, by chunks)."""

    def chunk(px: NDArray[np.uint8]) -> NDArray[np.float32]:
        planes = [px[:, c].astype(np.float32) for c in range(3)]
        best_d = np.full(len(px), np.inf, dtype=np.float32)
        best_i = np.zeros(len(px), dtype=np.float32)
        for i, col in enumerate(palette):
            d = (planes[0] - col[0]) ** 2 + (planes[1] - col[1]) ** 2 + (planes[2] - col[2]) ** 2
            closer = d < best_d
            np.minimum(best_d, d, out=best_d)
            best_i += closer * (np.float32(i) - best_i)
        return np.stack([best_i, best_d], axis=1)

    out = map_pixels(img, chunk, (2,), np.float32)
    return out[..., 0].astype(np.intp), out[..., 1]


def decode_semantic(
    rgb: NDArray[np.generic],
    palette: Mapping[str, Sequence[int]],
    *,
    background_rgb: Sequence[int] = (0, 0, 0),
    max_distance: float = DEFAULT_MAX_DISTANCE,
) -> SemanticMasks:
    """Assign every pixel to the nearest prompt colour.

    Args:
        rgb: ``HxWx3`` uint8 (or float in [0, 1]) segmentation image.
        palette: class name -> RGB (0-255), in label order (label i = i-th entry, 1-based).
        background_rgb: the background colour of the prompt; pixels nearest to it get label 0.
        max_distance: pixels farther than this from every colour are unassigned (label 0, ``unassigned`` True).
    """
    img = as_rgb_uint8(rgb, "decode_semantic")
    names = tuple(palette)
    if not names:
        raise CodecError("decode_semantic: the palette is empty; give at least one class -> colour")
    colours = [_check_colour(palette[n], f"class {n!r}") for n in names]
    bg = _check_colour(background_rgb, "background")
    table = np.array([bg, *colours], dtype=np.float32)
    index, dist2 = _nearest_colour(img, table)
    unassigned = dist2 > np.float32(max_distance) ** 2
    labels = np.where(unassigned, 0, index).astype(np.uint16)
    return SemanticMasks(labels, unassigned, names, np.array(colours, dtype=np.uint8).reshape(-1, 3))


@dataclass(frozen=True)
class InstanceMasks:
    """A decoded instance segmentation image (one class, instance colours picked by the model).

    Attributes:
        labels: uint16 ``HxW``; 0 = background / unassigned / dropped, ``i`` = the i-th instance (1-based),
            numbered by decreasing area.
        colors: uint8 ``Kx3``; mean colour of each instance.
        areas_px: int64 ``K``; pixel count of each instance.
    """

    labels: NDArray[np.uint16]
    colors: NDArray[np.uint8]
    areas_px: NDArray[np.int64]

    @property
    def count(self) -> int:
        """Number of instances found."""
        return len(self.areas_px)

    @property
    def masks(self) -> NDArray[np.bool_]:
        """bool ``KxHxW``: one mask per instance, in label order."""
        ids = np.arange(1, self.count + 1, dtype=np.uint16)
        return self.labels[None, :, :] == ids[:, None, None]


def _cluster_colours(
    centres: NDArray[np.float32], weights: NDArray[np.int64], radius: float, max_clusters: int
) -> NDArray[np.intp]:
    """Greedy clustering of histogram bins: the heaviest unassigned bin seeds a cluster that takes every unassigned
    bin within ``radius``. Returns the cluster of each bin (-1: none, when ``max_clusters`` ran out)."""
    order = np.argsort(-weights, kind="stable")
    cluster = np.full(len(centres), -1, dtype=np.intp)
    n = 0
    for seed in order:
        if cluster[seed] >= 0:
            continue
        if n == max_clusters:
            break
        near = (cluster < 0) & (np.sum((centres - centres[seed]) ** 2, axis=1) <= radius * radius)
        cluster[near] = n
        n += 1
    return cluster


_W = np.linspace(0.0, 1.0, 11)
_TRIANGLE_WEIGHTS = np.array([(a, b, 1.0 - a - b) for a in _W for b in _W if a + b <= 1.0 + 1e-9])  # [66, 3]


def _blend_distance(p: NDArray[np.float64], colour: NDArray[np.float64], bg: NDArray[np.float64]) -> float:
    """Distance from ``p`` to the blends of ``colour`` with the background and with its own grey (same luma):
    what anti-aliasing (towards the background) and JPEG chroma subsampling (towards grey) make of an edge."""
    grey = np.full(3, 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])
    blends = _TRIANGLE_WEIGHTS @ np.stack([colour, bg, grey])  # [66, 3]
    return float(np.min(np.linalg.norm(blends - p, axis=1)))


def _connected_regions(colour_id: NDArray[np.intp]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """8-connected regions of equal colour cluster: region map (0 = none) and the cluster of each region."""
    from scipy import ndimage  # lazy: only instance decoding needs it

    regions = np.zeros(colour_id.shape, dtype=np.intp)
    cluster_of_region = [0]
    for cid, box in enumerate(ndimage.find_objects(colour_id), start=1):
        if box is None:
            continue
        lab, n = ndimage.label(colour_id[box] == cid, structure=np.ones((3, 3), dtype=bool))
        regions[box][lab > 0] = lab[lab > 0] + (len(cluster_of_region) - 1)
        cluster_of_region += [cid] * n
    return regions, np.array(cluster_of_region, dtype=np.intp)


def _merge_rims(
    regions: NDArray[np.intp], img: NDArray[np.uint8], bg: NDArray[np.float32], radius: float
) -> NDArray[np.intp]:
    """Fold rims of blended colour (anti-aliasing, JPEG chroma blur) into the region they surround.

    A region is a rim of region B when it is *thin* (a 1-pixel erosion keeps under a quarter of it), touches B,
    B is larger and not thin, and the rim's mean colour lies within ``radius`` of the blends of B's colour with the
    background and with B's own grey (:func:`_blend_distance`). Solid objects never merge, whatever their colour,
    and rims only merge into solid objects (an outer rim may reach one through an inner rim that already joined it).
    Returns the target region of every region.
    """
    from scipy import ndimage  # lazy: only instance decoding needs it

    n = int(regions.max())
    target = np.arange(n + 1)
    if n < 2:
        return target
    flat = regions.ravel()
    area = np.bincount(flat, minlength=n + 1)
    mean = np.stack([np.bincount(flat, weights=img[..., c].ravel(), minlength=n + 1) for c in range(3)], 1)
    mean = mean / np.maximum(area, 1)[:, None]
    boxes = ndimage.find_objects(regions)
    h, w = regions.shape
    cross = np.ones((3, 3), bool)

    def patch_of(r: int) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
        box = boxes[r - 1]
        ys = slice(max(box[0].start - 1, 0), min(box[0].stop + 1, h))
        xs = slice(max(box[1].start - 1, 0), min(box[1].stop + 1, w))
        patch = regions[ys, xs]
        return patch, patch == r

    thin = np.zeros(n + 1, dtype=bool)
    for r in range(1, n + 1):
        if boxes[r - 1] is not None:
            _, mine = patch_of(r)
            thin[r] = ndimage.binary_erosion(mine, structure=cross).sum() < 0.25 * area[r]
    background = bg.astype(np.float64)
    # Rims can be layered (object -> desaturated rim -> dark rim -> background): each pass lets a rim join the
    # solid object that a touching region already belongs to, so outer layers follow inner ones.
    for _ in range(_RIM_PASSES):
        changed = False
        for r in np.flatnonzero(thin & (target == np.arange(n + 1))):
            patch, mine = patch_of(r)
            ring = ndimage.binary_dilation(mine, structure=cross) & ~mine
            touching = np.bincount(target[patch[ring]], minlength=n + 1)
            touching[0] = 0
            for b in np.argsort(-touching, kind="stable"):
                if touching[b] == 0:
                    break
                if not thin[b] and area[b] > area[r] and _blend_distance(mean[r], mean[b], background) <= radius:
                    target[r] = b
                    changed = True
                    break
        if not changed:
            break
    return target


def decode_instances(
    rgb: NDArray[np.generic],
    *,
    background_rgb: Sequence[int] = (0, 0, 0),
    background_distance: float = DEFAULT_MAX_DISTANCE,
    color_radius: float = DEFAULT_INSTANCE_RADIUS,
    connected_components: bool = False,
    min_area_px: int = 16,
    max_instances: int = 255,
) -> InstanceMasks:
    """Cluster distinct foreground colours into instances.

    Args:
        rgb: ``HxWx3`` uint8 (or float in [0, 1]) instance segmentation image.
        background_rgb: the prompt's background colour; pixels within ``background_distance`` of it are background.
        color_radius: colours within this distance of a cluster's seed colour belong to that instance.
        connected_components: also split each colour into 8-connected regions (two objects the model painted alike).
        min_area_px: instances smaller than this are dropped (label 0).
        max_instances: at most this many instances (the largest are kept).
    """
    img = as_rgb_uint8(rgb, "decode_instances")
    if min_area_px < 0 or max_instances < 1:
        raise CodecError("decode_instances: min_area_px must be >= 0 and max_instances >= 1")
    bg = np.array(_check_colour(background_rgb, "background"), dtype=np.float32)
    planes = [img[..., c].astype(np.float32) for c in range(3)]
    bg_d2 = sum((planes[c] - bg[c]) ** 2 for c in range(3))
    fg = bg_d2 > np.float32(background_distance) ** 2
    h, w = img.shape[:2]
    if not fg.any():
        return InstanceMasks(np.zeros((h, w), np.uint16), np.zeros((0, 3), np.uint8), np.zeros(0, np.int64))

    # 1. Histogram the foreground colours on a 32^3 grid and cluster the occupied bins.
    q = (img >> _QUANT_SHIFT).astype(np.intp)
    bins = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]  # [H,W]
    counts = np.bincount(bins[fg], minlength=1 << 15)
    occupied = np.flatnonzero(counts)
    half = 1 << (_QUANT_SHIFT - 1)
    centres = np.stack([(occupied >> s & 31) << _QUANT_SHIFT for s in (10, 5, 0)], axis=1).astype(np.float32) + half
    cluster_of_bin = np.full(1 << 15, -1, dtype=np.intp)
    cluster_of_bin[occupied] = _cluster_colours(centres, counts[occupied], color_radius, 4 * max_instances)
    colour_id = np.where(fg, cluster_of_bin[bins] + 1, 0)  # [H,W] 0 = background / unclustered

    # 2. Connected regions per colour; thin rims of blended colour join the object they surround. Then either keep
    #    regions as instances, or join the regions of one colour back together.
    regions, cluster_of_region = _connected_regions(colour_id)
    target = _merge_rims(regions, img, bg, color_radius)
    if connected_components:
        colour_id = target[regions]
    else:
        colour_id = cluster_of_region[target][regions]

    # 3. Keep the largest instances above the minimum area, numbered by decreasing area.
    areas = np.bincount(colour_id.ravel())
    areas[0] = 0
    keep = np.flatnonzero(areas >= max(min_area_px, 1))
    keep = keep[np.argsort(-areas[keep], kind="stable")][:max_instances]
    relabel = np.zeros(len(areas), dtype=np.uint16)
    relabel[keep] = np.arange(1, len(keep) + 1, dtype=np.uint16)
    labels = relabel[colour_id]
    flat = labels.ravel()
    sums = np.stack([np.bincount(flat, weights=img[..., c].ravel(), minlength=len(keep) + 1) for c in range(3)], 1)
    area_out = np.bincount(flat, minlength=len(keep) + 1)[1:].astype(np.int64)
    mean = sums[1:] / np.maximum(area_out, 1)[:, None]
    return InstanceMasks(labels, np.rint(mean).astype(np.uint8), area_out)
