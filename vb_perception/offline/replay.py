"""``vb-perception replay BAG...``: run the pipeline on the camera frames of recorded bags, write a rosbag2 MCAP with
the inputs and every output on the node's topic names, and score depth against a ground-truth topic.

Nothing is lost: every input frame either gets its outputs or is listed in ``report.json`` under ``failed`` with the
reason. A truncated or corrupt bag stops the run with a clear error, and the MCAP written so far is closed and valid.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.errors import VbPerceptionError

__all__ = ["ReplayResult", "replay"]

log = logging.getLogger("vb_perception.replay")


@dataclass
class ReplayResult:
    out_dir: Path
    bag: Path
    frames: list[dict[str, Any]] = field(default_factory=list)  # per frame: camera, index, stamp, latency, metrics
    failed: list[dict[str, Any]] = field(default_factory=list)  # per failed frame: camera, index, stamp, reason
    overall: dict[str, dict[str, float]] = field(default_factory=dict)  # per camera: mean metrics over frames
    fps: float = 0.0
    error: str | None = None  # why the run stopped early (truncated bag), if it did


def _resize_to(depth_m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample of a prediction to the ground truth's grid (no blending across edges)."""
    if depth_m.shape == shape:
        return depth_m
    ys = (np.arange(shape[0]) + 0.5) * depth_m.shape[0] / shape[0]
    xs = (np.arange(shape[1]) + 0.5) * depth_m.shape[1] / shape[1]
    return depth_m[ys.astype(int).clip(0, depth_m.shape[0] - 1)][:, xs.astype(int).clip(0, depth_m.shape[1] - 1)]


