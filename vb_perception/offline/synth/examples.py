"""Training examples from a rendered sample: an instruction prompt and the RGB image the generator should draw.

The prompt is written by :func:`vb_perception.prompts.render_prompt` (the same grammar the node parses) and the
target by the codecs, so training and inference share one interface:

* depth: the paper's encoding, augmented with other colormaps (named in the prompt); invalid depth (sky) is drawn
  as the far end of the curve (white for hilbert);
* normals: ``(n + 1) / 2`` in the camera frame;
* semantic: a random palette for 1-5 visible classes (sometimes one absent class, which must stay unpainted);
* instances: one object class, each instance in a distinct colour the prompt does not name (the generator's
  instance slot colours, in a random order);
* referring: 1-2 objects picked out by unique expressions, each in its prompt colour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs import encode_depth, encode_normals
from vb_perception.colors import RGB, color_distance, color_names, instance_slots
from vb_perception.offline.synth.attributes import InstanceInfo
from vb_perception.offline.synth.generate import OBJECT_CLASSES
from vb_perception.offline.synth.render import Sample
from vb_perception.prompts import (
    MIN_COLOR_DISTANCE,
    DepthSpec,
    InstanceSpec,
    NormalsSpec,
    ReferringSpec,
    SemanticSpec,
    TaskSpec,
    render_prompt,
)

__all__ = ["DEFAULT_TASK_MIX", "TASKS", "TrainingExample", "make_example", "target_for"]

TASKS = ("depth", "normals", "semantic", "instances", "referring")
DEFAULT_TASK_MIX: dict[str, float] = {
    "depth": 0.3,
    "normals": 0.25,
    "semantic": 0.2,
    "instances": 0.1,
    "referring": 0.15,
}
#: Share of depth targets drawn with an augmentation colormap instead of the paper's (hilbert) encoding.
DEPTH_COLORMAP_AUGMENT = 0.25
_MIN_AREA_PX = 12


@dataclass(frozen=True)
class TrainingExample:
    """One (image, prompt) -> target pair. ``target`` is uint8 ``HxWx3``, ``spec`` the parsed form of ``prompt``."""

    image: NDArray[np.uint8]
    prompt: str
    spec: TaskSpec
    target: NDArray[np.uint8]


def _random_colors(rng: random.Random, n: int, avoid: list[RGB], min_distance: float) -> list[RGB]:
    """n colours at least ``min_distance`` from each other and from ``avoid``; half the time CSS-named ones."""
    named = list(set(color_names().values()))
    out: list[RGB] = []
    for _ in range(2000):
        if len(out) == n:
            break
        c: RGB = (
            rng.choice(named) if rng.random() < 0.5 else (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
        if all(color_distance(c, o) >= min_distance for o in out + avoid):
            out.append(c)
    if len(out) < n:
        raise RuntimeError(f"could not draw {n} colours {min_distance} apart")
    return out


def _background(rng: random.Random) -> RGB:
    return (0, 0, 0) if rng.random() < 0.5 else _random_colors(rng, 1, [], 0)[0]


def target_for(spec: TaskSpec, sample: Sample, instance_colors: dict[int, RGB] | None = None) -> NDArray[np.uint8]:
    """The RGB image a perfect generator draws for ``spec`` on ``sample``.

    ``instance_colors`` (instance id -> colour) is required for :class:`InstanceSpec`, whose colours the model picks.
    """
    ids = sample.instance_ids
    if isinstance(spec, DepthSpec):
        return encode_depth(sample.depth_m, colormap=spec.colormap, invalid="max")  # type: ignore[arg-type]
    if isinstance(spec, NormalsSpec):
        return encode_normals(sample.normals)
    out = np.empty(ids.shape + (3,), np.uint8)
    out[:] = spec.background
    if isinstance(spec, InstanceSpec):
        for iid, color in (instance_colors or {}).items():
            out[ids == iid] = color
        return out
    by_class: dict[str, list[int]] = {}
    by_expression: dict[str, int] = {}
    for info in sample.instances:
        by_class.setdefault(info.class_name, []).append(info.id)
        for e in info.expressions:
            by_expression[e] = info.id
    if isinstance(spec, SemanticSpec):
        for name, color in spec.classes:
            out[np.isin(ids, by_class.get(name, []))] = color
    else:
        for expr, color in spec.targets:
            out[ids == by_expression[expr]] = color
    return out


def _objects(sample: Sample) -> list[InstanceInfo]:
    return [i for i in sample.instances if i.is_object and i.area_px >= _MIN_AREA_PX]


def make_example(
    sample: Sample, rng: random.Random, task: str | None = None, mix: dict[str, float] | None = None
) -> TrainingExample:
    """Draw a task (or use ``task``) and build its prompt and target; falls back to depth when the sample has
    nothing the task could be about (e.g. no visible object for instances)."""
    weights = mix or DEFAULT_TASK_MIX
    chosen = task or rng.choices(list(weights), weights=list(weights.values()))[0]
    spec: TaskSpec
    instance_colors: dict[int, RGB] | None = None
    objects = _objects(sample)
    if chosen == "semantic":
        visible = sorted({i.class_name for i in sample.instances if i.area_px >= _MIN_AREA_PX})
        if visible:
            names = rng.sample(visible, rng.randint(1, min(5, len(visible))))
            absent = [c for c in OBJECT_CLASSES.get(sample.family, ()) if c not in visible]
            if absent and rng.random() < 0.2:
                names.append(rng.choice(absent))
            bg = _background(rng)
            spec = SemanticSpec(tuple(zip(names, _random_colors(rng, len(names), [bg], MIN_COLOR_DISTANCE))), bg)
        else:
            chosen = "depth"
    elif chosen == "instances":
        classes = sorted({i.class_name for i in objects})
        if classes:
            cls = rng.choice(classes)
            bg = _background(rng)
            members = [i.id for i in sample.instances if i.class_name == cls and i.area_px > 0]
            # The generator paints instances in its fixed slot colours (any permutation: training matches slots
            # to instances); more visible instances than slots (rare: rows of buildings) share colours.
            free = instance_slots(bg)
            slots = rng.sample(free, len(free))
            instance_colors = {m: slots[k % len(slots)] for k, m in enumerate(members)}
            spec = InstanceSpec(cls, bg)
        else:
            chosen = "depth"
    elif chosen == "referring":
        candidates = [i for i in objects if i.expressions]
        if candidates:
            picked = rng.sample(candidates, min(len(candidates), rng.choice((1, 1, 2))))
            bg = _background(rng)
            colors = _random_colors(rng, len(picked), [bg], MIN_COLOR_DISTANCE)
            spec = ReferringSpec(tuple((rng.choice(i.expressions), c) for i, c in zip(picked, colors)), bg)
        else:
            chosen = "depth"
    if chosen == "normals":
        spec = NormalsSpec()
    elif chosen == "depth":
        augment = rng.random() < DEPTH_COLORMAP_AUGMENT
        spec = DepthSpec(rng.choice(("plasma", "inferno", "viridis", "gray")) if augment else "hilbert")
    return TrainingExample(sample.rgb, render_prompt(spec, rng=rng), spec, target_for(spec, sample, instance_colors))
