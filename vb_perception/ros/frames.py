"""What the node computes between messages, free of rclpy: the prompt set from parameters, the latest-frame slot,
and the numpy outputs of one frame (merged label images, overlays, cloud points)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vb_perception.errors import PromptError, VbPerceptionError
from vb_perception.prompts import ReferringSpec, SemanticSpec, TaskSpec, parse_prompt

__all__ = ["TASKS", "Frame", "LatestSlot", "PromptSet", "cloud_points", "overlay"]

#: built-in tasks and the prompt each one runs.
TASKS = {"depth": "Generate a metric depth map of this image.", "normals": "Estimate the surface normals."}


@dataclass(frozen=True)
class PromptSet:
    """Every prompt a frame runs, in one batch: the built-in tasks, the segmentation prompts, the instance class.

    ``segmentation/labels`` numbers the (prompt, class) pairs of the segmentation prompts from 1 in order:
    "Segment the chair in red" is one id, "Segment the cup in red and the plate in blue" two."""

    tasks: tuple[str, ...] = ("depth", "normals")
    segmentation: tuple[str, ...] = ()
    instance_class: str = ""
    specs: tuple[TaskSpec, ...] = field(default=(), compare=False)

    @classmethod
    def build(cls, tasks: Sequence[str], segmentation: Sequence[str], instance_class: str) -> PromptSet:
        """Validate everything (raises :class:`PromptError` / :class:`VbPerceptionError` with the parser's message)."""
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise VbPerceptionError(f"unknown tasks {unknown}; use any of {sorted(TASKS)}")
        specs: list[TaskSpec] = [parse_prompt(TASKS[t]) for t in tasks]
        for text in segmentation:
            spec = parse_prompt(text, kind="auto")
            if not isinstance(spec, (SemanticSpec, ReferringSpec)):
                raise PromptError(f"segmentation prompt {text!r} asks for {spec.task}, not a segmentation")
            specs.append(spec)
        if instance_class.strip():
            specs.append(parse_prompt(cls.instance_prompt(instance_class)))
        return cls(tuple(tasks), tuple(segmentation), instance_class.strip(), tuple(specs))

    @staticmethod
    def instance_prompt(class_name: str) -> str:
        return f"Each {class_name.strip()} is colored differently."

    @property
    def prompts(self) -> list[str]:
        out = [TASKS[t] for t in self.tasks] + list(self.segmentation)
        return out + ([self.instance_prompt(self.instance_class)] if self.instance_class else [])

    def classes(self) -> list[dict[str, Any]]:
        """``segmentation/labels`` ids: ``[{"id": 1, "prompt": ..., "class": ..., "rgb": [...]}, ...]``."""
        rows, next_id = [], 1
        for text, spec in zip(self.segmentation, self.specs[len(self.tasks) :]):
            assert isinstance(spec, (SemanticSpec, ReferringSpec))
            for name, rgb in spec.palette.items():
                rows.append({"id": next_id, "prompt": text, "class": name, "rgb": list(rgb)})
                next_id += 1
        return rows

    def classes_json(self) -> str:
        return json.dumps({"classes": self.classes(), "background": 0})


def merge_labels(per_prompt: Sequence[NDArray[np.int32]], counts: Sequence[int]) -> NDArray[np.uint16]:
    """One label image from the segmentation prompts' labels: prompt j's class k gets id ``offset_j + k``; later
    prompts win where masks overlap."""
    if len(per_prompt) == 1:
        return per_prompt[0].astype(np.uint16)
    out = np.zeros(per_prompt[0].shape, np.uint16)
    offset = 0
    for labels, n in zip(per_prompt, counts):
        hit = labels > 0
        out[hit] = (labels[hit] + offset).astype(np.uint16)
        offset += n
    return out


def overlay(image: NDArray[np.uint8], labels: NDArray[np.integer], colors: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Image with each labelled pixel blended 55 % with its class colour (``colors[i - 1]`` for id i)."""
    from PIL import Image

    k = len(colors)
    if k >= 255 or image.ndim != 3:
        raise ValueError(f"overlay takes an HxWx3 image and at most 254 colours, got {image.shape} and {k}")
    ids = np.where((labels > 0) & (labels <= k), labels, 0).astype(np.uint8)
    palette = np.zeros((256, 3), np.uint8)
    palette[1 : k + 1] = colors
    coloured = Image.fromarray(ids, "P")
    coloured.putpalette(palette.ravel().tolist())
    base = Image.fromarray(np.ascontiguousarray(image))
    blended = Image.blend(base, coloured.convert("RGB"), 0.55)  # C loops: ~1 ms at 640x480
    mask = Image.fromarray((ids > 0).view(np.uint8) * np.uint8(255), "L")
    return np.asarray(Image.composite(blended, base, mask))


def cloud_points(
    depth_m: NDArray[np.float32],
    k: NDArray[np.float64],
    rgb: NDArray[np.uint8],
    normals_optical: NDArray[np.float32] | None,
    stride: int,
    max_range_m: float,
) -> tuple[NDArray[np.float32], NDArray[np.uint8], NDArray[np.float32] | None]:
    """Back-projected points (optical frame) of every ``stride``-th pixel with finite depth within ``max_range_m``."""
    # Back-projects only the kept pixels: 3.7 ms here against 5.5 ms for geometry.backproject over the strided grid
    # followed by a mask (the node's hot path; same points, tested against backproject).
    s = max(1, int(stride))
    z = depth_m[::s, ::s]
    vv, uu = np.arange(0, depth_m.shape[0], s, dtype=np.float32), np.arange(0, depth_m.shape[1], s, dtype=np.float32)
    keep2d = np.isfinite(z) & (z > 0) & (z <= max_range_m)
    if normals_optical is not None:
        keep2d &= np.isfinite(normals_optical[::s, ::s]).all(-1)
    rows, cols = np.nonzero(keep2d)
    zk = z[rows, cols].astype(np.float32)
    x = (uu[cols] - np.float32(k[0, 2])) / np.float32(k[0, 0]) * zk
    y = (vv[rows] - np.float32(k[1, 2])) / np.float32(k[1, 1]) * zk
    pts = np.stack([x, y, zk], axis=1)
    col = rgb[::s, ::s][rows, cols]
    nrm = normals_optical[::s, ::s][rows, cols] if normals_optical is not None else None
    return pts, col, nrm


@dataclass
class Frame:
    rgb: NDArray[np.uint8]
    header: Any
    info: Any | None
    received_ns: int


class LatestSlot:
    """Holds only the newest frame: ``put`` replaces an unconsumed frame (counted as dropped), ``take`` waits."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self.dropped = 0
        self.closed = False

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify()

    def take(self, timeout_s: float) -> Frame | None:
        with self._cond:
            if self._frame is None and not self.closed:
                self._cond.wait(timeout_s)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
