#!/usr/bin/env python3
"""Node overhead per 640x480 frame: everything the node does besides the generator (message conversions in and
out, normals to the optical frame, the point cloud, label merging and overlays), with the real message classes.

Usage: python bench/node.py [--repeat 50]. Prints a markdown table (median ms per step and the total). No DDS is
started: the steps are the functions the node calls, on the shipped TUM frame and its depth.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
from _timing import median_ms


def main() -> None:
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
    from std_msgs.msg import Header

    from vb_perception.codecs import encode_normals
    from vb_perception.codecs.normals import camera_to_optical
    from vb_perception.geometry import normals_from_depth
    from vb_perception.imageio import sample_frame
    from vb_perception.ros.conversions import image_to_rgb, numpy_to_image, packed_pointcloud2
    from vb_perception.ros.frames import cloud, merge_labels, overlay
    from vb_perception.ros.node import resize_rgb
    from vb_perception.runtime.memory import keep_freed_memory

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument(
        "--default-malloc", action="store_true", help="leave glibc's allocator as it is (the node tunes it)"
    )
    args = ap.parse_args()
    if not args.default_malloc:
        keep_freed_memory()  # as perception_node does at start
    rgb, depth, intr = sample_frame()
    k = np.array([[intr.fx_px, 0, intr.cx_px], [0, intr.fy_px, intr.cy_px], [0, 0, 1]])
    normals_opt = np.nan_to_num(normals_from_depth(depth, k), nan=0.0)  # a realistic field
    generated = encode_normals(camera_to_optical(normals_opt))[::8, ::8].copy()  # processing-size RGB (60x80)

    def vis() -> object:
        return resize_rgb(generated, 480, 640)

    labels = [np.random.default_rng(0).integers(0, 3, depth.shape).astype(np.int32)]
    header = Header(frame_id="camera_rgb_optical_frame")
    msg_in = Image(height=480, width=640, encoding="rgb8", step=1920, data=rgb.tobytes())
    bgr_in = Image(height=480, width=640, encoding="bgr8", step=1920, data=rgb[..., ::-1].tobytes())
    info = CameraInfo(height=480, width=640)
    info.k = k.ravel().tolist()

    def points() -> object:
        c = cloud(depth, k, rgb, None, 2, 10.0)
        return packed_pointcloud2(c.data, c.fields, header, PointCloud2, PointField)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("image in: rgb8 (zero-copy view)", lambda: image_to_rgb(msg_in)),
        ("image in: bgr8 (one copy)", lambda: image_to_rgb(bgr_in)),
        ("depth/image out (32FC1)", lambda: numpy_to_image(depth, header, Image)),
        ("normals/image (32FC3, optical from the pipeline)", lambda: numpy_to_image(normals_opt, header, Image)),
        ("normals/visualization (rgb8, generated image resized)", lambda: numpy_to_image(vis(), header, Image)),
        ("points (stride 2, x y z rgb)", points),
        ("segmentation/labels (mono16)", lambda: numpy_to_image(merge_labels(labels, [2]), header, Image)),
        (
            "segmentation/visualization (rgb8 overlay)",
            lambda: numpy_to_image(
                overlay(rgb, labels[0], np.array([[255, 0, 0], [0, 0, 255]], np.uint8)), header, Image
            ),
        ),
    ]
    rows = [(name, median_ms(fn, args.repeat)) for name, fn in steps]
    print("| step (640x480) | median [ms] |")
    print("|---|---:|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")
    core = sum(ms for name, ms in rows if "bgr8" not in name)
    print(f"| **total per frame (rgb8 in, every output)** | **{core:.2f}** |")


if __name__ == "__main__":
    main()
