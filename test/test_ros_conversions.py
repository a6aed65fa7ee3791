"""Message <-> numpy conversions against the real generated sensor_msgs classes (PyPI ros-jazzy-* wheels)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="needs the ros-jazzy-sensor-msgs wheel")
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from vb_perception.ros.conversions import (
    SUPPORTED_ENCODINGS,
    EncodingError,
    camera_info_k,
    compressed_to_rgb,
    image_fx_px,
    image_to_rgb,
    numpy_to_image,
    pointcloud2,
    scaled_camera_info,
)


def _msg(encoding: str, pixels: np.ndarray, pad: int = 0, big: bool = False) -> Image:
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels.reshape(h, -1)
    if big:
        row = pixels.astype(">u2").reshape(h, -1).view(np.uint8)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    m = Image(height=h, width=w, encoding=encoding, is_bigendian=int(big), step=padded.shape[1])
    m.data = padded.tobytes()
    return m


RGB = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 7])
def test_rgb_family(pad: int) -> None:
    alpha = np.full((5, 6, 1), 9, np.uint8)
    cases = {
        "rgb8": RGB,
        "bgr8": RGB[..., ::-1],
        "rgba8": np.concatenate([RGB, alpha], -1),
        "bgra8": np.concatenate([RGB[..., ::-1], alpha], -1),
    }
    for enc, px in cases.items():
        np.testing.assert_array_equal(image_to_rgb(_msg(enc, np.ascontiguousarray(px), pad)), RGB, err_msg=enc)
    mono = image_to_rgb(_msg("mono8", RGB[..., 0].copy(), pad))
    np.testing.assert_array_equal(mono, np.repeat(RGB[..., :1], 3, axis=2))


def test_rgb8_is_a_zero_copy_view() -> None:
    m = _msg("rgb8", RGB)
    out = image_to_rgb(m)
    assert np.shares_memory(out, np.frombuffer(m.data, np.uint8))


@pytest.mark.parametrize("big", [False, True])
def test_mono16_in_either_byte_order(big: bool) -> None:
    depth_mm = np.arange(30, dtype=np.uint16).reshape(5, 6) * 100
    out = image_to_rgb(_msg("mono16", depth_mm, big=big))
    assert out.shape == (5, 6, 3) and out[0, 0, 0] == 0
    assert np.all(np.diff(out[..., 0].ravel().astype(int)) >= 0)  # monotone in the 16-bit value


def _to_yuv(rgb: np.ndarray, order: str) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    y0, y1, uu, vv = y[:, 0::2], y[:, 1::2], u[:, 0::2], v[:, 0::2]
    quad = [uu, y0, vv, y1] if order == "uyvy" else [y0, uu, y1, vv]
    return np.clip(np.stack(quad, -1).round(), 0, 255).astype(np.uint8).reshape(rgb.shape[0], -1)


@pytest.mark.parametrize(
    ("enc", "order"), [("yuv422", "uyvy"), ("uyvy", "uyvy"), ("yuyv", "yuyv"), ("yuv422_yuy2", "yuyv")]
)
def test_yuv422(enc: str, order: str) -> None:
    rgb = np.repeat(RGB[:, :3], 2, axis=1)  # pixel pairs share chroma in 4:2:2
    m = Image(height=5, width=6, encoding=enc, step=12)
    m.data = _to_yuv(rgb, order).tobytes()
    assert np.abs(image_to_rgb(m).astype(int) - rgb).max() <= 4


def test_bad_images_are_clear_errors() -> None:
    with pytest.raises(EncodingError, match=r"unsupported image encoding 'bayer_rggb8'; supported: rgb8, bgr8"):
        image_to_rgb(Image(height=2, width=2, encoding="bayer_rggb8", step=2, data=bytes(4)))
    with pytest.raises(EncodingError, match="too small"):
        image_to_rgb(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(20)))
    with pytest.raises(EncodingError, match="width 5 is odd"):
        image_to_rgb(Image(height=1, width=5, encoding="yuyv", step=10, data=bytes(10)))
    assert "mono16" in SUPPORTED_ENCODINGS and "yuyv" in SUPPORTED_ENCODINGS


@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; png compressed bgr8"])
def test_compressed(fmt: str) -> None:
    from PIL import Image as PILImage

    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8)  # JPEG-friendly content
    buf = io.BytesIO()
    PILImage.fromarray(smooth).save(buf, format="PNG" if "png" in fmt else "JPEG", quality=95)
    out = compressed_to_rgb(CompressedImage(format=fmt, data=buf.getvalue()))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth).mean() < (1e-9 if "png" in fmt else 3)
    with pytest.raises(EncodingError, match="does not decode"):
        compressed_to_rgb(CompressedImage(format=fmt, data=b"\x00garbage"))
    with pytest.raises(EncodingError, match="supported: jpeg, png"):
        compressed_to_rgb(CompressedImage(format="theora", data=b""))


def test_numpy_to_image_rep118_depth_and_labels() -> None:
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    depth = np.array([[1.5, np.nan], [0.25, 30.0]], np.float32)
    m = numpy_to_image(depth, header, Image)
    assert isinstance(m, Image) and m.encoding == "32FC1" and m.step == 8 and m.is_bigendian == 0
    assert m.header.frame_id == "camera_color_optical_frame" and m.header.stamp.nanosec == 345
    back = np.frombuffer(m.data, "<f4").reshape(2, 2)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(depth))
    np.testing.assert_array_equal(back[~np.isnan(back)], depth[~np.isnan(depth)])
    labels = numpy_to_image(np.array([[0, 1], [2, 65535]], np.uint16), header, Image)
    assert labels.encoding == "mono16" and np.frombuffer(labels.data, "<u2")[-1] == 65535
    assert numpy_to_image(np.zeros((2, 2, 3), np.float32), header, Image).encoding == "32FC3"
    with pytest.raises(EncodingError, match="no image encoding for float64"):
        numpy_to_image(np.zeros((2, 2)), header, Image)


@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    pad=st.integers(0, 5),
    enc=st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8"]),
)
def test_any_size_and_padding_round_trips(h: int, w: int, pad: int, enc: str) -> None:
    rgb = np.random.default_rng(h * 100 + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if enc == "mono8":
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
        px = rgb[..., 0].copy()
    else:
        px = rgb[..., ::-1] if enc.startswith("bgr") else rgb
        if enc.endswith("a8"):
            px = np.concatenate([px, np.zeros((h, w, 1), np.uint8)], -1)
    np.testing.assert_array_equal(image_to_rgb(_msg(enc, np.ascontiguousarray(px), pad)), rgb)


def test_camera_info_scaling_keeps_projection() -> None:
    info = CameraInfo(height=480, width=640, distortion_model="plumb_bob")
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    info.p = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    small = scaled_camera_info(info, 240, 320, CameraInfo)
    assert isinstance(small, CameraInfo) and (small.height, small.width) == (240, 320)
    point = np.array([0.3, -0.2, 2.0])
    uv = camera_info_k(info) @ point
    uv_small = camera_info_k(small) @ point
    np.testing.assert_allclose(uv_small[:2] / uv_small[2], uv[:2] / uv[2] * 0.5)
    assert small.p[0] == 262.5 and small.distortion_model == "plumb_bob"
    with pytest.raises(Exception, match="not calibrated"):
        camera_info_k(CameraInfo())


def test_the_focal_length_of_an_image_follows_its_width_and_is_none_when_uncalibrated() -> None:
    info = CameraInfo(height=480, width=640)
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    assert image_fx_px(info, 640) == 525.0 and image_fx_px(info, 320) == 262.5  # a half-size image stream
    assert image_fx_px(CameraInfo(), 640) is None and image_fx_px(None, 640) is None  # K all zero: uncalibrated


def test_pointcloud2_fields_and_packed_rgb() -> None:
    pts = np.array([[0.0, 0.1, 1.0], [1.0, -1.0, 3.0]], np.float32)
    rgb = np.array([[255, 0, 0], [1, 2, 3]], np.uint8)
    normals = np.array([[0, 0, -1], [0, -1, 0]], np.float32)
    m = pointcloud2(pts, Header(frame_id="cam"), PointCloud2, PointField, rgb=rgb, normals=normals)
    assert isinstance(m, PointCloud2) and m.width == 2 and m.point_step == 28 and m.row_step == 56
    assert [f.name for f in m.fields] == ["x", "y", "z", "rgb", "normal_x", "normal_y", "normal_z"]
    assert all(f.datatype == PointField.FLOAT32 for f in m.fields)
    rec = np.frombuffer(m.data, np.float32).reshape(2, 7)
    np.testing.assert_array_equal(rec[:, :3], pts)
    packed = rec[:, 3].view(np.uint32)
    assert packed[0] == 0xFF0000 and packed[1] == 0x010203
    np.testing.assert_array_equal(rec[:, 4:], normals)
