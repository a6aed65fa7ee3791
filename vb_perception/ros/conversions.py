"""sensor_msgs <-> numpy without cv_bridge: zero-copy views on the way in where the layout allows, one copy out.

Functions take message objects (duck-typed: anything with the ``sensor_msgs`` fields) and build messages from the
classes they are given, so this module imports neither rclpy nor the message packages and is tested against the
real generated classes.

Supported input encodings: rgb8, bgr8, rgba8, bgra8, mono8, mono16 (scaled to 8 bit for the generator),
yuv422 / uyvy (UYVY), yuyv / yuv422_yuy2 (YUYV), and ``sensor_msgs/CompressedImage`` (jpeg, png).
"""

from __future__ import annotations

import array
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import VbPerceptionError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "EncodingError",
    "camera_info_k",
    "cloud_fields",
    "compressed_to_rgb",
    "image_fx_px",
    "image_to_rgb",
    "numpy_to_image",
    "packed_pointcloud2",
    "pointcloud2",
    "scaled_camera_info",
]

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}
_YUV = {"yuv422": "uyvy", "uyvy": "uyvy", "yuyv": "yuyv", "yuv422_yuy2": "yuyv"}
SUPPORTED_ENCODINGS = (*_CHANNELS, "mono16", *_YUV)


class EncodingError(VbPerceptionError):
    """An image message this package cannot read (unknown encoding, inconsistent size / step)."""


