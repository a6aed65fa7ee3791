"""Depth <-> RGB: the paper's encoding, cross-checked against the independent ``hilbertmap`` package."""

from __future__ import annotations

import io

import hilbertmap
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from vb_perception.codecs import depth as D
from vb_perception.errors import CodecError

MISSION_PATH = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1), (1, 1, 1)]

depths_m = st.floats(min_value=0.5, max_value=30.0, allow_nan=False, width=32)
depth_arrays = arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=depths_m)


def test_path_is_the_fixed_mission_order_and_matches_hilbertmap() -> None:
    assert D.PATH_VERTICES.tolist() == [list(v) for v in MISSION_PATH]
    np.testing.assert_array_equal(D.PATH_VERTICES, hilbertmap.cubewalk.VERTICES)
    assert (D.DEPTH_LAMBDA, D.DEPTH_C) == (-3.0, 10.0 / 3.0)


def test_path_is_continuous_one_unit_edge_at_a_time() -> None:
    steps = np.abs(np.diff(D.PATH_VERTICES, axis=0))
    assert np.all(steps.sum(axis=1) == 1.0)  # each edge moves exactly one channel by 1


@given(st.floats(0.0, 1.0), st.floats(0.0, 1e-3))
def test_curve_to_rgb_is_continuous(f: float, eps: float) -> None:
    a = D.curve_to_rgb(np.array([f]))
    b = D.curve_to_rgb(np.array([min(f + eps, 1.0)]))
    assert np.abs(a - b).sum() <= 7 * eps + 1e-5


@given(depth_arrays)
def test_closed_form_curve_equals_the_generic_power_transform(depth: np.ndarray) -> None:
    ours = D.depth_to_curve(depth)
    generic = hilbertmap.depth_to_normalized(depth.astype(np.float64), lam=-3.0, c=10.0 / 3.0)
    np.testing.assert_allclose(ours, generic, atol=2e-7)
    back = D.curve_to_depth(ours)
    np.testing.assert_allclose(back, depth, rtol=2e-5)


@given(st.lists(st.floats(0.0, 1e3, allow_nan=False), min_size=2, max_size=50, unique=True))
def test_curve_is_monotonic_in_depth(values: list[float]) -> None:
    d = np.sort(np.array(values, dtype=np.float64))
    f = D.depth_to_curve(d)
    assert np.all(np.diff(f) >= 0.0)
    assert f[0] >= 0.0 and f[-1] <= 1.0
    # And strictly increasing in exact arithmetic: the generic formula in float64 shows it.
    f64 = hilbertmap.depth_to_normalized(d)
    assert np.all(np.diff(f64)[np.diff(d) > 1e-6 * (1.0 + d[1:])] > 0.0)


@given(depth_arrays)
def test_encode_matches_hilbertmap_rounded(depth: np.ndarray) -> None:
    ours = D.encode_depth(depth)
    ref = hilbertmap.depth_to_rgb(depth.astype(np.float64)) * 255.0
    assert ours.dtype == np.uint8 and ours.shape == depth.shape + (3,)
    assert np.abs(ours.astype(np.float64) - ref).max() <= 0.5 + 1e-3


@given(arrays(np.uint8, st.tuples(st.integers(1, 16), st.integers(1, 16), st.just(3))))
def test_decode_projects_any_colour_like_hilbertmap(rgb: np.ndarray) -> None:
    ours = D.rgb_to_curve(rgb)
    ref = hilbertmap.project(rgb.astype(np.float64) / 255.0)
    # Off-path colours can be equidistant from two far-apart edges; there either answer is right.
    p = rgb.astype(np.float64)[..., None, :] / 255.0
    starts, edges = hilbertmap.cubewalk.VERTICES[:-1], np.diff(hilbertmap.cubewalk.VERTICES, axis=0)
    t = np.clip(np.sum((p - starts) * edges, -1), 0, 1)
    dist = np.sort(np.sum((starts + t[..., None] * edges - p) ** 2, -1), axis=-1)
    tie = dist[..., 1] - dist[..., 0] < 1e-5
    np.testing.assert_allclose(ours[~tie], ref[~tie], atol=1e-6)


@given(depth_arrays)
def test_8bit_round_trip_error_is_within_half_a_code_step(depth: np.ndarray) -> None:
    decoded = D.decode_depth(D.encode_depth(depth))
    err = np.abs(decoded - depth)
    bound = 0.5 * D.depth_code_step_m(depth) * 1.02 + 1e-6
    assert np.all(err <= bound)


@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(1.0, 10.0, width=32)))
def test_8bit_round_trip_is_below_0p2_percent_at_1_to_10_m(depth: np.ndarray) -> None:
    rel = np.abs(D.decode_depth(D.encode_depth(depth)) - depth) / depth
    assert rel.max() <= 0.002


@given(arrays(np.float32, st.integers(1, 64), elements=st.floats(0.5625, 30.0, width=32)))
def test_8bit_round_trip_is_below_0p3_percent_from_0p5625_to_30_m(depth: np.ndarray) -> None:
    rel = np.abs(D.decode_depth(D.encode_depth(depth)) - depth) / depth
    assert rel.max() <= 0.003


