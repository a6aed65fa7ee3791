"""The node's pure parts: the prompt set from parameters, label merging, overlays, cloud points, the frame slot."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from vb_perception.errors import PromptError, VbPerceptionError
from vb_perception.geometry import backproject
from vb_perception.ros.frames import Frame, LatestSlot, PromptSet, cloud_points, merge_labels, overlay


def test_prompt_set_orders_prompts_and_numbers_classes() -> None:
    p = PromptSet.build(
        ["depth"], ["Segment the cup in red and the plate in blue", "the man in pink in yellow"], "chair"
    )
    assert p.prompts == [
        "Generate a metric depth map of this image.",
        "Segment the cup in red and the plate in blue",
        "the man in pink in yellow",
        "Each chair is colored differently.",
    ]
    classes = json.loads(p.classes_json())["classes"]
    assert [(c["id"], c["class"], c["rgb"]) for c in classes] == [
        (1, "cup", [255, 0, 0]),
        (2, "plate", [0, 0, 255]),
        (3, "man in pink", [255, 255, 0]),
    ]


def test_prompt_set_rejects_with_the_parser_message() -> None:
    with pytest.raises(PromptError, match="did you mean 'purple'"):
        PromptSet.build(["depth"], ["Segment the cat in blurple"], "")
    with pytest.raises(PromptError, match="asks for depth, not a segmentation"):
        PromptSet.build([], ["Generate a metric depth map"], "")
    with pytest.raises(VbPerceptionError, match=r"unknown tasks \['flow'\]"):
        PromptSet.build(["flow"], [], "")


def test_merge_labels_offsets_and_later_prompts_win() -> None:
    a = np.array([[0, 1, 2]], np.int32)
    b = np.array([[1, 0, 1]], np.int32)
    np.testing.assert_array_equal(merge_labels([a, b], [2, 1]), [[3, 1, 3]])
    assert merge_labels([a], [2]).dtype == np.uint16


def test_overlay_blends_only_labelled_pixels() -> None:
    img = np.full((1, 4, 3), 100, np.uint8)
    out = overlay(img, np.array([[0, 1, 2, 9]]), np.array([[255, 0, 0], [0, 0, 255]], np.uint8))
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    np.testing.assert_allclose(out[0, 1], 0.45 * 100 + 0.55 * np.array([255, 0, 0]), atol=1.5)
    np.testing.assert_allclose(out[0, 2], 0.45 * 100 + 0.55 * np.array([0, 0, 255]), atol=1.5)
    np.testing.assert_array_equal(out[0, 3], [100, 100, 100])  # an id without a colour is left alone


def test_cloud_points_equal_backprojection() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 12.0, (30, 40)).astype(np.float32)
    depth[3, 4] = np.nan
    k = np.array([[50.0, 0, 19.5], [0, 55.0, 14.5], [0, 0, 1]])
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    normals = np.tile(np.array([0, 0, -1], np.float32), (30, 40, 1))
    normals[0, 0] = np.nan
    pts, col, nrm = cloud_points(depth, k, rgb, normals, 2, 10.0)
    full = backproject(depth, k)[::2, ::2]
    keep = np.isfinite(full).all(-1) & (full[..., 2] <= 10.0) & np.isfinite(normals[::2, ::2]).all(-1)
    np.testing.assert_allclose(pts, full[keep], rtol=1e-6)
    np.testing.assert_array_equal(col, rgb[::2, ::2][keep])
    assert nrm is not None and nrm.shape == pts.shape and np.all(nrm[:, 2] == -1)


def test_cloud_rows_are_the_pointcloud2_layout() -> None:
    from sensor_msgs.msg import PointCloud2, PointField
    from std_msgs.msg import Header

    from vb_perception.ros.conversions import packed_pointcloud2, pointcloud2
    from vb_perception.ros.frames import cloud

    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 12.0, (12, 16)).astype(np.float32)
    depth[0, :3] = [np.inf, -1.0, 0.0]  # never points, whatever the range
    k = np.array([[20.0, 0, 7.5], [0, 21.0, 5.5], [0, 0, 1]])
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    c = cloud(depth, k, rgb, None, 1, float("inf"))
    assert c.fields == ("x", "y", "z", "rgb") and len(c.data) == 12 * 16 - 3
    full = backproject(depth, k)
    keep = np.isfinite(full).all(-1) & (depth > 0)
    np.testing.assert_allclose(c.points, full[keep], rtol=1e-6)
    np.testing.assert_array_equal(c.rgb, rgb[keep])
    # the packed message is byte-identical to packing the separate arrays
    a = packed_pointcloud2(c.data, c.fields, Header(), PointCloud2, PointField)
    b = pointcloud2(c.points.copy(), Header(), PointCloud2, PointField, rgb=c.rgb)
    assert bytes(a.data) == bytes(b.data) and a.point_step == b.point_step == 16
    bare = cloud(depth, k, None, None, 3, 5.0)
    assert bare.fields == ("x", "y", "z") and bare.rgb is None and bare.normals is None
    assert np.all(bare.points[:, 2] <= 5.0)


def test_latest_slot_keeps_only_the_newest_frame() -> None:
    slot = LatestSlot()
    for i in range(5):
        slot.put(Frame(np.zeros((1, 1, 3), np.uint8), i, None, i))
    frame = slot.take(0.1)
    assert frame is not None and frame.header == 4 and slot.dropped == 4
    assert slot.take(0.01) is None
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(slot.take(5.0)))
    t.start()
    slot.close()
    t.join(1.0)
    assert not t.is_alive() and result == [None]  # close wakes a waiting worker


def test_resize_rgb_matches_pil_bilinear() -> None:
    from PIL import Image

    from vb_perception.ros.node import resize_rgb

    small = np.random.default_rng(2).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    ours = resize_rgb(small, 48, 64)
    pil = np.asarray(Image.fromarray(small).resize((64, 48), Image.BILINEAR))
    assert ours.shape == (48, 64, 3) and ours.flags["C_CONTIGUOUS"] and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - pil).max() <= 1
