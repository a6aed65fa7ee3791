"""Writing rosbag2 bags (MCAP or sqlite3) with ``rosbags``: the replay output and the sample bags of tests / demo.

Messages are built with :func:`msg_types` (the ROS 2 Jazzy message classes of ``rosbags``), which the conversion
functions in :mod:`vb_perception.ros.conversions` accept like rclpy's.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vb_perception.errors import VbPerceptionError

__all__ = ["BagWriter", "header", "msg_types"]


@lru_cache(maxsize=1)
def _typestore() -> Any:  # building one takes ~7 ms: once per process, not per message
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def msg_types() -> SimpleNamespace:
    """``Image``, ``CompressedImage``, ``CameraInfo``, ``PointCloud2``, ``PointField``, ``Header``, ``Time``,
    ``RegionOfInterest``, ``String`` as rosbags dataclasses."""
    t = _typestore().types
    return SimpleNamespace(
        Image=t["sensor_msgs/msg/Image"],
        CompressedImage=t["sensor_msgs/msg/CompressedImage"],
        CameraInfo=t["sensor_msgs/msg/CameraInfo"],
        PointCloud2=t["sensor_msgs/msg/PointCloud2"],
        PointField=t["sensor_msgs/msg/PointField"],
        Header=t["std_msgs/msg/Header"],
        Time=t["builtin_interfaces/msg/Time"],
        RegionOfInterest=t["sensor_msgs/msg/RegionOfInterest"],
        String=t["std_msgs/msg/String"],
    )


def header(stamp_ns: int, frame_id: str) -> Any:
    m = msg_types()
    return m.Header(stamp=m.Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


class BagWriter:
    """``with BagWriter(path, "mcap") as w: w.write("/cam/image", msg, stamp_ns)``; topics are added on first use."""

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise VbPerceptionError(f"storage must be mcap or sqlite3, not {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise VbPerceptionError(f"{self.path} exists; rosbag2 writes a new folder (remove it or pick another)")
        self.typestore = _typestore()
        self.writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        self.writer.open()
        self.connections: dict[str, Any] = {}

    def write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        msgtype = msg.__msgtype__
        conn = self.connections.get(topic)
        if conn is None:
            conn = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
            self.connections[topic] = conn
        self.writer.write(conn, int(stamp_ns), self.typestore.serialize_cdr(msg, msgtype))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