def replay(
    bags: Sequence[str | Path],
    out: str | Path,
    prompts: Sequence[str] = (),
    instances_class: str = "",
    image_topic: str | None = None,
    info_topic: str | None = None,
    depth_gt_topic: str | None = None,
    model_dir: str | Path | None = None,
    backend: str = "torch",
    engine: str | Path | None = None,
    steps: int | None = None,
    progress: bool = True,
    flip_average: bool = False,
) -> ReplayResult:
    """Replay ``bags`` into ``out/replay`` (MCAP) and ``out/report.json``; returns the result. ``flip_average`` as in
    :class:`~vb_perception.pipeline.Perception` (the node's ``flip_average`` parameter)."""
    from tqdm import tqdm

    from vb_perception.offline.bags import BagError, find_cameras, iter_frames, open_bags
    from vb_perception.offline.bagwrite import BagWriter, msg_types
    from vb_perception.offline.metrics import DepthByRange, depth_metrics
    from vb_perception.pipeline import DepthResult, InstancesResult, NormalsResult, Perception, SegmentationResult
    from vb_perception.ros.conversions import (
        camera_info_k,
        image_fx_px,
        numpy_to_image,
        packed_pointcloud2,
        scaled_camera_info,
    )
    from vb_perception.ros.frames import PromptSet, cloud, merge_labels, overlay
    from vb_perception.ros.node import resize_rgb
    from vb_perception.runtime.memory import keep_freed_memory

    keep_freed_memory()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    seg = [p for p in prompts if p.strip()]
    prompt_set = PromptSet.build(["depth", "normals"], seg, instances_class)  # every prompt checked before compute
    pipe = Perception(
        model_dir, backend=backend, engine=engine, steps=steps, normals_frame="optical", flip_average=flip_average
    )
    m = msg_types()
    result = ReplayResult(out_dir, out_dir / "replay")
    per_camera: dict[str, list[dict[str, float]]] = {}
    by_range: dict[str, DepthByRange] = {}
    samples: list[dict[str, Any]] = []  # a few frames kept for the report's panels (bounded)
    t_start = time.perf_counter()
    with open_bags(bags) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        cameras = find_cameras(topics, image_topic, info_topic, depth_gt_topic)
        used = {t for c in cameras for t in (c.image_topic, c.info_topic, c.depth_gt_topic) if t}
        skipped = {t: ty for t, ty in sorted(topics.items()) if t not in used}
        for ty in sorted(set(skipped.values())):  # one warning per message type
            names = [t for t, x in skipped.items() if x == ty]
            log.warning("skipping %d topic(s) of type %s: %s", len(names), ty, ", ".join(names))
        total = sum(c.msgcount for c in reader.connections if c.topic in {cam.image_topic for cam in cameras})
        with BagWriter(result.bag, "mcap") as writer:
            bar = tqdm(total=total, desc="replay", unit="frame", disable=not progress)
            try:
                for frame in iter_frames(reader, cameras):
                    bar.update()
                    cam, ns = frame.camera, frame.camera.name.rstrip("/")
                    row = {"camera": cam.name, "index": frame.index, "stamp_ns": frame.stamp_ns}
                    if frame.error or frame.rgb is None:
                        result.failed.append(row | {"reason": frame.error or "no image"})
                        continue
                    hdr = frame.header
                    writer.write(f"{ns}/image", numpy_to_image(frame.rgb, hdr, m.Image), frame.stamp_ns)
                    if frame.info is not None:
                        writer.write(
                            f"{ns}/camera_info",
                            scaled_camera_info(frame.info, frame.info.height, frame.info.width, m.CameraInfo),
                            frame.stamp_ns,
                        )
                    t0 = time.perf_counter()
                    try:
                        fx_px = image_fx_px(frame.info, frame.rgb.shape[1])
                        results = pipe(frame.rgb, prompt_set.prompts, seed=frame.index, fx_px=fx_px)
                    except VbPerceptionError as exc:
                        result.failed.append(row | {"reason": str(exc)})
                        continue
                    row["latency_ms"] = (time.perf_counter() - t0) * 1000.0
                    depth = next(r for r in results if isinstance(r, DepthResult))
                    normals = next(r for r in results if isinstance(r, NormalsResult))
                    segs = [r for r in results if isinstance(r, SegmentationResult)]
                    inst = next((r for r in results if isinstance(r, InstancesResult)), None)
                    stamp = frame.stamp_ns
                    writer.write(f"{ns}/depth/image", numpy_to_image(depth.depth_m, hdr, m.Image), stamp)
                    writer.write(f"{ns}/normals/image", numpy_to_image(normals.normals, hdr, m.Image), stamp)
                    vis = resize_rgb(normals.generated, frame.rgb.shape[0], frame.rgb.shape[1])
                    writer.write(f"{ns}/normals/visualization", numpy_to_image(vis, hdr, m.Image), stamp)
                    if frame.info is not None:
                        h, w = depth.depth_m.shape
                        depth_info = scaled_camera_info(frame.info, h, w, m.CameraInfo)
                        writer.write(f"{ns}/depth/camera_info", depth_info, stamp)
                        c = cloud(depth.depth_m, camera_info_k(depth_info), frame.rgb, None, 2, 20.0)
                        cloud_msg = packed_pointcloud2(c.data, c.fields, hdr, m.PointCloud2, m.PointField)
                        writer.write(f"{ns}/points", cloud_msg, stamp)
                    if segs:
                        labels = merge_labels([s.labels for s in segs], [len(s.class_names) for s in segs])
                        colors = np.concatenate([s.colors for s in segs]).astype(np.uint8)
                        writer.write(f"{ns}/segmentation/labels", numpy_to_image(labels, hdr, m.Image), stamp)
                        writer.write(
                            f"{ns}/segmentation/visualization",
                            numpy_to_image(overlay(frame.rgb, labels, colors), hdr, m.Image),
                            stamp,
                        )
                    if inst is not None:
                        ids = inst.labels.astype(np.uint16)
                        writer.write(f"{ns}/instances/labels", numpy_to_image(ids, hdr, m.Image), stamp)
                    error_map = None
                    if frame.depth_gt_m is not None:
                        pred = _resize_to(depth.depth_m, frame.depth_gt_m.shape)
                        metrics = depth_metrics(pred, frame.depth_gt_m)
                        row["metrics"] = metrics
                        per_camera.setdefault(cam.name, []).append(metrics)
                        by_range.setdefault(cam.name, DepthByRange()).add(pred, frame.depth_gt_m)
                        error_map = np.abs(pred - frame.depth_gt_m) / frame.depth_gt_m
                    result.frames.append(row)
                    if frame.index in (0, 5, 20) and len(samples) < 6:
                        samples.append(
                            {
                                "camera": cam.name,
                                "index": frame.index,
                                "rgb": frame.rgb.copy(),
                                "depth_m": depth.depth_m,
                                "normals_rgb": vis,
                                "segmentation": overlay(frame.rgb, labels, colors) if segs else None,
                                "error": error_map,
                            }
                        )
            except BagError as exc:
                result.error = str(exc)
            finally:
                bar.close()
            writer.write("/vb_perception/segmentation/classes", m.String(data=prompt_set.classes_json()), 0)
    elapsed = time.perf_counter() - t_start
    result.fps = len(result.frames) / elapsed if elapsed > 0 else 0.0
    for name, rows in per_camera.items():
        keys = [k for k in rows[0] if k != "pixels"]
        result.overall[name] = {k: float(np.nanmean([r[k] for r in rows])) for k in keys} | {"frames": len(rows)}
    report = {
        "bags": [str(b) for b in bags],
        "output_bag": str(result.bag),
        "model": pipe.model_version,
        "backend": pipe.backend_name,
        "steps": pipe.steps,
        "prompts": prompt_set.prompts,
        "cameras": [vars(c) for c in cameras],
        "skipped_topics": skipped,
        "frames_ok": len(result.frames),
        "frames_failed": len(result.failed),
        "fps": result.fps,
        "error": result.error,
        "overall": result.overall,
        "depth_by_range": {name: b.rows() for name, b in by_range.items()},
        "failed": result.failed,
        "frames": result.frames,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    from vb_perception.offline.report import write_report

    write_report(out_dir, report, result, samples)
    if result.error:
        raise BagError(f"{result.error}; {len(result.frames)} frames replayed into {result.bag} (valid) first")
    return result
