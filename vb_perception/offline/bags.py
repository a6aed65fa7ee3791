"""Reading camera frames from recorded bags (rosbag2 sqlite3 / MCAP, ROS 1) through ``rosbags``, without ROS.

:func:`find_cameras` pairs every camera image topic (raw or compressed) with its ``camera_info`` and, where the bag
has one, a depth ground-truth image topic; :func:`iter_frames` yields decoded frames in recording order with the
newest camera_info and the ground-truth depth of the same stamp. A truncated or corrupt bag ends the iteration
with a :class:`BagError` that says where; the frames before it were yielded.
"""

from __future__ import annotations

import logging
import posixpath
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import VbPerceptionError

log = logging.getLogger("vb_perception.bags")

__all__ = ["BagError", "Camera", "FrameRecord", "depth_from_msg", "find_cameras", "iter_frames", "open_bags"]

IMAGE, COMPRESSED, INFO = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo"
_SYNC_S = 0.05  # a ground-truth depth belongs to the image within this many seconds of its stamp
_LOOKAHEAD = 30  # images waiting for their ground truth (bounded)


class BagError(VbPerceptionError):
    """A bag that cannot be opened or read to its end."""


@dataclass(frozen=True)
class Camera:
    name: str  # the camera's namespace, e.g. /cam/color
    image_topic: str
    compressed: bool
    info_topic: str | None
    depth_gt_topic: str | None


@dataclass
class FrameRecord:
    camera: Camera
    index: int  # per camera, from 0
    stamp_ns: int
    header: Any
    rgb: NDArray[np.uint8] | None
    info: Any | None
    depth_gt_m: NDArray[np.float32] | None
    error: str | None = None  # why this frame could not be decoded (listed in the report, never dropped)


@contextmanager
def open_bags(paths: Sequence[str | Path]) -> Iterator[Any]:
    """``with open_bags(paths) as reader``: a ``rosbags`` AnyReader over ``paths`` (rosbag2 folders, .mcap / .db3,
    ROS 1 .bag), closed at the end."""
    from rosbags.highlevel import AnyReader

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise BagError(f"no such bag: {', '.join(missing)}")
    reader: Any = None
    try:
        reader = AnyReader([Path(p) for p in paths])
        reader.open()
    except Exception as exc:  # rosbags raises several reader errors for broken files
        mcaps = [m for p in paths for m in ([Path(p)] if Path(p).is_file() else sorted(Path(p).glob("*.mcap")))]
        if len(paths) != 1 or len(mcaps) != 1 or mcaps[0].suffix != ".mcap":
            raise BagError(f"{', '.join(map(str, paths))}: not a readable rosbag ({exc})") from exc
        reader = _McapStream(mcaps[0])  # a recording cut off before its summary: read the complete chunks
        if not reader.connections:
            raise BagError(f"{paths[0]}: not a readable rosbag ({exc}) and no complete MCAP chunk in it") from exc
        log.warning("%s has no MCAP summary (cut off?): reading its complete chunks (%s)", mcaps[0], exc)
    try:
        yield reader
    finally:
        reader.close()


