"""Input colour augmentation (offline/synth/augment.py): property tests, numpy only."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vb_perception.offline.synth.augment import hue_rotate


@settings(max_examples=60, deadline=None)
@given(
    rgb=hnp.arrays(np.uint8, (4, 5, 3)),
    angle=st.floats(-10.0, 10.0, allow_nan=False),
)
def test_hue_rotation_keeps_greys_and_channel_sums(rgb: np.ndarray, angle: float) -> None:
    out = hue_rotate(rgb, angle)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    grey = np.repeat(rgb[..., :1], 3, axis=-1)
    assert np.array_equal(hue_rotate(grey, angle), grey)  # the rotation axis is the grey line
    assert np.array_equal(hue_rotate(rgb, 0.0), rgb)
    # a third of a turn permutes the channels exactly: R -> G -> B -> R
    assert np.array_equal(hue_rotate(rgb, 2 * np.pi / 3), rgb[..., [2, 0, 1]])
    got = out.astype(int)
    m = np.abs(got.sum(-1) - rgb.astype(int).sum(-1))
    inside = (got > 0).all(-1) & (got < 255).all(-1)
    assert (m[inside] <= 2).all()  # channel sum kept, up to rounding, where nothing clipped
