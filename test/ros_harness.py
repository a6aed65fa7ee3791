"""The perception node against a real rclpy test publisher, in one process, inside a loopback-only network namespace.

Run by test/test_ros_node.py as ``unshare -n sh -c 'ip link set lo up && python test/ros_harness.py MODEL OUT.json'``
with a private ROS_DOMAIN_ID. It refuses to start DDS unless the only network interface is ``lo``. It records what
arrives on every output topic and writes the observations to ``OUT.json``; the pytest side asserts on them.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _isolated() -> bool:
    """Only ``lo`` in this process's network namespace (/proc/self/net/dev is per namespace; /sys/class/net is not)."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [ln.split(":")[0].strip() for ln in lines] == ["lo"]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def main() -> int:
    if not _isolated():
        print("refusing to start DDS: not in a loopback-only network namespace", file=sys.stderr)
        return 3
    model_dir, out_path = sys.argv[1], Path(sys.argv[2])
    import rclpy
    from rcl_interfaces.msg import Parameter as ParameterMsg
    from rcl_interfaces.msg import ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
    from std_msgs.msg import Header, String

    from vb_perception.imageio import sample_frame
    from vb_perception.ros.node import PerceptionNode

    rclpy.init()
    rgb, _, intr = sample_frame()
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    overrides = [
        Parameter("model_path", value=model_dir),
        Parameter("segmentation.prompts", value=["Segment the floor in red and the wall in blue"]),
        Parameter("instances.class", value="chair"),
        Parameter("points.stride", value=4),
        Parameter("points.normals", value=True),
        Parameter("diagnostics_period_s", value=0.2),
    ]
    node = PerceptionNode("perception", namespace="cam", parameter_overrides=overrides)
    comp = PerceptionNode(
        "perception_compressed",
        namespace="cam2",
        parameter_overrides=[
            Parameter("model_path", value=model_dir),
            Parameter("image_transport", value="compressed"),
        ],
    )
    tester = rclpy.create_node("tester")
    got: dict[str, list[Any]] = {}
    counts: dict[str, int] = {}
    light = threading.Event()  # set: keep only the newest message per topic (the memory phase)

    def keep(name: str) -> Any:
        def store(msg: Any) -> None:
            counts[name] = counts.get(name, 0) + 1
            if light.is_set():
                got[name] = [msg]
            else:
                got.setdefault(name, []).append(msg)

        return store

    topics = {
        "depth": ("/cam/depth/image", Image),
        "depth_info": ("/cam/depth/camera_info", CameraInfo),
        "normals": ("/cam/normals/image", Image),
        "normals_vis": ("/cam/normals/visualization", Image),
        "points": ("/cam/points", PointCloud2),
        "labels": ("/cam/segmentation/labels", Image),
        "labels_vis": ("/cam/segmentation/visualization", Image),
        "instances": ("/cam/instances/labels", Image),
        "depth2": ("/cam2/depth/image", Image),
    }
    for name, (topic, cls) in topics.items():
        tester.create_subscription(cls, topic, keep(name), reliable)
    tester.create_subscription(String, "/cam/segmentation/classes", keep("classes"), latched)
    from diagnostic_msgs.msg import DiagnosticArray

    tester.create_subscription(DiagnosticArray, "/diagnostics", keep("diagnostics"), reliable)
    image_pub = tester.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    info_pub = tester.create_publisher(CameraInfo, "/cam/camera_info", qos_profile_sensor_data)
    prompt_pub = tester.create_publisher(String, "/cam/prompt", reliable)
    comp_pub = tester.create_publisher(CompressedImage, "/cam2/image/compressed", qos_profile_sensor_data)
    set_params = tester.create_client(SetParameters, "/cam/perception/set_parameters")
    executor = MultiThreadedExecutor(num_threads=3)
    for n in (node, comp, tester):
        executor.add_node(n)
    spin = threading.Thread(target=executor.spin, daemon=True)
    spin.start()
    obs: dict[str, Any] = {}

    def wait(cond: Any, timeout_s: float = 20.0) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.02)
        return False

    def header(sec: int, nsec: int = 0) -> Any:
        h = Header(frame_id="camera_rgb_optical_frame")
        h.stamp.sec, h.stamp.nanosec = sec, nsec
        return h

    def image_msg(pixels: np.ndarray, encoding: str, sec: int, width: int | None = None) -> Any:
        w = width or pixels.shape[1]
        m = Image(header=header(sec, 500), height=pixels.shape[0], width=w, encoding=encoding)
        m.step = pixels.shape[1] * (pixels.shape[2] if pixels.ndim == 3 else 1) * pixels.itemsize
        m.data = np.ascontiguousarray(pixels).tobytes()
        return m

    def info_msg(sec: int) -> Any:
        info = CameraInfo(header=header(sec, 500), height=intr.height_px, width=intr.width_px)
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [intr.fx_px, 0.0, intr.cx_px, 0.0, intr.fy_px, intr.cy_px, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [intr.fx_px, 0.0, intr.cx_px, 0.0, 0.0, intr.fy_px, intr.cy_px, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    # Discovery: every output has its subscriber before frames flow.
    obs["discovered"] = wait(lambda: all(p.get_subscription_count() > 0 for p in node.pubs.values()))

    # 1. The TUM frame with camera_info of the same stamp: every output, stamped and framed like the input.
    info_pub.publish(info_msg(100))
    time.sleep(0.2)
    image_pub.publish(image_msg(rgb, "rgb8", 100))
    keys = ("depth", "depth_info", "normals", "normals_vis", "points", "labels", "labels_vis", "instances")
    obs["all_outputs"] = wait(lambda: all(got.get(k) for k in keys))
    first = {k: got[k][0] for k in keys if got.get(k)}
    obs["outputs"] = {
        k: {
            "encoding": getattr(m, "encoding", None),
            "height": m.height,
            "width": m.width,
            "frame_id": m.header.frame_id,
            "stamp": [m.header.stamp.sec, m.header.stamp.nanosec],
        }
        for k, m in first.items()
    }
    if "depth" in first and "points" in first:
        d = np.frombuffer(first["depth"].data, "<f4").reshape(first["depth"].height, first["depth"].width)
        obs["depth_nan_frac"] = float(np.isnan(d).mean())
        obs["depth_min_max_m"] = [float(np.nanmin(d)), float(np.nanmax(d))]
        cloud = first["points"]
        fields = [f.name for f in cloud.fields]
        rec = np.frombuffer(cloud.data, np.float32).reshape(cloud.width, len(fields))
        k = np.array(first["depth_info"].k).reshape(3, 3)
        sub = d[::4, ::4]
        vv, uu = np.mgrid[0 : d.shape[0] : 4, 0 : d.shape[1] : 4]
        nrm = np.frombuffer(first["normals"].data, "<f4").reshape(d.shape[0], d.shape[1], 3)
        ok = np.isfinite(sub) & (sub > 0) & (sub <= 10.0) & np.isfinite(nrm[::4, ::4]).all(-1)
        z = sub[ok]
        expect = np.stack([(uu[ok] - k[0, 2]) / k[0, 0] * z, (vv[ok] - k[1, 2]) / k[1, 1] * z, z], -1)
        obs["cloud_fields"] = fields
        obs["cloud_points"] = int(cloud.width)
        obs["cloud_expected_points"] = int(ok.sum())
        n = min(len(expect), len(rec))
        obs["cloud_max_err_m"] = float(np.abs(rec[:n, :3] - expect[:n]).max()) if n else float("nan")
        obs["cloud_normals_max_err"] = float(np.abs(rec[:n, 4:7] - nrm[::4, ::4][ok][:n]).max()) if n else float("nan")
        good = np.isfinite(nrm).all(-1)
        obs["normals_unit"] = float(np.abs(np.linalg.norm(nrm[good], axis=-1) - 1).max())
    classes = json.loads(got["classes"][-1].data) if got.get("classes") else {}
    obs["classes"] = [c["class"] for c in classes.get("classes", [])]

    # 2. Other encodings: bgr8, mono8, yuyv all give outputs; an unknown one is logged, not fatal.
    for i, (enc, px, width) in enumerate(
        [
            ("bgr8", rgb[..., ::-1], 640),
            ("mono8", rgb[..., 1], 640),
            ("yuyv", np.zeros((480, 1280), np.uint8) + 128, 640),  # 2 bytes per pixel
            ("bayer_rggb8", rgb[..., 0], 640),
        ]
    ):
        before = len(got.get("depth", []))
        failed_before = node.stats["failed"]
        image_pub.publish(image_msg(px, enc, 200 + i, width))
        if enc == "bayer_rggb8":
            obs[f"encoding_{enc}"] = wait(lambda f=failed_before: node.stats["failed"] > f, 10.0)
        else:
            obs[f"encoding_{enc}"] = wait(lambda b=before: len(got.get("depth", [])) > b, 10.0)
    obs["alive_after_bad_encoding"] = True
    before = len(got["depth"])
    image_pub.publish(image_msg(rgb, "rgb8", 300))
    obs["alive_after_bad_encoding"] = wait(lambda: len(got["depth"]) > before)

    # 3. Runtime prompts: a valid parameter change, an invalid one (rejected, old prompts stay), the prompt topic.
    def call(prompts: list[str]) -> Any:
        value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=prompts)
        return set_param("segmentation.prompts", value)

    def set_param(name: str, value: Any) -> Any:
        req = SetParameters.Request()
        req.parameters = [ParameterMsg(name=name, value=value)]
        set_params.wait_for_service(timeout_sec=10.0)
        future = set_params.call_async(req)
        wait(future.done, 10.0)
        return future.result().results[0]

    ok_res = call(["Segment the chair in green"])
    obs["param_change_ok"] = bool(ok_res.successful)
    obs["classes_after_param"] = wait(
        lambda: "chair" in got["classes"][-1].data and "floor" not in got["classes"][-1].data
    )
    bad = call(["Segment the chair in blurple"])
    obs["param_bad_rejected"] = not bad.successful
    obs["param_bad_reason"] = bad.reason
    obs["prompts_kept"] = node.prompts.segmentation == ("Segment the chair in green",)
    prompt_pub.publish(String(data="Segment the table in yellow"))
    obs["prompt_topic_applied"] = wait(lambda: "table" in got["classes"][-1].data)
    prompt_pub.publish(String(data="Segment the table in blurple"))
    time.sleep(0.5)
    obs["prompt_topic_bad_kept"] = node.prompts.segmentation == ("Segment the table in yellow",)
    # flip_average switches at run time (the next frame runs depth and normals on the mirrored image too)
    flip = set_param("flip_average", ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=True))
    obs["flip_on"] = bool(flip.successful) and node.pipe.flip_average is True
    n_depth = len(got["depth"])
    image_pub.publish(image_msg(rgb, "rgb8", 350))
    obs["flip_frame"] = wait(lambda: len(got["depth"]) > n_depth)
    flip = set_param("flip_average", ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=False))
    obs["flip_off"] = bool(flip.successful) and node.pipe.flip_average is False
    steps = set_param("steps", ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=2))
    obs["steps_fixed"] = not steps.successful and "read at start" in steps.reason

    # 4. No camera_info for the stamp: depth still comes, no cloud.
    n_depth, n_points = len(got["depth"]), len(got["points"])
    image_pub.publish(image_msg(rgb, "rgb8", 400))
    obs["no_info_depth"] = wait(lambda: len(got["depth"]) > n_depth)
    time.sleep(0.3)
    obs["no_info_no_cloud"] = len(got["points"]) == n_points

    # 5. Compressed input on the second node.
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="JPEG", quality=90)
    wait(lambda: comp.pubs["depth"].get_subscription_count() > 0)
    comp_pub.publish(CompressedImage(header=header(500), format="jpeg", data=buf.getvalue()))
    obs["compressed"] = wait(lambda: bool(got.get("depth2")))

    # 6. The image publisher restarts: frames flow again.
    tester.destroy_publisher(image_pub)
    time.sleep(0.3)
    image_pub = tester.create_publisher(Image, "/cam/image", qos_profile_sensor_data)
    wait(lambda: image_pub.get_subscription_count() > 0)
    n_depth = len(got["depth"])
    for sec in range(600, 605):
        image_pub.publish(image_msg(rgb, "rgb8", sec))
        time.sleep(0.05)
    obs["publisher_restart"] = wait(lambda: len(got["depth"]) > n_depth)

    # 7. A few hundred frames: memory stays flat; then a burst: the newest frame wins, the rest count as dropped.
    light.set()
    rss, processed0 = [], node.stats["processed"]
    for i in range(300):
        image_pub.publish(image_msg(rgb, "rgb8", 1000 + i))
        time.sleep(0.03)
        if i % 50 == 49:
            rss.append(_rss_mb())
    obs["rss_mb"] = rss
    obs["memory_phase_processed"] = node.stats["processed"] - processed0
    dropped0 = node.slot.dropped
    for i in range(40):
        image_pub.publish(image_msg(rgb, "rgb8", 2000 + i))
    wait(lambda: node.slot._frame is None, 10.0)
    obs["burst_dropped"] = node.slot.dropped - dropped0
    obs["stats"] = dict(node.stats) | {"dropped": node.slot.dropped}
    diag = got.get("diagnostics", [])
    obs["diagnostic_keys"] = sorted({v.key for d in diag for s in d.status for v in s.values})

    executor.shutdown()
    for n in (node, comp, tester):
        n.destroy_node()
    rclpy.try_shutdown()
    out_path.write_text(json.dumps(obs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
