"""The Dockerfile, checked statically (no Docker engine on these machines)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_dockerfile_builds_with_colcon_on_ros_and_copies_what_exists() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG ROS_DISTRO=jazzy$", text, re.M)
    assert re.search(r"^FROM ros:\$\{ROS_DISTRO\}-ros-base$", text, re.M)
    assert "rosdep install --from-paths src" in text
    assert "colcon build --packages-select vb_perception" in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the repository"


def test_both_flavours_install_the_generator_packages() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG FLAVOR=cpu$", text, re.M)
    assert "download.pytorch.org/whl/cpu" in text and "download.pytorch.org/whl/cu128" in text
    assert "tensorrt-cu12" in text and "onnxruntime-gpu" in text
    runtime = (REPO / "docker" / "requirements-runtime.txt").read_text()
    pins = dict(line.split("==") for line in runtime.splitlines() if "==" in line and not line.startswith("#"))
    dev = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line)
    for name, version in pins.items():  # the image runs what the tests ran
        assert dev.get(name) == version, name
    assert 'CMD ["ros2", "launch", "vb_perception", "perception.launch.py"]' in text
