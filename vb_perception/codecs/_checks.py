"""Input validation shared by the codecs: shapes, dtypes and ranges, with errors that say what to do."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import CodecError

#: Float RGB may overshoot [0, 1] by this much (generator outputs, resampling) before it is an error.
FLOAT_RGB_TOLERANCE = 0.02


def as_rgb_float(rgb: NDArray[np.generic], what: str) -> NDArray[np.float32]:
    """Return ``rgb`` (uint8 0-255 or float 0-1, shape ``(..., 3)``) as float32 in [0, 1].

    Raises:
        CodecError: wrong last axis, unsupported dtype, NaN, or floats outside [0, 1] (e.g. 0-255 floats).
    """
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise CodecError(
            f"{what}: expected an RGB array of shape (..., 3), got shape {arr.shape}; "
            "pass an HxWx3 image (drop any alpha channel first)"
        )
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) * np.float32(1.0 / 255.0)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if out.size:
            lo, hi = float(np.min(out)), float(np.max(out))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise CodecError(f"{what}: float RGB contains NaN or inf; replace them before decoding")
            if lo < -FLOAT_RGB_TOLERANCE or hi > 1.0 + FLOAT_RGB_TOLERANCE:
                raise CodecError(
                    f"{what}: float RGB must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
                    "divide 0-255 floats by 255 or pass uint8"
                )
            if lo < 0.0 or hi > 1.0:
                out = np.clip(out, 0.0, 1.0)
        return out
    raise CodecError(f"{what}: unsupported dtype {arr.dtype}; pass uint8 (0-255) or float (0-1) RGB")


def to_uint8(rgb01: NDArray[np.floating]) -> NDArray[np.uint8]:
    """Quantise float RGB in [0, 1] to uint8 by rounding to the nearest code (half to even)."""
    return np.rint(np.clip(rgb01, 0.0, 1.0) * 255.0).astype(np.uint8)


def as_float_array(values: NDArray[np.generic], what: str) -> NDArray[np.float32]:
    """Return a real-valued array as float32 or raise :class:`CodecError` naming the dtype."""
    arr = np.asarray(values)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise CodecError(f"{what}: expected a real-valued array, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


#: Pixels per chunk in the vectorised codecs: temporaries then stay in L2 cache and below glibc's mmap threshold
#: (128 KiB), instead of being fresh mmap'd pages on every call (page faults tripled decode time at 640x480),
#: while Python overhead stays negligible (~20 chunks per VGA image).
CHUNK_PX = 16384


def map_pixels(
    values: NDArray[np.generic],
    fn: Callable[[NDArray[np.generic]], NDArray[np.generic]],
    out_tail: tuple[int, ...],
    out_dtype: type[np.generic],
) -> NDArray[np.generic]:
    """Apply ``fn`` (``[n, 3] -> [n, *out_tail]``) to ``(..., 3)`` values in chunks of :data:`CHUNK_PX` pixels."""
    arr = np.asarray(values)
    flat = arr.reshape(-1, 3)
    out = np.empty((len(flat),) + out_tail, dtype=out_dtype)
    for start in range(0, len(flat), CHUNK_PX):
        out[start : start + CHUNK_PX] = fn(flat[start : start + CHUNK_PX])
    return out.reshape(arr.shape[:-1] + out_tail)


def map_rgb(
    rgb: NDArray[np.generic],
    fn: Callable[[NDArray[np.float32]], NDArray[np.generic]],
    out_tail: tuple[int, ...],
    out_dtype: type[np.generic],
    what: str,
) -> NDArray[np.generic]:
    """Check ``(..., 3)`` RGB (shape and dtype, before any work), then apply ``fn`` to float32 ``[n, 3]`` chunks in
    [0, 1] (uint8 scaled, float range-checked per chunk by :func:`as_rgb_float`)."""
    arr = np.asarray(rgb)
    as_rgb_float(arr.reshape(-1, 3)[:0] if arr.ndim and arr.shape[-1:] == (3,) else arr, what)
    return map_pixels(arr, lambda chunk: fn(as_rgb_float(chunk, what)), out_tail, out_dtype)
