"""Normals <-> RGB in the paper's camera frame, and the ROS optical frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vb_perception.codecs import normals as N
from vb_perception.errors import CodecError

vectors = arrays(
    np.float32,
    st.tuples(st.integers(1, 8), st.integers(1, 8), st.just(3)),
    elements=st.floats(-1.0, 1.0, width=32),
).filter(lambda a: bool(np.all(np.linalg.norm(a, axis=-1) > 0.1)))


@given(vectors)
def test_8bit_round_trip_angle_is_below_half_a_degree(n: np.ndarray) -> None:
    unit = n / np.linalg.norm(n, axis=-1, keepdims=True)
    back = N.decode_normals(N.encode_normals(n))
    cos = np.clip(np.sum(unit * back, axis=-1), -1.0, 1.0)
    assert np.degrees(np.arccos(cos)).max() < 0.5
    np.testing.assert_allclose(np.linalg.norm(back, axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("normal", "rgb"),
    [
        ((0.0, 0.0, 1.0), (128, 128, 255)),  # facing the camera: light blue/purple
        ((0.0, 1.0, 0.0), (128, 255, 128)),  # up: light green
        ((1.0, 0.0, 0.0), (255, 128, 128)),  # right: pinkish red
        ((-1.0, 0.0, 0.0), (0, 128, 128)),  # left: rgb = (n + 1) / 2 exactly
    ],
)
def test_paper_colours(normal: tuple[float, float, float], rgb: tuple[int, int, int]) -> None:
    assert N.encode_normals(np.array([normal], dtype=np.float32))[0].tolist() == list(rgb)


def test_invalid_normals_encode_grey_and_decode_nan() -> None:
    n = np.array([[np.nan, 0, 1], [0, 0, 0], [0, 0, 2]], dtype=np.float32)
    rgb = N.encode_normals(n)
    assert rgb[0].tolist() == [128, 128, 128] and rgb[1].tolist() == [128, 128, 128]
    back = N.decode_normals(rgb)
    assert np.all(np.isnan(back[:2])) and np.allclose(back[2], [0, 0, 1], atol=0.01)


def test_optical_frame_flips_y_and_z_and_is_its_own_inverse() -> None:
    up_camera = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    towards_viewer = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    assert N.camera_to_optical(up_camera).tolist() == [0.0, -1.0, 0.0]  # optical y points down
    assert N.camera_to_optical(towards_viewer).tolist() == [0.0, 0.0, -1.0]  # optical z points away
    v = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_array_equal(N.optical_to_camera(N.camera_to_optical(v)), v)


@given(arrays(np.float32, (3, 4, 3), elements=st.floats(-1, 1, width=32)))
def test_mirroring_reverses_columns_negates_x_and_is_its_own_inverse(n: np.ndarray) -> None:
    m = N.mirror_normals(n)
    np.testing.assert_array_equal(m[:, 0], n[:, -1] * np.array([-1, 1, 1], np.float32))
    np.testing.assert_array_equal(N.mirror_normals(m), n)
    # a wall facing left, seen in a mirror, faces right
    left = np.tile(np.array([-1.0, 0.0, 0.0], np.float32), (2, 2, 1))
    assert N.mirror_normals(left)[0, 0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(CodecError, match="HxWx3"):
        N.mirror_normals(n[0])


def test_bad_inputs_raise_codec_errors() -> None:
    with pytest.raises(CodecError, match=r"shape \(\.\.\., 3\)"):
        N.encode_normals(np.zeros((4, 2), np.float32))
    with pytest.raises(CodecError, match="divide 0-255 floats"):
        N.decode_normals(np.full((2, 3), 200.0, np.float32))


def test_torch_twins_match_numpy() -> None:
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    n = np.random.default_rng(3).normal(size=(2, 3, 5, 5)).astype(np.float32)
    rgb = T.encode_normals(torch.from_numpy(n), channel_dim=1)
    expected = N.encode_normals(np.moveaxis(n, 1, -1)).astype(np.float32) / 255.0
    np.testing.assert_allclose(rgb.permute(0, 2, 3, 1).numpy(), expected, atol=0.5 / 255 + 1e-6)
    back = T.decode_normals(rgb, channel_dim=1).numpy()
    unit = n / np.linalg.norm(n, axis=1, keepdims=True)
    np.testing.assert_allclose(back, unit, atol=1e-5)
