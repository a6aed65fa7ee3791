"""`vb-perception replay` on bags written here: two cameras, compressed images, 16UC1 and 32FC1 ground truth, both
storage formats; the output MCAP read back with an independent reader (mcap + mcap-ros2-support)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="needs rosbags")
torch = pytest.importorskip("torch", reason="the replay runs the generator")
pytest.importorskip("diffusers", reason="the replay runs the generator")
pytest.importorskip("mcap_ros2", reason="the independent reader: mcap-ros2-support")
from test_bags import write_two_camera_bag
from tiny_models import save_tiny

from vb_perception.cli import main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("m") / "tiny", resolution_px=16, model_version="tiny-replay")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_two_cameras_reports_every_frame(tmp_path: Path, tiny_model: Path, storage: str) -> None:
    write_two_camera_bag(tmp_path / "bag", storage)
    args = ["replay", str(tmp_path / "bag"), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]
    assert main(args + ["--prompt", "Segment the floor in red", "--instances-class", "chair"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["frames_ok"] == 8 and report["frames_failed"] == 0 and report["error"] is None
    assert all("metrics" in f and np.isfinite(f["metrics"]["abs_rel"]) for f in report["frames"])
    assert set(report["overall"]) == {"/cam1/color", "/cam2"}
    assert report["overall"]["/cam2"]["frames"] == 4
    ranges = report["depth_by_range"]["/cam2"]  # every scored pixel of the camera in exactly one range
    assert sum(r["pixels"] for r in ranges) == sum(
        f["metrics"]["pixels"] for f in report["frames"] if f["camera"] == "/cam2"
    )
    page = (tmp_path / "out" / "report.html").read_text()
    assert "data:image/png;base64," in page and "/cam1/color" in page and ">none</td>" in page
    for png in ("metrics_per_frame.png", "depth_by_range.png", "latency.png", "panels.png"):
        assert (tmp_path / "out" / png).stat().st_size > 1000, png

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    (mcap_file,) = (tmp_path / "out" / "replay").glob("*.mcap")
    seen: dict[str, list[object]] = {}
    with mcap_file.open("rb") as f:
        for _schema, channel, _message, msg in make_reader(
            f, decoder_factories=[DecoderFactory()]
        ).iter_decoded_messages():
            seen.setdefault(channel.topic, []).append(msg)
    for topic in ("/cam1/color/image", "/cam1/color/depth/image", "/cam1/color/normals/image", "/cam1/color/points",
                  "/cam2/depth/image", "/cam2/segmentation/labels", "/cam2/camera_info",
                  "/cam2/instances/labels"):  # fmt: skip
        assert len(seen.get(topic, [])) == 4, topic
    depth = seen["/cam1/color/depth/image"][0]
    assert depth.encoding == "32FC1" and (depth.height, depth.width) == (24, 32)
    assert depth.header.frame_id == "cam1_optical"

    from vb_perception.pipeline import Perception

    image = seen["/cam1/color/image"][0]
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(24, 32, 3)
    again = Perception(tiny_model, normals_frame="optical")(rgb, ["Generate a metric depth map of this image."], seed=0)
    np.testing.assert_array_equal(
        np.frombuffer(bytes(depth.data), "<f4").reshape(24, 32),
        again[0].depth_m,  # type: ignore[union-attr]
    )


def test_truncated_bag_keeps_what_was_replayed(tmp_path: Path, tiny_model: Path, capsys) -> None:
    from test_bags import cut, write_long_bag

    write_long_bag(tmp_path / "bag")
    cut(tmp_path / "bag", 0.7)
    code = main(["replay", str(tmp_path / "bag"), "--out", str(tmp_path / "out"), "--model", str(tiny_model)])
    assert code == 2 and "ends early or is corrupt" in capsys.readouterr().err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["error"] and 10 < report["frames_ok"] < 40 and report["frames_failed"] == 0
    from mcap.reader import make_reader

    (out_mcap,) = (tmp_path / "out" / "replay").glob("*.mcap")
    with out_mcap.open("rb") as f:  # the output is a complete MCAP (summary and all) with every replayed frame
        reader = make_reader(f)
        depth = [m for _s, c, m in reader.iter_messages() if c.topic == "/cam/depth/image"]
    assert len(depth) == report["frames_ok"]


def test_demo_makes_the_bag_the_mcap_the_report_and_a_ply(tmp_path: Path, capsys) -> None:
    pytest.importorskip("open3d", reason="the demo renders its bag and writes the PLY with open3d")
    assert main(["demo", "--out", str(tmp_path), "--frames", "2"]) == 0
    printed = capsys.readouterr().out
    assert "report (open in a browser)" in printed and "point cloud of frame 0" in printed
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["frames"] == 2 and summary["failed"] == 0
    assert 0 <= summary["depth"]["delta1"] <= 1
    assert (tmp_path / "run" / "report.html").is_file() and list((tmp_path / "run" / "replay").glob("*.mcap"))
    import open3d as o3d

    cloud = o3d.io.read_point_cloud(str(tmp_path / "frame_000.ply"))
    assert len(cloud.points) > 1000 and cloud.has_colors()
    bag_bytes = sum(p.stat().st_size for p in (tmp_path / "sample_bag_2").iterdir())
    assert bag_bytes < 5 * 2**20


def test_ros1_bag_with_extra_topics(tmp_path: Path, tiny_model: Path) -> None:
    """A ROS 1 bag (rosbags writes one): images + camera_info + 16UC1 ground truth, and a topic of a type the replay
    does not use, which is skipped and named in the report."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    t = ts.types
    rng = np.random.default_rng(1)
    with Writer(tmp_path / "run.bag") as w:
        conns = {
            "/kinect/rgb/image_color": w.add_connection(
                "/kinect/rgb/image_color", "sensor_msgs/msg/Image", typestore=ts
            ),
            "/kinect/rgb/camera_info": w.add_connection(
                "/kinect/rgb/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts
            ),
            "/kinect/depth/image": w.add_connection("/kinect/depth/image", "sensor_msgs/msg/Image", typestore=ts),
            "/rosout": w.add_connection("/rosout", "std_msgs/msg/String", typestore=ts),
        }
        for i in range(3):
            stamp = 5_000_000_000 + i * 50_000_000
            hdr = t["std_msgs/msg/Header"](
                seq=i, stamp=t["builtin_interfaces/msg/Time"](sec=5, nanosec=i * 50_000_000), frame_id="kinect"
            )
            rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            img = t["sensor_msgs/msg/Image"](
                header=hdr, height=24, width=32, encoding="bgr8", is_bigendian=0, step=96, data=rgb.ravel()
            )
            mm = np.full((24, 32), 1500, np.uint16)
            gt = t["sensor_msgs/msg/Image"](
                header=hdr,
                height=24,
                width=32,
                encoding="16UC1",
                is_bigendian=0,
                step=64,
                data=mm.view(np.uint8).ravel(),
            )
            roi = t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
            info = t["sensor_msgs/msg/CameraInfo"](
                header=hdr, height=24, width=32, distortion_model="plumb_bob", D=np.zeros(5),
                K=np.array([30.0, 0, 16, 0, 30, 12, 0, 0, 1]), R=np.eye(3).ravel(), P=np.zeros(12),
                binning_x=0, binning_y=0, roi=roi,
            )  # fmt: skip
            for topic, msg in (
                ("/kinect/rgb/camera_info", info),
                ("/kinect/rgb/image_color", img),
                ("/kinect/depth/image", gt),
            ):
                w.write(conns[topic], stamp, ts.serialize_ros1(msg, msg.__msgtype__))
            w.write(
                conns["/rosout"], stamp, ts.serialize_ros1(t["std_msgs/msg/String"](data="x"), "std_msgs/msg/String")
            )
    args = ["replay", str(tmp_path / "run.bag"), "--out", str(tmp_path / "out"), "--model", str(tiny_model)]
    assert main([*args, "--flip-average"]) == 0  # the node's flip_average, in the replay too
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["frames_ok"] == 3 and report["overall"]["/kinect/rgb"]["frames"] == 3
    assert report["skipped_topics"] == {"/rosout": "std_msgs/msg/String"}