class _McapStream:
    """The complete chunks of an MCAP file without a summary (a truncated recording), with the part of the
    AnyReader interface :func:`iter_frames` uses; messages are decoded with the ROS 2 Jazzy message types."""

    def __init__(self, path: Path) -> None:
        from types import SimpleNamespace

        from mcap.records import Channel, Message, Schema
        from rosbags.typesys import Stores, get_typestore

        self.path = path
        self.typestore = get_typestore(Stores.ROS2_JAZZY)
        schemas: dict[int, str] = {}
        channels: dict[int, Any] = {}
        for rec in self._records():
            if isinstance(rec, Schema):
                schemas[rec.id] = rec.name
            elif isinstance(rec, Channel):
                channels[rec.id] = SimpleNamespace(
                    id=rec.id, topic=rec.topic, msgtype=schemas.get(rec.schema_id, "?"), msgcount=0
                )
            elif isinstance(rec, Message) and rec.channel_id in channels:
                channels[rec.channel_id].msgcount += 1
        self.connections = [c for c in channels.values() if c.msgtype in self.typestore.types]

    def _records(self, strict: bool = False) -> Iterator[Any]:
        from mcap.stream_reader import StreamReader

        with self.path.open("rb") as f:
            try:
                yield from StreamReader(f).records
            except Exception:  # the cut: stop at the last complete record
                if strict:
                    raise

    def messages(self, connections: Sequence[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
        from mcap.records import Message

        wanted = {c.id: c for c in connections} if connections else {c.id: c for c in self.connections}
        for rec in self._records(strict=True):
            if isinstance(rec, Message) and rec.channel_id in wanted:
                yield wanted[rec.channel_id], rec.log_time, rec.data

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        pass


def _namespace(topic: str) -> str:
    base = topic[: -len("/compressed")] if topic.endswith("/compressed") else topic
    return posixpath.dirname(base) or "/"


def _common(a: str, b: str) -> int:
    pa, pb = a.strip("/").split("/"), b.strip("/").split("/")
    n = 0
    for x, y in zip(pa, pb):
        if x != y:
            break
        n += 1
    return n


def find_cameras(
    topics: dict[str, str],
    image_topic: str | None = None,
    info_topic: str | None = None,
    depth_gt_topic: str | None = None,
) -> list[Camera]:
    """Cameras in a bag from ``topics`` (topic -> message type). Explicit topics override the search; a raw image
    and its ``/compressed`` twin count once (raw); topics with "depth" in the name are ground truth, not cameras."""
    for t in (image_topic, info_topic, depth_gt_topic):
        if t is not None and t not in topics:
            raise BagError(f"topic {t} is not in the bag; it has {sorted(topics)}")
    if image_topic:
        images = [image_topic]
    else:
        images = [t for t, ty in topics.items() if ty in (IMAGE, COMPRESSED) and "depth" not in t.lower()]
        raw = {t for t in images if topics[t] == IMAGE}
        images = [t for t in images if not (t.endswith("/compressed") and t[: -len("/compressed")] in raw)]
    if not images:
        raise BagError(f"no camera image topic (sensor_msgs/Image or CompressedImage) in the bag: {sorted(topics)}")
    depth_topics = (
        [depth_gt_topic] if depth_gt_topic else [t for t, ty in topics.items() if ty == IMAGE and "depth" in t.lower()]
    )
    infos = [t for t, ty in topics.items() if ty == INFO]
    cameras = []
    for img in sorted(images):
        ns = _namespace(img)
        info = info_topic or (f"{ns}/camera_info" if f"{ns}/camera_info" in infos else None)
        if info is None:
            near = sorted((i for i in infos if "depth" not in i.lower()), key=lambda i: -_common(i, ns))
            info = near[0] if near and _common(near[0], ns) > 0 else None
        depth = max(depth_topics, key=lambda d: _common(d, ns), default=None)
        if depth is not None and len(images) > 1 and _common(depth, ns) == 0 and not depth_gt_topic:
            depth = None
        cameras.append(Camera(ns, img, topics[img] == COMPRESSED, info, depth))
    return cameras


def depth_from_msg(msg: Any) -> NDArray[np.float32]:
    """Ground-truth depth in metres: 16UC1 / mono16 millimetres or 32FC1 metres; 0 and NaN become NaN (invalid)."""
    enc = str(msg.encoding).upper()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(np.asarray(msg.data, np.uint8).tobytes(), np.uint8)
    big = bool(getattr(msg, "is_bigendian", 0))
    if enc in ("16UC1", "MONO16"):
        px = buf.reshape(h, step)[:, : 2 * w].copy().view(">u2" if big else "<u2")
        depth = px.astype(np.float32) / 1000.0
    elif enc == "32FC1":
        depth = buf.reshape(h, step)[:, : 4 * w].copy().view(">f4" if big else "<f4").astype(np.float32)
    else:
        raise VbPerceptionError(f"ground-truth depth must be 16UC1 (mm) or 32FC1 (m), not {msg.encoding}")
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def _stamp(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def iter_frames(reader: Any, cameras: Sequence[Camera]) -> Iterator[FrameRecord]:
    """Frames of ``cameras`` in recording order (a frame waits at most a few frames for its ground truth)."""
    from vb_perception.ros.conversions import EncodingError, compressed_to_rgb, image_to_rgb

    by_topic: dict[str, list[tuple[str, Camera]]] = {}
    for cam in cameras:
        by_topic.setdefault(cam.image_topic, []).append(("image", cam))
        if cam.info_topic:
            by_topic.setdefault(cam.info_topic, []).append(("info", cam))
        if cam.depth_gt_topic:
            by_topic.setdefault(cam.depth_gt_topic, []).append(("depth", cam))
    conns = [c for c in reader.connections if c.topic in by_topic]
    infos: dict[str, Any] = {}
    gts: dict[str, deque[tuple[int, Any]]] = {c.name: deque(maxlen=_LOOKAHEAD) for c in cameras}
    pending: deque[FrameRecord] = deque()
    counters: dict[str, int] = {c.name: 0 for c in cameras}

    ready: set[int] = set()  # ids of pending records that have their ground truth (or need none)

    def match(rec: FrameRecord) -> bool:
        if id(rec) in ready:
            return True
        for t, gt in gts[rec.camera.name]:
            if abs(t - rec.stamp_ns) <= _SYNC_S * 1e9:
                try:
                    rec.depth_gt_m = depth_from_msg(gt)
                except VbPerceptionError as exc:
                    rec.error = f"ground truth: {exc}"
                ready.add(id(rec))
                return True
        return False

    def flush() -> Iterator[FrameRecord]:
        while pending and (match(pending[0]) or len(pending) > _LOOKAHEAD):
            rec = pending.popleft()
            ready.discard(id(rec))
            yield rec

    n = 0
    try:
        for conn, _t, raw in reader.messages(connections=conns):
            n += 1
            msg = reader.deserialize(raw, conn.msgtype)
            for role, cam in by_topic[conn.topic]:
                if role == "info":
                    infos[cam.name] = msg
                    near = [r for r in pending if r.camera.name == cam.name and r.info is None]
                    for rec in near:  # a frame recorded just before its camera_info
                        if abs(_stamp(msg) - rec.stamp_ns) <= _SYNC_S * 1e9:
                            rec.info = msg
                elif role == "depth":
                    gts[cam.name].append((_stamp(msg), msg))
                    for rec in list(pending):  # later records may match too; order is kept by flush
                        if rec.camera.name == cam.name:
                            match(rec)
                    yield from flush()
                else:
                    rec = FrameRecord(cam, counters[cam.name], _stamp(msg), msg.header, None, infos.get(cam.name), None)
                    counters[cam.name] += 1
                    try:
                        rec.rgb = compressed_to_rgb(msg) if cam.compressed else image_to_rgb(msg)
                    except EncodingError as exc:
                        rec.error = str(exc)
                    if cam.depth_gt_topic is None:
                        ready.add(id(rec))
                    pending.append(rec)
                    yield from flush()
    except VbPerceptionError:
        raise
    except Exception as exc:  # a truncated / corrupt bag: what was read stays valid
        yield from pending
        raise BagError(f"the bag ends early or is corrupt after {n} messages: {type(exc).__name__}: {exc}") from exc
    for rec in pending:
        match(rec)
        yield rec
