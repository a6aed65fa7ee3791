"""The perception pipeline: camera image + prompts -> decoded depth, normals and masks, in one batched model call.

    pipe = Perception()                       # the bundled model (models/vb-mini), CPU
    out = pipe(rgb, ["Generate a metric depth map", "surface normals", "Segment the chair in red"])
    out[0].depth_m                            # float32 HxW metres at the input resolution, NaN invalid

Steps: (1) parse every prompt (errors before any compute), (2) resize the image to the model's processing size,
(3) generate all targets in one batch, (4) decode each with the codecs and (5) resample to the input resolution.
With ``flip_average``, depth and normals are also generated from the mirrored image, in the same batch, and the two
are averaged (README: averaging generations).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs import decode_depth, decode_instances, decode_normals, decode_semantic
from vb_perception.codecs.normals import camera_to_optical, mirror_normals
from vb_perception.errors import VbPerceptionError
from vb_perception.prompts import (
    DepthSpec,
    InstanceSpec,
    NormalsSpec,
    ReferringSpec,
    SemanticSpec,
    TaskSpec,
    parse_prompt,
)

__all__ = [
    "DepthResult",
    "InstancesResult",
    "NormalsResult",
    "Perception",
    "SegmentationResult",
    "default_model_dir",
    "generated_uint8",
    "network_image",
]

MODEL_ENV = "VB_PERCEPTION_MODEL"


def default_model_dir() -> Path:
    """The bundled model: ``$VB_PERCEPTION_MODEL``, else ``models/vb-mini`` of a source checkout, else the installed
    ``share/vb_perception/models/vb-mini``."""
    import sys

    env = os.environ.get(MODEL_ENV)
    if env:
        return Path(env)
    candidates = [Path(__file__).resolve().parents[1] / "models" / "vb-mini"]
    candidates.append(Path(sys.prefix) / "share" / "vb_perception" / "models" / "vb-mini")
    try:  # a colcon/ROS install
        from ament_index_python.packages import get_package_share_directory  # type: ignore[import-not-found]

        candidates.append(Path(get_package_share_directory("vb_perception")) / "models" / "vb-mini")
    except (ImportError, LookupError, OSError):  # not a ROS install, package not found, AMENT_PREFIX_PATH unset
        pass
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    raise VbPerceptionError(
        f"no bundled model found (looked in {', '.join(str(c) for c in candidates)}); set {MODEL_ENV} to a model "
        "folder or pass model_dir"
    )


@dataclass(frozen=True)
class DepthResult:
    """Metric z-depth. ``depth_m``: float32 HxW metres at the input resolution, NaN invalid (REP 118)."""

    prompt: str
    depth_m: NDArray[np.float32]
    generated: NDArray[np.uint8]


@dataclass(frozen=True)
class NormalsResult:
    """``normals``: float32 HxWx3 unit vectors, NaN invalid, in ``frame``: ``camera`` (the paper's: +x right, +y up,
    +z to the viewer; the default) or ``optical`` (REP 103: x right, y down, z forward)."""

    prompt: str
    normals: NDArray[np.float32]
    generated: NDArray[np.uint8]
    frame: str = "camera"


@dataclass(frozen=True)
class SegmentationResult:
    """``labels``: int32 HxW, 0 = background / unassigned, i = ``class_names[i - 1]``; ``colors`` Kx3 uint8."""

    prompt: str
    labels: NDArray[np.int32]
    class_names: tuple[str, ...]
    colors: NDArray[np.uint8]
    unassigned_count: int
    generated: NDArray[np.uint8]


@dataclass(frozen=True)
class InstancesResult:
    """``labels``: int32 HxW, 0 = background, i = i-th instance (by area) of ``class_name``."""

    prompt: str
    labels: NDArray[np.int32]
    class_name: str
    count: int
    generated: NDArray[np.uint8]


Result = DepthResult | NormalsResult | SegmentationResult | InstancesResult


def generated_uint8(out: NDArray[np.floating]) -> NDArray[np.uint8]:
    """The network's output, NCHW in [-1, 1], as the NHWC uint8 RGB images the codecs decode."""
    return ((np.moveaxis(out, 1, -1) + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)


def processing_size(height: int, width: int, short_px: int, multiple: int = 8) -> tuple[int, int]:
    """(h, w) with the short side ``short_px`` and both sides multiples of ``multiple``, keeping the aspect ratio."""
    scale = short_px / min(height, width)
    m = multiple
    return max(m, round(height * scale / m) * m), max(m, round(width * scale / m) * m)


def network_image(image: NDArray[np.uint8], h: int, w: int, n: int, device: Any = "cpu") -> Any:
    """The camera image ``HxWx3`` uint8 as the generator's image input: ``[n, 3, h, w]`` float32 in [-1, 1]
    (antialiased bilinear resize), one row per prompt."""
    import torch

    x = torch.tensor(image, dtype=torch.float32, device=device).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return (x / 127.5 - 1.0).expand(n, -1, -1, -1)


def _resize_float(a: NDArray[np.float32], h: int, w: int) -> NDArray[np.float32]:
    """Bilinear resize of ``HxW`` or ``HxWxC`` floats; NaN regions stay NaN (nearest), no bleeding of NaN."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    x = x[None, None] if x.dim() == 2 else x.permute(2, 0, 1)[None]
    valid = torch.isfinite(x).all(dim=1, keepdim=True).float()
    filled = torch.nan_to_num(x, nan=0.0) * valid
    num = torch.nn.functional.interpolate(filled, size=(h, w), mode="bilinear", align_corners=False)
    den = torch.nn.functional.interpolate(valid, size=(h, w), mode="bilinear", align_corners=False)
    keep = torch.nn.functional.interpolate(valid, size=(h, w), mode="nearest") > 0.5
    out = torch.where(keep & (den > 1e-6), num / den.clamp_min(1e-6), torch.full_like(num, float("nan")))
    out = out[0, 0] if a.ndim == 2 else out[0].permute(1, 2, 0)
    return out.numpy().astype(np.float32)


def _resize_labels(a: NDArray[np.generic], h: int, w: int) -> NDArray[np.int32]:
    ys = (np.arange(h) * a.shape[0] / h).astype(int)
    xs = (np.arange(w) * a.shape[1] / w).astype(int)
    return a[ys][:, xs].astype(np.int32)


class Perception:
    """Loads the generator once; ``__call__(image, prompts)`` runs every prompt on one image in one batch."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        steps: int | None = None,
        backend: str = "torch",
        engine: str | Path | None = None,
        normals_frame: str = "camera",
        flip_average: bool = False,
    ) -> None:
        """``backend``: ``torch`` runs the model folder; ``onnxruntime`` / ``tensorrt`` run ``engine`` (default: the
        export of this model and step count made by ``vb-perception export``). ``normals_frame``: ``camera`` (the
        paper's) or ``optical`` (ROS), converted before upsampling, where it is cheap. ``flip_average``: depth and
        normals averaged with their generation from the mirrored image (more rows in the same batched call, each
        from its prompt's start noise; held-out normals 13.8° -> 13.2°, RMSE 2.82 -> 2.25 m on vb-mini2@24623)."""
        if normals_frame not in ("camera", "optical"):
            raise VbPerceptionError(f"normals_frame must be 'camera' or 'optical', not {normals_frame!r}")
        self.normals_frame = normals_frame
        self.flip_average = flip_average
        import torch

        from vb_perception.model.text import TextEncoder

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        self.device = torch.device(device)
        self.backend_name = backend
        self.model = None
        self.backend = None
        self.engine_path: Path | None = None
        if backend == "torch":
            from vb_perception.model.loading import load_generator

            self.model = load_generator(self.model_dir, device=device)
            c = self.model.config
            self.model_version, self.resolution_px = c.model_version, c.resolution_px
            self.size_multiple, self.steps = self.model.size_multiple, steps or c.default_steps
            uses_minilm = self.model.uses_minilm
            self.uses_focal = "camera" in self.model.cond_names
        else:
            from vb_perception.runtime import load_backend

            path = Path(engine) if engine else self._default_engine(steps)
            self.backend = load_backend(path, backend, device=device)
            self.engine_path = path
            meta = self.backend.metadata
            if steps and steps != meta["steps"]:
                raise VbPerceptionError(f"{path} was exported with {meta['steps']} step(s), not {steps}; export again")
            self.model_version, self.resolution_px = meta["model_version"], meta["resolution_px"]
            self.size_multiple, self.steps = meta["size_multiple"], meta["steps"]
            uses_minilm = True
            self.uses_focal = "camera" in meta.get("cond_names", ())
        self.text = TextEncoder(device) if uses_minilm else None
        # Prompt tokens per prompt list: computed when the prompts change, not per frame (a few recent lists kept).
        self._cond_cache: dict[tuple[str | float | None, ...], tuple[object, ...]] = {}

    def _default_engine(self, steps: int | None) -> Path:
        import json

        from vb_perception.offline.export import default_export_path

        config = json.loads((self.model_dir / "config.json").read_text())
        path = default_export_path(config["model_version"], steps or config["default_steps"])
        if not path.is_file():
            raise VbPerceptionError(
                f"no ONNX export of {config['model_version']} ({steps or config['default_steps']} step(s)) at {path}; "
                "run `vb-perception export --backend onnx` first, or pass --engine"
            )
        return path

    def generate(
        self,
        image: NDArray[np.uint8],
        specs: Sequence[TaskSpec],
        prompts: Sequence[str],
        seed: int = 0,
        fx_px: float | None = None,
        mirror_of: Sequence[int] = (),
    ) -> NDArray[np.uint8]:
        """Raw generated RGB ``[N, h, w, 3]`` at the processing size, one per prompt, in one batched call.
        ``fx_px``: the image's focal length in pixels (camera_info K[0]), for models with focal conditioning; other
        models ignore it, and None means unknown. ``mirror_of``: prompt indices also run on the mirrored image, in
        the same call, each from its prompt's start noise; their generations (still mirrored) follow the N."""
        import torch

        from vb_perception.model.base import draw_noise
        from vb_perception.model.conditioning import batch_tokens, focal_ratio, tokens_for

        focal = focal_ratio(fx_px, image.shape[0], image.shape[1])  # checked even where the model ignores it
        focal = focal if self.uses_focal else None
        h, w = processing_size(image.shape[0], image.shape[1], self.resolution_px, self.size_multiple)
        n = len(specs)
        rows = list(range(n)) + list(mirror_of)
        specs, prompts = [specs[i] for i in rows], [prompts[i] for i in rows]
        x = network_image(image, h, w, len(rows), self.device)
        if mirror_of:  # resizing commutes with the mirror: flip the network image's rows for the mirrored prompts
            x = torch.cat([x[:n], x[n:].flip(-1)])
        key = (*prompts, None if focal is None else round(focal, 4))
        cond = self._cond_cache.get(key)
        if cond is None:
            items = [tokens_for(p, s, focal) for p, s in zip(prompts, specs)]
            if self.model is not None:
                cond = self.model.conditioning(items, self.text)
            else:
                cond = batch_tokens(items, self.text, self.device, camera=self.uses_focal)
            while len(self._cond_cache) >= 8:
                self._cond_cache.pop(next(iter(self._cond_cache)))
            self._cond_cache[key] = cond
        gen = torch.Generator(device=self.device).manual_seed(seed)
        if self.model is not None:
            out = self.model.sample(x, cond, steps=self.steps, generator=gen, noise_index=rows)  # type: ignore[arg-type]
        else:
            assert self.backend is not None
            noise = draw_noise(x.shape, gen, rows, self.device, x.dtype)
            tensors = [x.contiguous(), noise] + list(cond)
            feeds = {t.name: v.cpu().numpy() for t, v in zip(self.backend.inputs, tensors)}
            out = torch.from_numpy(self.backend.infer(feeds)["rgb"])
        return generated_uint8(out.cpu().numpy())

    def __call__(
        self, image: NDArray[np.uint8], prompts: Sequence[str], seed: int = 0, fx_px: float | None = None
    ) -> list[Result]:
        """Every prompt on ``image`` (uint8 HxWx3 RGB). ``fx_px``: its focal length in pixels when known (camera_info
        K[0] at this image's size), which models with focal conditioning use for the metric scale."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise VbPerceptionError(f"image must be uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        specs = [parse_prompt(p) for p in prompts]  # 1. every prompt error before any compute
        # the depth and normals prompts again on the mirrored image, with flip_average
        which = [i for i, s in enumerate(specs) if isinstance(s, (DepthSpec, NormalsSpec))] if self.flip_average else []
        generated = self.generate(image, specs, prompts, seed, fx_px, mirror_of=which)  # 2-3. one batched call
        mirrored = dict(zip(which, generated[len(specs) :]))  # still mirrored, by prompt index
        h, w = image.shape[:2]
        results: list[Result] = []
        for i, (prompt, spec, rgb) in enumerate(zip(prompts, specs, generated)):  # 4-5. decode, to input resolution
            if isinstance(spec, DepthSpec):
                d = decode_depth(rgb, colormap=spec.colormap)
                if i in mirrored:  # the geometric mean: the average in log depth
                    d = np.sqrt(d * decode_depth(mirrored[i], colormap=spec.colormap)[:, ::-1])
                results.append(DepthResult(prompt, _resize_float(d, h, w), rgb))  # type: ignore[arg-type]
            elif isinstance(spec, NormalsSpec):
                n = decode_normals(rgb)
                if i in mirrored:  # mirrored back (x flips sign), then the mean direction
                    n = n + mirror_normals(decode_normals(mirrored[i]))
                    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
                if self.normals_frame == "optical":
                    n = camera_to_optical(n)
                n = _resize_float(n, h, w)
                n /= np.linalg.norm(n, axis=-1, keepdims=True)
                results.append(NormalsResult(prompt, n.astype(np.float32, copy=False), rgb, self.normals_frame))
            elif isinstance(spec, (SemanticSpec, ReferringSpec)):
                seg = decode_semantic(rgb, spec.palette, background_rgb=spec.background)
                results.append(
                    SegmentationResult(
                        prompt, _resize_labels(seg.labels, h, w), seg.class_names, seg.colors, seg.unassigned_count, rgb
                    )
                )
            else:
                assert isinstance(spec, InstanceSpec)
                inst = decode_instances(rgb, background_rgb=spec.background, min_area_px=4)
                results.append(
                    InstancesResult(prompt, _resize_labels(inst.labels, h, w), spec.class_name, inst.count, rgb)
                )
        return results
