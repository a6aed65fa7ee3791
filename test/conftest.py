"""Shared fixtures and options: the TUM RGB-D frame, hypothesis profiles, --run-slow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_TUM = REPO.parent / "shared" / "fixtures" / "tum_rgbd"

settings.register_profile(
    "default", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tum_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The TUM RGB-D frame: colour uint8 HxWx3, depth float32 metres (NaN invalid), K 3x3."""
    from vb_perception.imageio import read_depth, read_rgb, sample_frame

    if SHARED_TUM.is_dir():  # the project's shared fixture, as the brief asks
        rgb = read_rgb(SHARED_TUM / "color.png")
        depth = read_depth(SHARED_TUM / "depth.png", scale_m=1 / 5000)
        _, _, k = sample_frame()
    else:  # a standalone clone: the copy shipped inside the package
        rgb, depth, k = sample_frame()
    return rgb, depth, k.matrix()
