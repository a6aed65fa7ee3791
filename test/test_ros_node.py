"""The perception node with real rclpy + Fast DDS, inside a loopback-only network namespace.

test/ros_harness.py runs the node and a test publisher / subscriber in one process under ``unshare -n`` with a
private ROS_DOMAIN_ID (DDS never sees the machine's real interfaces; the harness refuses to start otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy", reason="needs the ros-jazzy-rclpy wheel")
torch = pytest.importorskip("torch", reason="the node runs the generator")
pytest.importorskip("diffusers", reason="the node runs the generator")

REPO = Path(__file__).resolve().parents[1]


def _netns_available() -> bool:
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not _netns_available():
        pytest.skip("needs `unshare -n` (root or user namespaces) and iproute2 to keep DDS on loopback")
    from tiny_models import save_tiny

    root = tmp_path_factory.mktemp("node")
    model = save_tiny(root / "model", model_version="tiny-test")
    out = root / "obs.json"
    env = os.environ | {"ROS_DOMAIN_ID": str(100 + os.getpid() % 100), "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    script = f"ip link set lo up && exec {sys.executable} {REPO / 'test' / 'ros_harness.py'} {model} {out}"
    run = subprocess.run(["unshare", "-n", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text())


def test_every_output_stamped_and_framed_like_its_input(observations: dict[str, Any]) -> None:
    assert observations["discovered"] and observations["all_outputs"]
    expected = {
        "depth": "32FC1",
        "normals": "32FC3",
        "normals_vis": "rgb8",
        "labels": "mono16",
        "labels_vis": "rgb8",
        "instances": "mono16",
    }
    outs = observations["outputs"]
    for key, encoding in expected.items():
        assert outs[key]["encoding"] == encoding, key
        assert (outs[key]["height"], outs[key]["width"]) == (480, 640), key
    for key, o in outs.items():
        assert o["frame_id"] == "camera_rgb_optical_frame" and o["stamp"] == [100, 500], key
    assert (outs["depth_info"]["height"], outs["depth_info"]["width"]) == (480, 640)


def test_depth_and_cloud_follow_rep118_and_k(observations: dict[str, Any]) -> None:
    low, high = observations["depth_min_max_m"]
    assert 0 < low <= high  # metres, positive where valid (NaN marks invalid)
    assert observations["cloud_fields"] == ["x", "y", "z", "rgb", "normal_x", "normal_y", "normal_z"]
    assert observations["cloud_points"] == observations["cloud_expected_points"] > 0
    assert observations["cloud_max_err_m"] < 1e-4  # the points are the depth image back-projected with K
    assert observations["cloud_normals_max_err"] < 1e-6 and observations["normals_unit"] < 1e-5


def test_encodings_and_bad_input(observations: dict[str, Any]) -> None:
    for enc in ("bgr8", "mono8", "yuyv", "bayer_rggb8"):  # bayer: logged as failed, no crash
        assert observations[f"encoding_{enc}"], enc
    assert observations["alive_after_bad_encoding"] and observations["compressed"]
    assert observations["no_info_depth"] and observations["no_info_no_cloud"]
    assert observations["publisher_restart"]


def test_runtime_prompts(observations: dict[str, Any]) -> None:
    assert observations["classes"] == ["floor", "wall"]
    assert observations["param_change_ok"] and observations["classes_after_param"]
    assert observations["param_bad_rejected"] and "did you mean 'purple'" in observations["param_bad_reason"]
    assert observations["prompts_kept"]
    assert observations["prompt_topic_applied"] and observations["prompt_topic_bad_kept"]
    assert observations["flip_on"] and observations["flip_frame"] and observations["flip_off"]
    assert observations["steps_fixed"]  # start-only parameters refuse a change and say why


def test_no_queue_and_flat_memory(observations: dict[str, Any]) -> None:
    stats = observations["stats"]
    accounted = stats["processed"] + stats["dropped"] + stats["idle"]  # failed decodes never enter the slot
    assert accounted <= stats["received"] <= accounted + 1  # + at most the frame in flight
    assert observations["burst_dropped"] > 0  # a burst keeps only the newest frame
    rss = observations["rss_mb"]
    assert observations["memory_phase_processed"] >= 5
    assert max(rss) - rss[0] < 64, rss  # no growth with the frame count
    for key in ("latency_ms", "input_rate_hz", "frames_dropped", "backend", "model"):
        assert key in observations["diagnostic_keys"]
