"""Bags in and out: rosbag2 sqlite3 and MCAP written here, cameras found, frames matched with ground truth."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="needs rosbags")

from vb_perception.offline.bags import BagError, depth_from_msg, find_cameras, iter_frames, open_bags
from vb_perception.offline.bagwrite import BagWriter, header, msg_types
from vb_perception.ros.conversions import numpy_to_image

M = msg_types()
RNG = np.random.default_rng(0)


def _info(stamp_ns: int, frame: str, h: int, w: int) -> object:
    roi = M.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    k = np.array([100.0, 0, w / 2, 0, 100.0, h / 2, 0, 0, 1])
    p = np.array([100.0, 0, w / 2, 0, 0, 100.0, h / 2, 0, 0, 0, 1, 0])
    return M.CameraInfo(
        header=header(stamp_ns, frame), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=k,
        r=np.eye(3).ravel(), p=p, binning_x=0, binning_y=0, roi=roi,
    )  # fmt: skip


def write_two_camera_bag(path: Path, storage: str, frames: int = 4) -> dict[str, list[np.ndarray]]:
    """cam1: rgb8 + camera_info + 16UC1 mm ground truth written *after* its image; cam2: jpeg + camera_info + 32FC1
    metres at half resolution; plus an unrelated String topic."""
    from PIL import Image as PILImage

    truth: dict[str, list[np.ndarray]] = {"cam1": [], "cam2": []}
    with BagWriter(path, storage) as w:
        for i in range(frames):
            t = 1_000_000_000 + i * 100_000_000
            rgb = RNG.integers(0, 256, (24, 32, 3), dtype=np.uint8)
            w.write("/cam1/color/camera_info", _info(t, "cam1_optical", 24, 32), t)
            w.write("/cam1/color/image_raw", numpy_to_image(rgb, header(t, "cam1_optical"), M.Image), t)
            mm = RNG.integers(500, 5000, (24, 32)).astype(np.uint16)
            mm[0, 0] = 0
            truth["cam1"].append(mm.astype(np.float32) / 1000)
            w.write("/cam1/depth/image_rect_raw", numpy_to_image(mm, header(t + 1_000_000, "cam1_optical"), M.Image), t)
            buf = io.BytesIO()
            PILImage.fromarray(rgb).save(buf, format="JPEG")
            w.write(
                "/cam2/image_raw/compressed",
                M.CompressedImage(
                    header=header(t, "cam2"), format="jpeg", data=np.frombuffer(buf.getvalue(), np.uint8)
                ),
                t,
            )
            w.write("/cam2/camera_info", _info(t, "cam2", 24, 32), t)
            m = RNG.uniform(0.5, 5, (12, 16)).astype(np.float32)
            m[1, 1] = np.nan
            truth["cam2"].append(m)
            w.write("/cam2/depth/image", numpy_to_image(m, header(t, "cam2"), M.Image), t)
            w.write("/chatter", M.String(data="hello"), t)
    return truth


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_two_cameras_with_ground_truth(tmp_path: Path, storage: str) -> None:
    truth = write_two_camera_bag(tmp_path / "bag", storage)
    with open_bags([tmp_path / "bag"]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        cams = find_cameras(topics)
        assert [(c.name, c.image_topic, c.compressed, c.info_topic, c.depth_gt_topic) for c in cams] == [
            ("/cam1/color", "/cam1/color/image_raw", False, "/cam1/color/camera_info", "/cam1/depth/image_rect_raw"),
            ("/cam2", "/cam2/image_raw/compressed", True, "/cam2/camera_info", "/cam2/depth/image"),
        ]
        frames = list(iter_frames(reader, cams))
    assert len(frames) == 8 and all(f.error is None for f in frames)
    for cam in ("/cam1/color", "/cam2"):
        mine = [f for f in frames if f.camera.name == cam]
        assert [f.index for f in mine] == [0, 1, 2, 3]
        assert all(f.rgb is not None and f.rgb.shape == (24, 32, 3) for f in mine)
        assert all(f.info is not None and f.depth_gt_m is not None for f in mine)
    cam1 = [f for f in frames if f.camera.name == "/cam1/color"]
    for f, gt in zip(cam1, truth["cam1"]):
        expect = gt.copy()
        expect[expect == 0] = np.nan  # 0 mm = invalid
        np.testing.assert_allclose(f.depth_gt_m, expect, equal_nan=True)
    cam2 = [f for f in frames if f.camera.name == "/cam2"]
    assert cam2[0].depth_gt_m.shape == (12, 16) and np.isnan(cam2[0].depth_gt_m[1, 1])


def test_explicit_topics_and_errors(tmp_path: Path) -> None:
    write_two_camera_bag(tmp_path / "bag", "mcap", frames=1)
    with open_bags([tmp_path / "bag"]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
    (cam,) = find_cameras(topics, image_topic="/cam2/image_raw/compressed", depth_gt_topic="/cam2/depth/image")
    assert cam.info_topic == "/cam2/camera_info" and cam.depth_gt_topic == "/cam2/depth/image"
    with pytest.raises(BagError, match="topic /nope is not in the bag"):
        find_cameras(topics, image_topic="/nope")
    with pytest.raises(BagError, match="no camera image topic"):
        find_cameras({"/chatter": "std_msgs/msg/String"})
    with pytest.raises(BagError, match="no such bag"), open_bags([tmp_path / "missing"]):
        pass


def write_long_bag(path: Path, frames: int = 40) -> None:
    """One 320x240 camera with ground truth, big enough for several MCAP chunks (a chunk is about 1 MB)."""
    with BagWriter(path, "mcap") as w:
        for i in range(frames):
            t = 2_000_000_000 + i * 100_000_000
            rgb = RNG.integers(0, 256, (240, 320, 3), dtype=np.uint8)
            w.write("/cam/camera_info", _info(t, "cam", 240, 320), t)
            w.write("/cam/image_raw", numpy_to_image(rgb, header(t, "cam"), M.Image), t)
            depth = np.full((240, 320), 2.0 + i * 0.01, np.float32)
            w.write("/cam/depth/image", numpy_to_image(depth, header(t, "cam"), M.Image), t)


def cut(bag: Path, keep: float) -> None:
    """A recording killed mid-write: the MCAP cut short and no metadata.yaml (ros2 bag writes it last)."""
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * keep)])
    (bag / "metadata.yaml").unlink()


def test_truncated_bag_yields_what_it_has_then_says_where(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_long_bag(tmp_path / "bag")
    cut(tmp_path / "bag", 0.7)
    got: list[object] = []

    def read() -> None:
        with open_bags([tmp_path / "bag"]) as reader:
            cams = find_cameras({c.topic: c.msgtype for c in reader.connections})
            got.extend(iter_frames(reader, cams))

    with pytest.raises(BagError, match=r"the bag ends early or is corrupt after \d+ messages"):
        read()
    assert 10 < len(got) < 40  # the complete chunks before the cut
    assert all(f.rgb is not None and f.depth_gt_m is not None for f in got)  # type: ignore[attr-defined]
    assert [f.index for f in got] == list(range(len(got)))  # type: ignore[attr-defined]
    assert "has no MCAP summary (cut off?)" in caplog.text
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(100))
    with pytest.raises(BagError, match="no complete MCAP chunk"), open_bags([tmp_path / "junk"]):
        pass


def test_depth_encodings() -> None:
    mm = numpy_to_image(np.array([[0, 1500]], np.uint16), header(0, "f"), M.Image)
    np.testing.assert_allclose(depth_from_msg(mm), [[np.nan, 1.5]])
    bad = numpy_to_image(np.zeros((1, 2, 3), np.uint8), header(0, "f"), M.Image)
    with pytest.raises(Exception, match=r"16UC1 \(mm\) or 32FC1 \(m\), not rgb8"):
        depth_from_msg(bad)
