"""Reading and writing RGB images, depth maps and normal maps at the file boundary.

Depth conventions live here and nowhere else (as in image_pipeline's ``depth_traits``):

* float metres with NaN = invalid in memory, ``.npy`` (float32) and ``.tif``/``.tiff`` (32-bit float) on disk;
* 16-bit PNG with an integer unit, 0 = invalid: millimetres by default (the ROS ``16UC1`` convention), other units
  by ``scale_m`` (TUM RGB-D uses 1/5000 m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import ImageFileError

__all__ = [
    "DEFAULT_DEPTH_SCALE_M",
    "Intrinsics",
    "read_depth",
    "read_normals",
    "read_rgb",
    "sample_frame",
    "write_depth",
    "write_normals",
    "write_rgb",
]

#: Metres per unit of a 16-bit depth PNG unless told otherwise: millimetres, as ROS 16UC1.
DEFAULT_DEPTH_SCALE_M = 0.001
_PACKAGE_DATA = Path(__file__).resolve().parent / "data"


def _open_image(path: Path):  # type: ignore[no-untyped-def]
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ImageFileError(f"{path}: no such file")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageFileError(f"{path}: not a readable image ({exc}); use PNG, JPEG or TIFF") from exc
    return img


def read_rgb(path: str | Path) -> NDArray[np.uint8]:
    """An image file as uint8 ``HxWx3`` RGB (alpha dropped, grey expanded)."""
    return np.asarray(_open_image(Path(path)).convert("RGB"), dtype=np.uint8)


def write_rgb(path: str | Path, rgb: NDArray[np.uint8]) -> Path:
    """Write uint8 ``HxWx3`` RGB (format from the suffix, PNG recommended: lossless)."""
    from PIL import Image

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(p)
    return p


def read_depth(path: str | Path, scale_m: float | None = None) -> NDArray[np.float32]:
    """A depth file as float32 metres, NaN = invalid.

    Args:
        path: ``.npy`` (float metres), ``.tif``/``.tiff`` (float metres) or 16-bit ``.png`` (integer units).
        scale_m: metres per unit of an integer image (default :data:`DEFAULT_DEPTH_SCALE_M`, millimetres).
    """
    p = Path(path)
    if p.suffix.lower() == ".npy":
        if not p.is_file():
            raise ImageFileError(f"{p}: no such file")
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ImageFileError(f"{p}: not a plain numpy array file ({exc})") from exc
    else:
        arr = np.asarray(_open_image(p))
    if arr.ndim != 2:
        raise ImageFileError(f"{p}: a depth map must have one channel, got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        scale = DEFAULT_DEPTH_SCALE_M if scale_m is None else scale_m
        depth = arr.astype(np.float32) * np.float32(scale)
        depth[arr == 0] = np.nan
        return depth
    if not np.issubdtype(arr.dtype, np.floating):
        raise ImageFileError(f"{p}: unsupported depth dtype {arr.dtype}; use float metres or 16-bit integer units")
    depth = arr.astype(np.float32) * np.float32(1.0 if scale_m is None else scale_m)
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def write_depth(path: str | Path, depth_m: NDArray[np.floating]) -> Path:
    """Write float metres: ``.npy``/``.tif`` as float32 (NaN kept), ``.png`` as 16-bit millimetres (0 = invalid)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    d = np.asarray(depth_m, dtype=np.float32)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        np.save(p, d)
    elif suffix in (".tif", ".tiff"):
        from PIL import Image

        Image.fromarray(d, mode="F").save(p)
    elif suffix == ".png":
        from PIL import Image

        mm = np.where(np.isfinite(d) & (d > 0), np.rint(d / DEFAULT_DEPTH_SCALE_M), 0)
        if mm.max(initial=0) > 65535:
            raise ImageFileError(f"{p}: depths beyond 65.535 m do not fit a 16-bit millimetre PNG; write .npy or .tif")
        Image.fromarray(mm.astype(np.uint16)).save(p)
    else:
        raise ImageFileError(f"{p}: write depth as .npy, .tif or .png (16-bit millimetres)")
    return p


def read_normals(path: str | Path) -> NDArray[np.float32]:
    """A ``.npy`` file of float normals ``HxWx3``."""
    p = Path(path)
    if p.suffix.lower() != ".npy" or not p.is_file():
        raise ImageFileError(f"{p}: normals are read from an existing .npy file of shape HxWx3")
    arr = np.load(p, allow_pickle=False)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ImageFileError(f"{p}: normals must have shape HxWx3, got {arr.shape}")
    return arr.astype(np.float32)


def write_normals(path: str | Path, normals: NDArray[np.floating]) -> Path:
    """Write float normals ``HxWx3`` as ``.npy`` (float32)."""
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise ImageFileError(f"{p}: write decoded normals as .npy")
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, np.asarray(normals, dtype=np.float32))
    return p


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width_px`` x ``height_px`` (no distortion)."""

    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    width_px: int
    height_px: int

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in (self.fx_px, self.fy_px)):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx_px}, fy={self.fy_px}")

    def matrix(self) -> NDArray[np.float64]:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx_px, 0, self.cx_px], [0, self.fy_px, self.cy_px], [0, 0, 1]], dtype=np.float64)


def sample_frame() -> tuple[NDArray[np.uint8], NDArray[np.float32], Intrinsics]:
    """The shipped TUM RGB-D frame (CC BY 4.0): colour, metric depth (NaN invalid) and its intrinsics."""
    root = _PACKAGE_DATA / "tum_rgbd"
    rgb = read_rgb(root / "color.png")
    depth = read_depth(root / "depth.png", scale_m=1.0 / 5000.0)
    return rgb, depth, Intrinsics(525.0, 525.0, 319.5, 239.5, rgb.shape[1], rgb.shape[0])