def _rows(msg: Any, bytes_per_px: int, dtype: Any = np.uint8) -> NDArray[Any]:
    """``H x W x C`` view of ``msg.data`` honouring ``step`` (row padding) and ``is_bigendian``; no copy."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row = w * bytes_per_px
    if step < row or len(msg.data) < step * h:
        raise EncodingError(
            f"{msg.encoding} image {w}x{h}: step {step} and {len(msg.data)} data bytes are too small "
            f"(need step >= {row} and {step * h} bytes)"
        )
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=step * h).reshape(h, step)[:, :row]
    if dtype == np.uint8:
        return buf.reshape(h, w, bytes_per_px)
    big = bool(getattr(msg, "is_bigendian", 0))
    return np.ascontiguousarray(buf).view(np.dtype(dtype).newbyteorder(">" if big else "<")).reshape(h, w)


def _yuv422_to_rgb(raw: NDArray[np.uint8], order: str) -> NDArray[np.uint8]:
    """Packed 4:2:2 (two pixels in four bytes) to RGB, BT.601 limited range."""
    h, nbytes = raw.shape[:2]  # 2 bytes per pixel
    pairs = raw.reshape(h, nbytes // 4, 4).astype(np.float32)
    if order == "uyvy":
        u, y0, v, y1 = pairs[..., 0], pairs[..., 1], pairs[..., 2], pairs[..., 3]
    else:
        y0, u, y1, v = pairs[..., 0], pairs[..., 1], pairs[..., 2], pairs[..., 3]
    y = np.stack([y0, y1], axis=-1).reshape(h, nbytes // 2) - 16.0
    u = np.repeat(u - 128.0, 2, axis=1)
    v = np.repeat(v - 128.0, 2, axis=1)
    rgb = np.stack([1.164 * y + 1.596 * v, 1.164 * y - 0.392 * u - 0.813 * v, 1.164 * y + 2.017 * u], axis=-1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _swizzle(msg: Any, enc: str) -> NDArray[np.uint8]:
    """bgr8 / rgba8 / bgra8 rows to RGB with PIL's raw decoder (C, ~10x faster than a numpy channel shuffle)."""
    from PIL import Image

    mode, raw_mode = {"bgr8": ("RGB", "BGR"), "rgba8": ("RGBA", "RGBA"), "bgra8": ("RGBA", "BGRA")}[enc]
    _rows(msg, 3 if enc == "bgr8" else 4)  # size / step checks
    w, h, step = int(msg.width), int(msg.height), int(msg.step)
    im = Image.frombuffer(mode, (w, h), msg.data, "raw", raw_mode, step, 1)  # any buffer: bytes, array, ndarray
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def image_to_rgb(msg: Any) -> NDArray[np.uint8]:
    """``sensor_msgs/Image`` -> ``HxWx3`` uint8 RGB. rgb8 with ``step == 3 * width`` is a zero-copy view (read-only);
    other encodings are converted. Raises :class:`EncodingError` naming the encoding and the supported list."""
    enc = str(msg.encoding).lower()
    if enc in ("bgr8", "rgba8", "bgra8"):
        return _swizzle(msg, enc)
    if enc == "rgb8":
        return _rows(msg, 3)
    if enc == "mono8":
        return np.repeat(_rows(msg, 1), 3, axis=2)
    if enc == "mono16":
        v = _rows(msg, 2, np.uint16).astype(np.float32)
        hi = float(np.percentile(v, 99.5)) if v.size else 1.0
        g = np.clip(v * (255.0 / max(hi, 1.0)), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if enc in _YUV:
        if int(msg.width) % 2:
            raise EncodingError(f"{enc} image width {msg.width} is odd; 4:2:2 packs pixel pairs")
        raw = _rows(msg, 2).reshape(int(msg.height), int(msg.width) * 2)
        return _yuv422_to_rgb(raw, _YUV[enc])
    raise EncodingError(f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")


def compressed_to_rgb(msg: Any) -> NDArray[np.uint8]:
    """``sensor_msgs/CompressedImage`` (jpeg / png, as image_transport's compressed plugin sends) -> RGB."""
    from PIL import Image, UnidentifiedImageError

    fmt = str(msg.format).lower()
    if not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise EncodingError(f"unsupported compressed format {msg.format!r}; supported: jpeg, png")
    try:
        with Image.open(io.BytesIO(bytes(msg.data))) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise EncodingError(f"compressed image ({msg.format}) does not decode: {exc}") from exc


_OUT = {
    (np.dtype(np.float32), 1): ("32FC1", 4),
    (np.dtype(np.float32), 3): ("32FC3", 12),
    (np.dtype(np.uint8), 3): ("rgb8", 3),
    (np.dtype(np.uint8), 1): ("mono8", 1),
    (np.dtype(np.uint16), 1): ("mono16", 2),
}


def _new(cls: type, **fields: Any) -> Any:
    """A message from keyword fields; ``uint8[]`` fields may be ``bytes`` or a C-contiguous numpy array (its bytes).

    rclpy classes get each buffer as an ``array.array('B')`` through the field's setter, which keeps it as it is:
    one copy in all (the constructor, or a ``bytes`` value, would copy once more, and a numpy array there costs a
    per-element conversion). rosbags' dataclasses (offline replay) take numpy uint8 arrays and need every field."""
    if hasattr(cls, "__msgtype__"):
        for key, value in fields.items():
            if isinstance(value, bytes):
                fields[key] = np.frombuffer(value, np.uint8)
            elif isinstance(value, np.ndarray):
                fields[key] = value.reshape(-1).view(np.uint8)
            elif isinstance(value, list) and value and isinstance(value[0], float):
                fields[key] = np.asarray(value, np.float64)
        return cls(**fields)
    buffers = {k: v for k, v in fields.items() if isinstance(v, (bytes, np.ndarray))}
    msg = cls(**{k: v for k, v in fields.items() if k not in buffers})
    for key, value in buffers.items():
        buf = array.array("B")
        buf.frombytes(memoryview(value).cast("B"))
        setattr(msg, key, buf)
    return msg


def numpy_to_image(array: NDArray[Any], header: Any, image_cls: type) -> Any:
    """An ``HxW`` / ``HxWxC`` array -> ``image_cls`` (sensor_msgs/Image): 32FC1 (REP 118 depth: metres, NaN invalid),
    32FC3, rgb8, mono8 or mono16, little-endian, dense rows, stamped and framed with ``header``."""
    a = np.ascontiguousarray(array)
    c = 1 if a.ndim == 2 else a.shape[2]
    key = (a.dtype, c)
    if key not in _OUT:
        raise EncodingError(f"no image encoding for {a.dtype} with {c} channel(s)")
    encoding, px_bytes = _OUT[key]
    return _new(
        image_cls,
        header=header,
        height=int(a.shape[0]),
        width=int(a.shape[1]),
        encoding=encoding,
        is_bigendian=0,
        step=int(a.shape[1]) * px_bytes,
        data=a.astype(a.dtype.newbyteorder("<"), copy=False),  # contiguous: a is, and a byte swap copies
    )


def _cal(info: Any, name: str) -> Any:
    """A calibration array of CameraInfo: ROS 2 names them d, k, r, p; ROS 1 (bags) D, K, R, P."""
    value = getattr(info, name, None)
    return getattr(info, name.upper()) if value is None else value


def camera_info_k(info: Any) -> NDArray[np.float64]:
    """The 3x3 camera matrix of a ``sensor_msgs/CameraInfo``; raises when it is all zeros (uncalibrated)."""
    k = np.asarray(_cal(info, "k"), dtype=np.float64).reshape(3, 3)
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        raise VbPerceptionError("camera_info has no focal length (K is zero): the camera is not calibrated")
    return k


def image_fx_px(info: Any | None, width: int) -> float | None:
    """The focal length fx [px] of ``info``'s camera at an image ``width`` px wide (camera_info may describe another
    resolution); None without camera_info or for an uncalibrated camera (K all zero)."""
    if info is None:
        return None
    fx = float(np.asarray(_cal(info, "k"), dtype=np.float64)[0])
    if not (np.isfinite(fx) and fx > 0):
        return None
    return fx * width / float(info.width) if info.width else fx


def scaled_camera_info(info: Any, height: int, width: int, info_cls: type) -> Any:
    """``info`` for the same camera at ``height`` x ``width`` (K and P rows scaled; distortion kept)."""
    sx, sy = width / float(info.width), height / float(info.height)
    k = np.asarray(_cal(info, "k"), dtype=np.float64).reshape(3, 3).copy()
    k[0] *= sx
    k[1] *= sy
    p = np.asarray(_cal(info, "p"), dtype=np.float64).reshape(3, 4).copy()
    p[0] *= sx
    p[1] *= sy
    return _new(
        info_cls,
        header=info.header,
        height=int(height),
        width=int(width),
        distortion_model=info.distortion_model,
        d=[float(v) for v in _cal(info, "d")],
        k=k.ravel().tolist(),
        r=[float(v) for v in _cal(info, "r")],
        p=p.ravel().tolist(),
        binning_x=int(info.binning_x),
        binning_y=int(info.binning_y),
        roi=info.roi,
    )


def pointcloud2(
    points: NDArray[np.float32],
    header: Any,
    cloud_cls: type,
    field_cls: type,
    rgb: NDArray[np.uint8] | None = None,
    normals: NDArray[np.float32] | None = None,
) -> Any:
    """An unorganised ``sensor_msgs/PointCloud2`` from ``N x 3`` points (x, y, z; metres), with ``rgb`` packed into a
    float32 ``rgb`` field as rviz expects, and ``normal_x/y/z`` when given."""
    names = cloud_fields(rgb is not None, normals is not None)
    data = np.empty((points.shape[0], len(names)), np.float32)
    data[:, :3] = points
    if rgb is not None:
        packed = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2].astype(np.uint32)
        data[:, 3] = packed.view(np.float32)
    if normals is not None:
        data[:, -3:] = normals
    return packed_pointcloud2(data, names, header, cloud_cls, field_cls)


def cloud_fields(rgb: bool, normals: bool) -> tuple[str, ...]:
    """The float32 fields of our clouds, in order: x, y, z, then ``rgb`` and ``normal_x/y/z`` when present."""
    return ("x", "y", "z") + (("rgb",) if rgb else ()) + (("normal_x", "normal_y", "normal_z") if normals else ())


def packed_pointcloud2(
    data: NDArray[np.float32], names: Sequence[str], header: Any, cloud_cls: type, field_cls: type
) -> Any:
    """A ``sensor_msgs/PointCloud2`` of rows already in its layout (``N x len(names)`` float32, e.g.
    :class:`vb_perception.ros.frames.Cloud`): one copy, into the message."""
    n = data.shape[0]
    return _new(
        cloud_cls,
        header=header,
        height=1,
        width=n,
        fields=[field_cls(name=nm, offset=4 * i, datatype=7, count=1) for i, nm in enumerate(names)],  # 7: FLOAT32
        is_bigendian=False,
        point_step=4 * len(names),
        row_step=4 * len(names) * n,
        data=np.ascontiguousarray(data, dtype="<f4"),
        is_dense=True,
    )
