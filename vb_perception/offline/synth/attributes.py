"""What is visible of each instance, and referring expressions that pick it out uniquely.

Expressions are written without a leading article ("red chair", "second chair from the left", "nearest car"), the
way :class:`~vb_perception.prompts.ReferringSpec` stores them; prompts add "the".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

from vb_perception.offline.synth.generate import BASIC_COLORS
from vb_perception.offline.synth.scene import Instance

__all__ = ["EXPRESSION_KINDS", "MIN_REFERRING_AREA_FRACTION", "InstanceInfo", "describe_instances", "expression_kind"]

#: Objects smaller than this fraction of the image get no referring expression (too small to point at).
MIN_REFERRING_AREA_FRACTION = 0.002
_ORDINALS = ("first", "second", "third", "fourth", "fifth")
#: What a referring expression of :func:`_expressions` relies on, for the evaluation's breakdown.
EXPRESSION_KINDS = ("class", "colour", "left / right", "ordinal", "nearest / farthest", "biggest")


def expression_kind(expression: str) -> str:
    """Which of :data:`EXPRESSION_KINDS` an expression written by :func:`_expressions` is ("second chair from the
    left": "ordinal"); "other" for text it does not write."""
    words = expression.split()
    if not words:
        return "other"
    if words[0] in _ORDINALS[1:] and expression.endswith(" from the left"):
        return "ordinal"
    if words[0] in ("leftmost", "rightmost") or expression.endswith((" on the left", " on the right")):
        return "left / right"
    if words[0] in ("nearest", "farthest"):
        return "nearest / farthest"
    if words[0] == "biggest":
        return "biggest"
    # "orange" alone is the tabletop class; "orange cup" and "orange orange" name a colour
    return "colour" if len(words) >= 2 and words[0] in BASIC_COLORS else "class"


@dataclass(frozen=True)
class InstanceInfo:
    """One visible instance. Image positions are fractions of width/height (0 = left/top)."""

    id: int
    class_name: str
    color_name: str
    size_m: float
    is_object: bool
    area_px: int
    centroid_x: float
    centroid_y: float
    median_depth_m: float
    position: str  # "left", "middle" or "right" of the image
    expressions: tuple[str, ...]  # unique referring expressions (empty when none is unique or it is too small)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "class": self.class_name,
            "color": self.color_name,
            "size_m": round(self.size_m, 3),
            "is_object": self.is_object,
            "area_px": self.area_px,
            "centroid_xy": [round(self.centroid_x, 4), round(self.centroid_y, 4)],
            "median_depth_m": round(self.median_depth_m, 3) if np.isfinite(self.median_depth_m) else None,
            "position": self.position,
            "expressions": list(self.expressions),
        }


def _expressions(group: list[dict[str, object]]) -> dict[int, list[str]]:
    """Referring expressions for each member of one class group that no other member also matches."""
    out: dict[int, list[str]] = defaultdict(list)
    cls = str(group[0]["class"])
    if len(group) == 1:
        g = group[0]
        out[int(g["id"])] += [cls, f"{g['color']} {cls}"]  # type: ignore[call-overload]
        return out
    colors = [g["color"] for g in group]
    for g in group:
        if colors.count(g["color"]) == 1:
            out[int(g["id"])].append(f"{g['color']} {cls}")  # type: ignore[call-overload]
    by_x = sorted(group, key=lambda g: float(g["cx"]))  # type: ignore[arg-type]
    xs = [float(g["cx"]) for g in by_x]  # type: ignore[arg-type]
    separated = all(b - a >= 0.04 for a, b in pairwise(xs))
    if separated:
        out[int(by_x[0]["id"])] += [f"leftmost {cls}", f"{cls} on the left"]  # type: ignore[call-overload]
        out[int(by_x[-1]["id"])] += [f"rightmost {cls}", f"{cls} on the right"]  # type: ignore[call-overload]
        for i, g in enumerate(by_x[: len(_ORDINALS)]):
            if i > 0:
                out[int(g["id"])].append(f"{_ORDINALS[i]} {cls} from the left")  # type: ignore[call-overload]
    by_d = sorted(group, key=lambda g: float(g["depth"]))  # type: ignore[arg-type]
    d0, d1, dl, dp = (float(by_d[i]["depth"]) for i in (0, 1, -1, -2))  # type: ignore[arg-type]
    if np.isfinite(d1) and d1 > 1.15 * d0:
        out[int(by_d[0]["id"])].append(f"nearest {cls}")  # type: ignore[call-overload]
    if np.isfinite(dl) and dl > 1.15 * dp:
        out[int(by_d[-1]["id"])].append(f"farthest {cls}")  # type: ignore[call-overload]
    by_s = sorted(group, key=lambda g: float(g["size"]))  # type: ignore[arg-type]
    if float(by_s[-1]["size"]) > 1.3 * float(by_s[-2]["size"]):  # type: ignore[arg-type]
        out[int(by_s[-1]["id"])].append(f"biggest {cls}")  # type: ignore[call-overload]
    return out


def describe_instances(
    instances: tuple[Instance, ...], ids: NDArray[np.int32], depth_m: NDArray[np.float32]
) -> tuple[InstanceInfo, ...]:
    """Visible-pixel statistics and unique referring expressions for every instance that shows up in ``ids``."""
    h, w = ids.shape
    flat = ids.ravel()
    n = max([i.id for i in instances] + [int(flat.max(initial=0))]) + 1
    area = np.bincount(flat, minlength=n)
    ys, xs = np.divmod(np.arange(flat.size), w)
    cx = np.bincount(flat, weights=xs, minlength=n) / np.maximum(area, 1) / max(w - 1, 1)
    cy = np.bincount(flat, weights=ys, minlength=n) / np.maximum(area, 1) / max(h - 1, 1)
    order = np.argsort(flat, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(area)])
    d_sorted = depth_m.ravel()[order]
    visible = [i for i in instances if area[i.id] > 0]
    median = {i.id: float(np.nanmedian(d_sorted[bounds[i.id] : bounds[i.id + 1]])) for i in visible}

    groups: dict[str, list[dict[str, object]]] = defaultdict(list)
    for i in visible:
        if i.is_object and area[i.id] >= MIN_REFERRING_AREA_FRACTION * h * w:
            groups[i.class_name].append(
                {
                    "id": i.id,
                    "class": i.class_name,
                    "color": i.color_name,
                    "cx": cx[i.id],
                    "depth": median[i.id],
                    "size": i.size_m,
                }
            )
    expressions: dict[int, list[str]] = defaultdict(list)
    for group in groups.values():
        for iid, exprs in _expressions(group).items():
            expressions[iid] += exprs
    return tuple(
        InstanceInfo(
            id=i.id,
            class_name=i.class_name,
            color_name=i.color_name,
            size_m=i.size_m,
            is_object=i.is_object,
            area_px=int(area[i.id]),
            centroid_x=float(cx[i.id]),
            centroid_y=float(cy[i.id]),
            median_depth_m=median[i.id],
            position="left" if cx[i.id] < 1 / 3 else "right" if cx[i.id] > 2 / 3 else "middle",
            expressions=tuple(dict.fromkeys(expressions.get(i.id, []))),
        )
        for i in visible
    )