def test_8bit_round_trip_bound_between_0p5_and_0p56_m_is_the_quantisation_limit() -> None:
    # Half a code step at 0.5 m is 0.324 % of the depth: no 8-bit decoder of this encoding can do better there.
    d = np.linspace(0.5, 0.56, 20001, dtype=np.float32)
    limit = 0.5 * D.depth_code_step_m(d) / d
    assert 0.0032 < limit[0] < 0.00325
    rel = np.abs(D.decode_depth(D.encode_depth(d)) - d) / d
    assert rel.max() <= 0.00325
    assert np.all(rel <= limit * 1.02 + 1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, -1.0])
def test_invalid_depth_goes_to_the_chosen_end_and_decodes_to_nan(bad: float) -> None:
    depth = np.array([[1.0, bad]], dtype=np.float32)
    low = D.encode_depth(depth, invalid="min")
    high = D.encode_depth(depth, invalid="max")
    assert low[0, 1].tolist() == [0, 0, 0]
    assert high[0, 1].tolist() == [255, 255, 255]
    for rgb in (low, high):
        decoded = D.decode_depth(rgb)
        assert np.isnan(decoded[0, 1]) and abs(decoded[0, 0] - 1.0) < 0.002
    with pytest.raises(CodecError, match="1 pixels are NaN, inf or <= 0"):
        D.encode_depth(depth, invalid="raise")
    assert D.valid_depth_mask(depth).tolist() == [[True, False]]


