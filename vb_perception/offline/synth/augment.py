"""Input colour augmentation for training examples.

The recolouring tests on the TUM frame (README, "The generator") showed that object colour sends some near pixels
of vb-mini2@19400 to far depths. Depth and surface orientation do not depend on an object's hue, so rotating the hue
of a depth or normals example's camera image (never its target) teaches the model not to lean on it. Segmentation
examples are left alone: their prompts may name colours ("the red chair").
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["hue_rotate"]


def hue_rotate(rgb: NDArray[np.uint8], angle_rad: float) -> NDArray[np.uint8]:
    """``rgb`` (uint8 HxWx3) with its hue rotated by ``angle_rad`` about the grey axis: greys stay as they are, the
    sum of the three channels is kept (up to clipping to [0, 255] and rounding), and a third of a turn maps
    R → G → B → R exactly."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    k = (1.0 - c) / 3.0
    r = s / math.sqrt(3.0)
    # Rodrigues' rotation about the unit vector (1, 1, 1) / sqrt(3), acting on column vectors
    m = np.array(
        [
            [c + k, k - r, k + r],
            [k + r, c + k, k - r],
            [k - r, k + r, c + k],
        ]
    )
    out = np.asarray(rgb, dtype=np.float64) @ m.T
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
