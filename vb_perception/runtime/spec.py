"""One export descriptor per network: tensor names, dtypes, symbolic dimensions and their min / opt / max sizes.

The same :class:`ExportSpec` drives the ONNX export (dynamic shapes), the TensorRT build (one optimization
profile) and the backends' declared inputs and outputs, and it travels inside the exported file as metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from vb_perception.errors import VbPerceptionError

#: Width of the ``camera`` input (``vb_perception.model.conditioning.CAMERA_DIM``; this module stays torch-free).
CAMERA_DIM = 9

__all__ = ["ExportSpec", "SpecError", "TensorSpec", "generator_spec"]


class SpecError(VbPerceptionError):
    """Inputs that do not match a network's declared tensors or shape ranges."""


@dataclass(frozen=True)
class TensorSpec:
    """``dims``: ints (fixed) or names of symbolic dimensions, optionally ``"name+k"`` (e.g. ``tokens+1``)."""

    name: str
    dtype: str  # numpy dtype name: float32, int64
    dims: tuple[int | str, ...]


@dataclass(frozen=True)
class ExportSpec:
    network: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: symbolic dimension -> (min, opt, max); image sides are in units of ``multiple`` pixels.
    dims: dict[str, tuple[int, int, int]]
    metadata: dict[str, Any] = field(default_factory=dict)

    def size(self, dim: int | str, which: int) -> int:
        """A dimension's size at the min (0), opt (1) or max (2) end of its range."""
        if isinstance(dim, int):
            return dim
        name, _, plus = dim.partition("+")
        scale, _, base = name.rpartition("*")
        value = self.dims[base][which] * (int(scale) if scale else 1)
        return value + (int(plus) if plus else 0)

    def shapes(self, which: int) -> dict[str, tuple[int, ...]]:
        """Every input's concrete shape at one end of the ranges (TensorRT profile min / opt / max)."""
        return {t.name: tuple(self.size(d, which) for d in t.dims) for t in self.inputs}

    def check(self, feeds: dict[str, Any]) -> None:
        """Raise :class:`SpecError` naming the first input that is missing, of another dtype or out of range."""
        missing = [t.name for t in self.inputs if t.name not in feeds]
        if missing:
            raise SpecError(f"{self.network}: missing inputs {missing}; it takes {[t.name for t in self.inputs]}")
        for t in self.inputs:
            a = feeds[t.name]
            if str(a.dtype) != t.dtype or a.ndim != len(t.dims):
                raise SpecError(
                    f"{self.network}: input {t.name} must be {t.dtype} with dims {t.dims}, got {a.dtype} {a.shape}"
                )
            for axis, d in enumerate(t.dims):
                lo, hi = self.size(d, 0), self.size(d, 2)
                if not lo <= a.shape[axis] <= hi:
                    raise SpecError(
                        f"{self.network}: input {t.name} axis {axis} ({d}) is {a.shape[axis]}, outside the exported "
                        f"range {lo}..{hi}; export again with a larger range"
                    )

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExportSpec:
        raw = json.loads(text)
        return cls(
            network=raw["network"],
            inputs=tuple(TensorSpec(t["name"], t["dtype"], tuple(t["dims"])) for t in raw["inputs"]),
            outputs=tuple(TensorSpec(t["name"], t["dtype"], tuple(t["dims"])) for t in raw["outputs"]),
            dims={k: tuple(v) for k, v in raw["dims"].items()},  # type: ignore[misc]
            metadata=raw.get("metadata", {}),
        )


def generator_spec(
    cond_names: tuple[str, ...],
    text_dim: int,
    multiple: int,
    opt_hw: tuple[int, int],
    max_hw: tuple[int, int] | None = None,
    batch: tuple[int, int, int] = (1, 3, 8),
    tokens: tuple[int, int, int] = (1, 3, 34),
    metadata: dict[str, Any] | None = None,
) -> ExportSpec:
    """The pixel generator's graph: ``image, noise, text_emb, colors, roles, task, mask [, camera] -> rgb`` (NCHW,
    [-1, 1]); ``camera`` ``[batch, 9]`` for models with focal conditioning."""
    plain = ("text_emb", "colors", "roles", "task", "mask")
    if cond_names not in (plain, plain + ("camera",)):
        raise SpecError(f"export of this model kind (conditioning {cond_names}) is not supported yet")
    camera = (TensorSpec("camera", "float32", ("batch", CAMERA_DIM)),) if "camera" in cond_names else ()
    oh, ow = (v // multiple for v in opt_hw)
    mh, mw = (v // multiple for v in (max_hw or (2 * opt_hw[0], 2 * opt_hw[1])))
    img = ("batch", 3, f"{multiple}*h", f"{multiple}*w")
    return ExportSpec(
        network="generator",
        inputs=(
            TensorSpec("image", "float32", img),
            TensorSpec("noise", "float32", img),
            TensorSpec("text_emb", "float32", ("batch", "tokens", text_dim)),
            TensorSpec("colors", "float32", ("batch", "tokens", 3)),
            TensorSpec("roles", "int64", ("batch", "tokens")),
            TensorSpec("task", "int64", ("batch",)),
            TensorSpec("mask", "int64", ("batch", "tokens+1")),
            *camera,
        ),
        outputs=(TensorSpec("rgb", "float32", img),),
        dims={
            "batch": batch,
            "h": (max(1, oh // 2), oh, max(mh, oh)),
            "w": (max(1, ow // 2), ow, max(mw, ow)),
            "tokens": tokens,
        },
        metadata=metadata or {},
    )