def test_decode_accepts_float_rgb_and_rejects_0_255_floats() -> None:
    rgb = D.encode_depth(np.array([[2.0, 5.0]], dtype=np.float32))
    as_float = rgb.astype(np.float32) / 255.0
    np.testing.assert_allclose(D.decode_depth(as_float), D.decode_depth(rgb), rtol=1e-5)
    with pytest.raises(CodecError, match="divide 0-255 floats by 255"):
        D.decode_depth(rgb.astype(np.float32))
    with pytest.raises(CodecError, match=r"shape \(\.\.\., 3\)"):
        D.decode_depth(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(CodecError, match="unsupported dtype"):
        D.decode_depth(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(CodecError, match="unknown depth colormap 'jet'"):
        D.encode_depth(np.ones((2, 2), np.float32), colormap="jet")  # type: ignore[arg-type]


def test_decode_range_limits_become_nan() -> None:
    depth = np.array([0.3, 2.0, 50.0], dtype=np.float32)
    decoded = D.decode_depth(D.encode_depth(depth), min_depth_m=0.5, max_depth_m=20.0)
    assert np.isnan(decoded[0]) and np.isnan(decoded[2]) and abs(decoded[1] - 2.0) < 0.005


@pytest.mark.parametrize("colormap", ["plasma", "inferno", "viridis", "gray"])
def test_colormap_variants_round_trip_the_same_curve(colormap: str) -> None:
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 30.0, (64, 64)).astype(np.float32)
    f = D.depth_to_curve(depth)
    # Unquantised: the polyline projection inverts the colouring.
    np.testing.assert_allclose(D.rgb_to_curve(D.curve_to_rgb(f, colormap), colormap), f, atol=2e-4)
    decoded = D.decode_depth(D.encode_depth(depth, colormap=colormap), colormap=colormap)
    err = np.abs(decoded - depth)
    if colormap == "gray":  # 255 codes instead of 1785: the curve value is within half a code of the truth
        assert np.all(np.abs(D.depth_to_curve(decoded) - f) <= 0.5 / 255 + 1e-6)
    else:  # matplotlib tables: steps of uneven length in RGB, so no closed-form bound
        rel = err / depth
        assert np.median(rel) < 0.005 and rel.max() < 0.03


def test_encoding_survives_jpeg_q90_on_the_tum_frame(tum_frame: tuple[np.ndarray, ...]) -> None:
    _, depth, _ = tum_frame
    buf = io.BytesIO()
    Image.fromarray(D.encode_depth(depth)).save(buf, "JPEG", quality=90)  # default 4:2:0 chroma subsampling
    decoded = D.decode_depth(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    valid = np.isfinite(depth) & np.isfinite(decoded)
    assert valid.sum() > 0.99 * np.isfinite(depth).sum()
    abs_rel = np.mean(np.abs(decoded[valid] - depth[valid]) / depth[valid])
    assert abs_rel <= 0.01


def test_tum_frame_round_trip_without_compression(tum_frame: tuple[np.ndarray, ...]) -> None:
    _, depth, _ = tum_frame
    decoded = D.decode_depth(D.encode_depth(depth))
    valid = np.isfinite(depth)
    assert np.array_equal(np.isfinite(decoded), valid)
    rel = np.abs(decoded[valid] - depth[valid]) / depth[valid]
    assert rel.max() < 0.0025  # TUM depths are 1.46-9.33 m


def test_code_step_is_only_defined_for_single_channel_steps() -> None:
    assert D.depth_code_step_m(np.array([1.0]))[0] > 0
    with pytest.raises(CodecError, match="hilbert and gray"):
        D.depth_code_step_m(np.array([1.0]), colormap="plasma")


def test_torch_twins_match_numpy() -> None:
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    depth = np.random.default_rng(2).uniform(0.5, 30.0, (2, 8, 8))
    rgb_t = T.encode_depth(torch.from_numpy(depth), channel_dim=1)  # [B,3,H,W]
    assert tuple(rgb_t.shape) == (2, 3, 8, 8)
    rgb_np = D.curve_to_rgb(D.depth_to_curve(depth))
    np.testing.assert_allclose(rgb_t.permute(0, 2, 3, 1).numpy(), rgb_np, atol=1e-5)
    back = T.decode_depth(rgb_t, channel_dim=1)
    np.testing.assert_allclose(back.numpy(), depth, rtol=1e-6)
    u8 = D.encode_depth(depth.astype(np.float32))
    np.testing.assert_allclose(
        T.decode_depth(torch.from_numpy(u8.astype(np.float32) / 255.0)).numpy(), D.decode_depth(u8), rtol=1e-4
    )
    x = torch.rand(1, 3, 4, 4, requires_grad=True)
    T.decode_depth(x, channel_dim=1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert torch.isfinite(T.decode_depth(torch.ones(1, 3))).all()  # white decodes finite for losses


def test_torch_curve_and_rgb_are_inverse_and_differentiable() -> None:
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    f = torch.linspace(0.0, 0.999, 500, dtype=torch.float64).requires_grad_(True)
    rgb = T.curve_to_rgb(f)
    np.testing.assert_allclose(rgb.detach().numpy(), D.curve_to_rgb(f.detach().numpy()), atol=1e-6)
    back = T.rgb_to_curve(rgb)
    np.testing.assert_allclose(back.detach().numpy(), f.detach().numpy(), atol=1e-9)
    back.sum().backward()  # the round trip passes the gradient through unchanged, inside every edge
    np.testing.assert_allclose(f.grad.numpy(), 1.0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (6, 3), elements=st.floats(0.0, 1.0, width=32)),
    st.floats(0.005, 0.5),
)
def test_soft_gradient_projection_keeps_the_values(rgb: np.ndarray, temperature: float) -> None:
    """The straight-through soft projection (training's ``train.depth_soft_gradient``) returns the hard projection's
    values exactly; only its gradient differs."""
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    x = torch.from_numpy(rgb)
    np.testing.assert_array_equal(T.rgb_to_curve(x, soft_gradient=temperature).numpy(), T.rgb_to_curve(x).numpy())


@pytest.mark.parametrize("soft", [0.0, 0.05])
def test_soft_gradient_pulls_a_hedged_colour_to_the_near_edge(soft: float) -> None:
    """A near pixel's free RGB hedged half-way between dark red (near) and magenta (far), the colour the trained
    model gives the near tabletop pixels it decodes 3x too far (README: the third H200). Gradient descent on the
    decoded curve's L1 to the true 0.6 m: through the hard projection it only slides along the magenta-blue side and
    stays far; through the soft one it crosses to the red edge and decodes 0.6 m."""
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    true_f = T.depth_to_curve(torch.tensor(0.6))
    p = torch.tensor([0.98, 0.0, 0.51], requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.05)
    for _ in range(200):
        loss = (T.rgb_to_curve(p.clamp(0.0, 1.0), soft_gradient=soft) - true_f).abs()
        opt.zero_grad()
        loss.backward()
        opt.step()
    decoded_m = float(T.decode_depth(p.detach().clamp(0.0, 1.0)))
    if soft:
        assert decoded_m == pytest.approx(0.6, rel=0.02)
    else:
        assert decoded_m > 5.0  # stuck on the far side: the trap the soft gradient removes


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float32, (5, 3), elements=st.floats(0.0, 1.0, width=32)),
    st.sampled_from([(-1, (5, 3)), (1, (1, 3, 5)), (0, (3, 5))]),
)
def test_torch_projection_matches_numpy_off_the_walk(rgb: np.ndarray, layout: tuple[int, tuple[int, ...]]) -> None:
    """Any colour (generated colours lie off the walk) projects onto a point of the walk as near as the numpy
    decoder's, whichever axis holds the colour."""
    torch = pytest.importorskip("torch")
    from vb_perception.codecs import torch_ops as T

    channel_dim, shape = layout
    x = torch.from_numpy(rgb.T.copy() if channel_dim != -1 else rgb).reshape(shape)
    ours = T.rgb_to_curve(x, channel_dim=channel_dim).reshape(-1).numpy()
    theirs = D.rgb_to_curve(rgb)
    d_ours = np.linalg.norm(T.curve_to_rgb(torch.from_numpy(ours)).numpy() - rgb, axis=-1)
    d_theirs = np.linalg.norm(D.curve_to_rgb(theirs) - rgb, axis=-1)
    # Equally near, so both found the nearest point of the walk. The curve values themselves may differ where two
    # edges are equally near: (0, a, a) lies as near the green-cyan edge as the cyan-blue one.
    np.testing.assert_allclose(d_ours, d_theirs, atol=1e-5)
    assert np.all((ours >= 0.0) & (ours <= 1.0))
