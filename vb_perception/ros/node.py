"""``perception_node``: camera image (+ camera_info) in; depth, normals, point cloud and prompted masks out.

A thin rclpy shell over :class:`vb_perception.pipeline.Perception`. Callbacks only store the newest frame; one
worker thread runs the generator on it and publishes; frames that arrive meanwhile replace it and are counted as
dropped (nothing queues). Topic names are relative, so ``namespace`` / remapping place the node on a camera.
See the README's "ROS 2 node" section for the topic and parameter tables.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import String

from vb_perception.errors import VbPerceptionError
from vb_perception.ros.conversions import (
    EncodingError,
    camera_info_k,
    compressed_to_rgb,
    image_fx_px,
    image_to_rgb,
    numpy_to_image,
    packed_pointcloud2,
    scaled_camera_info,
)
from vb_perception.ros.frames import Frame, LatestSlot, PromptSet, cloud, merge_labels, overlay

__all__ = ["PARAMETERS", "PerceptionNode", "main"]

#: name -> (default, description); every parameter the node declares (the launch files and config are checked
#: against this table).
PARAMETERS: dict[str, tuple[Any, str]] = {
    "image_transport": ("raw", "raw: subscribe to `image`; compressed: `image/compressed` (jpeg / png)"),
    "input_qos": ("sensor_data", "sensor_data (best effort, depth 5) or reliable, for the image and camera_info"),
    "tasks": (["depth", "normals"], "built-in tasks to run: depth, normals"),
    "segmentation.prompts": ([""], "segmentation prompts in the prompt grammar ('' entries are ignored)"),
    "instances.class": ("", "class to segment instance by instance ('' = off)"),
    "model_path": ("", "model folder ('' = the bundled models/vb-mini)"),
    "backend": ("torch", "torch, onnxruntime or tensorrt"),
    "engine": ("", "the .onnx / .engine file for onnxruntime / tensorrt ('' = the `vb-perception export` default)"),
    "device": ("cpu", "torch device (cpu, cuda)"),
    "steps": (0, "sampling steps (0 = the model's default)"),
    "flip_average": (False, "average depth and normals with their generation from the mirrored image (same batch)"),
    "publish.depth": (True, "depth/image (32FC1 metres, NaN invalid) and depth/camera_info"),
    "publish.normals": (True, "normals/image (32FC3, optical frame) and normals/visualization (rgb8)"),
    "publish.points": (True, "points (PointCloud2, optical frame); needs camera_info"),
    "publish.segmentation": (True, "segmentation/labels, segmentation/visualization, segmentation/classes"),
    "publish.instances": (True, "instances/labels (mono16)"),
    "publish.generated": (False, "generated/<task>: the raw generated RGB images (processing size)"),
    "points.stride": (2, "use every n-th pixel in x and y for the cloud"),
    "points.max_range_m": (10.0, "drop cloud points farther than this [m]"),
    "points.normals": (False, "add normal_x/y/z fields to the cloud"),
    "camera_info.max_age_s": (0.5, "use the newest camera_info up to this much older than the image [s]"),
    "diagnostics_period_s": (1.0, "period of /diagnostics [s]"),
}


def _descriptor(text: str) -> Any:
    return ParameterDescriptor(description=text)


_FLIP = np.array([1.0, -1.0, -1.0], np.float32)  # paper camera frame <-> optical frame


def resize_rgb(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a uint8 RGB image: torch's channels-last uint8 kernel, the same pixels as PIL's bilinear
    in a tenth of the time (0.2 ms to 640x480 here); returns an ``HxWx3`` C-contiguous array."""
    import torch

    if rgb.shape[:2] == (height, width):
        return rgb
    x = torch.from_numpy(np.ascontiguousarray(rgb))[None].permute(0, 3, 1, 2)  # a channels-last view
    out = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class PerceptionNode(Node):
    """The perception node; ``pipeline`` (a :class:`~vb_perception.pipeline.Perception`) can be injected."""

    def __init__(self, node_name: str = "perception", pipeline: Any = None, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, _descriptor(text))
        p = self._param
        try:
            self.prompts = PromptSet.build(p("tasks"), self._seg(p("segmentation.prompts")), p("instances.class"))
        except VbPerceptionError as exc:
            raise VbPerceptionError(f"invalid prompt parameters: {exc}") from exc
        if pipeline is None:
            from vb_perception.pipeline import Perception

            pipeline = Perception(
                p("model_path") or None,
                device=p("device"),
                steps=p("steps") or None,
                backend=p("backend"),
                engine=p("engine") or None,
                normals_frame="optical",
                flip_average=p("flip_average"),
            )
        self.pipe = pipeline
        self.add_on_set_parameters_callback(self._on_parameters)
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        inputs = qos_profile_sensor_data if p("input_qos") == "sensor_data" else reliable
        if p("image_transport") == "compressed":
            self.create_subscription(CompressedImage, "image/compressed", self._on_compressed, inputs)
        else:
            self.create_subscription(Image, "image", self._on_image, inputs)
        self.create_subscription(CameraInfo, "camera_info", self._on_info, inputs)
        self.create_subscription(String, "prompt", self._on_prompt, reliable)
        pub = self.create_publisher
        self.pubs = {
            "depth": pub(Image, "depth/image", reliable),
            "depth_info": pub(CameraInfo, "depth/camera_info", reliable),
            "normals": pub(Image, "normals/image", reliable),
            "normals_vis": pub(Image, "normals/visualization", reliable),
            "points": pub(PointCloud2, "points", reliable),
            "labels": pub(Image, "segmentation/labels", reliable),
            "labels_vis": pub(Image, "segmentation/visualization", reliable),
            "instances": pub(Image, "instances/labels", reliable),
        }
        self.classes_pub = pub(String, "segmentation/classes", latched)
        self.diag_pub = pub(DiagnosticArray, "/diagnostics", reliable)
        self.generated_pubs: dict[str, Any] = {}
        self._publish_classes()
        self.infos: deque[Any] = deque(maxlen=16)
        self.slot = LatestSlot()
        self.stats = {"received": 0, "processed": 0, "failed": 0, "idle": 0}
        self.latency_ms: deque[float] = deque(maxlen=50)
        self.rates = {"in": deque(maxlen=50), "out": deque(maxlen=50)}
        self._bad_encodings: set[str] = set()
        self._stop = threading.Event()
        self.worker = threading.Thread(target=self._work, name="vb_perception_worker", daemon=True)
        self.worker.start()
        self.create_timer(float(p("diagnostics_period_s")), self._diagnostics)
        self.get_logger().info(
            f"vb_perception: {self.pipe.model_version} on {self.pipe.backend_name}, prompts {self.prompts.prompts}"
        )

    # ------------------------------------------------------------------ parameters and prompts

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    @staticmethod
    def _seg(values: Any) -> list[str]:
        return [v for v in (values or []) if v and v.strip()]

    def _on_parameters(self, params: list[Any]) -> Any:
        new = {p.name: p.value for p in params}
        fixed = {"image_transport", "input_qos", "model_path", "backend", "engine", "device", "steps"}
        if fixed & set(new):
            return SetParametersResult(successful=False, reason=f"{sorted(fixed & set(new))} are read at start")
        if {"tasks", "segmentation.prompts", "instances.class"} & set(new):
            tasks = new.get("tasks", self._param("tasks"))
            seg = self._seg(new.get("segmentation.prompts", self._param("segmentation.prompts")))
            inst = new.get("instances.class", self._param("instances.class"))
            try:
                prompts = PromptSet.build(tasks, seg, inst)
            except VbPerceptionError as exc:
                self.get_logger().error(f"prompt parameters rejected, keeping the old prompts: {exc}")
                return SetParametersResult(successful=False, reason=str(exc))
            self.prompts = prompts
            self._publish_classes()
        if "flip_average" in new:  # from the next frame on
            self.pipe.flip_average = bool(new["flip_average"])
        return SetParametersResult(successful=True)

    def _on_prompt(self, msg: Any) -> None:
        """``prompt`` topic: one prompt, or a JSON list of prompts, replacing ``segmentation.prompts``."""
        from rclpy.parameter import Parameter

        text = msg.data.strip()
        try:
            prompts = json.loads(text) if text.startswith("[") else [text]
        except json.JSONDecodeError as exc:
            self.get_logger().error(f"prompt topic: not a JSON list of prompts ({exc}); keeping the old prompts")
            return
        result = self.set_parameters([Parameter("segmentation.prompts", Parameter.Type.STRING_ARRAY, prompts)])
        if not result[0].successful:
            self.get_logger().error(f"prompt topic: {result[0].reason}")

    def _publish_classes(self) -> None:
        self.classes_pub.publish(String(data=self.prompts.classes_json()))

    # ------------------------------------------------------------------ inputs

    def _on_info(self, msg: Any) -> None:
        self.infos.append(msg)

    def _match_info(self, header: Any) -> Any | None:
        t = _stamp_ns(header)
        exact = [i for i in self.infos if _stamp_ns(i.header) == t]
        if exact:
            return exact[-1]
        if self.infos:
            newest = self.infos[-1]
            age_s = (t - _stamp_ns(newest.header)) / 1e9
            if abs(age_s) <= float(self._param("camera_info.max_age_s")):
                return newest
        return None

    def _accept(self, rgb: np.ndarray, header: Any) -> None:
        self.stats["received"] += 1
        self.rates["in"].append(time.monotonic())
        self.slot.put(Frame(rgb, header, self._match_info(header), time.monotonic_ns()))

    def _bad(self, topic: str, exc: Exception) -> None:
        self.stats["failed"] += 1
        key = f"{topic}:{exc}"
        if key not in self._bad_encodings:  # once per topic and problem
            self._bad_encodings.add(key)
            self.get_logger().error(f"{topic}: {exc}")

    def _on_image(self, msg: Any) -> None:
        try:
            rgb = image_to_rgb(msg)
        except EncodingError as exc:
            self._bad("image", exc)
            return
        self._accept(rgb, msg.header)

    def _on_compressed(self, msg: Any) -> None:
        try:
            rgb = compressed_to_rgb(msg)
        except EncodingError as exc:
            self._bad("image/compressed", exc)
            return
        self._accept(rgb, msg.header)

    # ------------------------------------------------------------------ the worker

    def _wanted(self, key: str, flag: str) -> bool:
        return bool(self._param(flag)) and self.pubs[key].get_subscription_count() > 0

    def _work(self) -> None:
        while not self._stop.is_set():
            frame = self.slot.take(0.2)
            if frame is None:
                continue
            try:
                self._process(frame)
            except Exception as exc:  # a frame may fail; the node goes on and says why
                self.stats["failed"] += 1
                self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}", throttle_duration_sec=5.0)

    def _process(self, frame: Frame) -> None:
        from vb_perception.pipeline import DepthResult, InstancesResult, NormalsResult, SegmentationResult

        prompts = self.prompts
        gen_flag = bool(self._param("publish.generated"))
        anyone = any(p.get_subscription_count() for p in self.pubs.values()) or gen_flag
        if not anyone:
            self.stats["idle"] += 1
            return
        t0 = time.perf_counter()
        fx_px = image_fx_px(frame.info, frame.rgb.shape[1])  # the metric scale cue of focal-conditioned models
        results = self.pipe(frame.rgb, prompts.prompts, fx_px=fx_px)
        header = frame.header
        depth = next((r for r in results if isinstance(r, DepthResult)), None)
        normals = next((r for r in results if isinstance(r, NormalsResult)), None)
        segs = [r for r in results if isinstance(r, SegmentationResult)]
        inst = next((r for r in results if isinstance(r, InstancesResult)), None)
        n_optical = None
        if normals is not None:
            n_optical = normals.normals if normals.frame == "optical" else normals.normals * _FLIP
        if depth is not None and self._wanted("depth", "publish.depth"):
            self.pubs["depth"].publish(numpy_to_image(depth.depth_m, header, Image))
        if depth is not None and frame.info is not None and self._param("publish.depth"):
            h, w = depth.depth_m.shape
            self.pubs["depth_info"].publish(scaled_camera_info(frame.info, h, w, CameraInfo))
        if n_optical is not None and self._wanted("normals", "publish.normals"):
            self.pubs["normals"].publish(numpy_to_image(n_optical.astype(np.float32), header, Image))
        if normals is not None and self._wanted("normals_vis", "publish.normals"):
            vis = resize_rgb(normals.generated, frame.rgb.shape[0], frame.rgb.shape[1])  # paper colours
            self.pubs["normals_vis"].publish(numpy_to_image(vis, header, Image))
        if depth is not None and self._wanted("points", "publish.points"):
            if frame.info is None:
                self.get_logger().warn(
                    "no camera_info for the image stamp: publishing depth, normals and masks but no cloud",
                    throttle_duration_sec=10.0,
                )
            else:
                c = cloud(
                    depth.depth_m,
                    camera_info_k(frame.info),
                    frame.rgb,
                    n_optical if self._param("points.normals") else None,
                    int(self._param("points.stride")),
                    float(self._param("points.max_range_m")),
                )
                self.pubs["points"].publish(packed_pointcloud2(c.data, c.fields, header, PointCloud2, PointField))
        if segs and self._param("publish.segmentation"):
            labels = merge_labels([s.labels for s in segs], [len(s.class_names) for s in segs])
            if self.pubs["labels"].get_subscription_count():
                self.pubs["labels"].publish(numpy_to_image(labels, header, Image))
            if self.pubs["labels_vis"].get_subscription_count():
                colors = np.concatenate([s.colors for s in segs]).astype(np.uint8)
                self.pubs["labels_vis"].publish(numpy_to_image(overlay(frame.rgb, labels, colors), header, Image))
        if inst is not None and self._wanted("instances", "publish.instances"):
            self.pubs["instances"].publish(numpy_to_image(inst.labels.astype(np.uint16), header, Image))
        if gen_flag:
            for i, r in enumerate(results):
                name = type(r).__name__.replace("Result", "").lower()
                topic = f"generated/{name}" if name in ("depth", "normals", "instances") else f"generated/{name}_{i}"
                if topic not in self.generated_pubs:
                    self.generated_pubs[topic] = self.create_publisher(
                        Image, topic, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
                    )
                self.generated_pubs[topic].publish(numpy_to_image(r.generated, header, Image))
        self.latency_ms.append((time.perf_counter() - t0) * 1000.0)
        self.stats["processed"] += 1
        self.rates["out"].append(time.monotonic())

    # ------------------------------------------------------------------ diagnostics and shutdown

    @staticmethod
    def _rate(times: deque[float]) -> float:
        if len(times) < 2 or times[-1] == times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def _diagnostics(self) -> None:
        lat = list(self.latency_ms)
        values = {
            "latency_ms": f"{lat[-1]:.1f}" if lat else "nan",
            "latency_mean_ms": f"{np.mean(lat):.1f}" if lat else "nan",
            "input_rate_hz": f"{self._rate(self.rates['in']):.2f}",
            "output_rate_hz": f"{self._rate(self.rates['out']):.2f}",
            "frames_received": str(self.stats["received"]),
            "frames_processed": str(self.stats["processed"]),
            "frames_dropped": str(self.slot.dropped),
            "frames_failed": str(self.stats["failed"]),
            "backend": self.pipe.backend_name,
            "model": self.pipe.model_version,
            "steps": str(self.pipe.steps),
            "prompts": json.dumps(self.prompts.prompts),
        }
        status = DiagnosticStatus(
            level=DiagnosticStatus.OK if not self.stats["failed"] else DiagnosticStatus.WARN,
            name=f"{self.get_name()}: vb_perception",
            message="ok" if not self.stats["failed"] else f"{self.stats['failed']} frame(s) failed",
            hardware_id=self.pipe.model_version,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)

    def destroy_node(self) -> None:
        self._stop.set()
        self.slot.close()
        self.worker.join(timeout=5.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """``ros2 run vb_perception perception_node``; Ctrl-C shuts down cleanly."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    from vb_perception.runtime.memory import keep_freed_memory

    keep_freed_memory()  # per-frame image buffers: reuse instead of page-faulting (see runtime/memory.py)
    rclpy.init(args=args)
    node = None
    try:
        node = PerceptionNode()
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except VbPerceptionError as exc:
        import sys

        print(f"perception_node: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
