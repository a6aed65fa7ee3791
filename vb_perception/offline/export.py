"""``vb-perception export``: the generator with its few-step sampler unrolled, as ONNX (and a TensorRT engine).

One call of the exported graph takes every prompt of a frame as one batch and returns the final RGB images:

    inputs   image [B, 3, H, W] float32 in [-1, 1]    the camera image at the processing size, per prompt
             noise [B, 3, H, W] float32 ~ N(0, 1)      the sampler's start (fixed seed: reproducible outputs)
             text_emb [B, L, 384], colors [B, L, 3], roles [B, L], task [B], mask [B, L + 1]
                                                       the prompt tokens (computed once per prompt change)
    output   rgb [B, 3, H, W] float32 in [-1, 1]       the generated visualisations, ready for the codecs

Batch, image size (multiples of the model's size multiple) and token count are dynamic within the ranges of the
export descriptor (:mod:`vb_perception.runtime.spec`), which is stored in the file's metadata with the steps,
resolution, normalisation and model version.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from vb_perception.errors import VbPerceptionError

__all__ = ["default_export_path", "export_dir", "export_onnx", "export_tensorrt"]

CACHE_ENV = "VB_PERCEPTION_CACHE"


def export_dir() -> Path:
    """Where exports and engines go by default: ``$VB_PERCEPTION_CACHE/export`` or ``~/.cache/vb_perception/export``."""
    root = (
        os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vb_perception"
    )
    return Path(root) / "export"


def default_export_path(model_version: str, steps: int, suffix: str = ".onnx") -> Path:
    safe = model_version.replace("@", "-").replace("/", "_")
    return export_dir() / f"{safe}-{steps}step{suffix}"


def export_onnx(
    model_dir: str | Path | None = None,
    steps: int | None = None,
    height: int | None = None,
    width: int | None = None,
    out: str | Path | None = None,
    max_batch: int = 8,
    opset: int = 18,
) -> Path:
    """Export the model (default: the bundled one) with ``steps`` unrolled sampling steps; returns the .onnx path.

    ``height`` x ``width`` is the optimal processing size (default: a 480x640 camera at the model's resolution);
    the graph accepts half to twice that."""
    import contextlib
    import io
    import warnings

    import onnx
    import torch

    from vb_perception.model.loading import load_generator
    from vb_perception.pipeline import default_model_dir, processing_size
    from vb_perception.runtime.onnx_backend import SPEC_KEY
    from vb_perception.runtime.spec import generator_spec
    from vb_perception.runtime.unrolled import UnrolledSampler

    folder = Path(model_dir) if model_dir else default_model_dir()
    model = load_generator(folder)
    c = model.config
    n = steps or c.default_steps
    m = model.size_multiple
    opt = processing_size(480, 640, c.resolution_px, m) if height is None or width is None else (height, width)
    if opt[0] % m or opt[1] % m:
        raise VbPerceptionError(f"--height and --width must be multiples of {m} for this model, got {opt}")
    metadata: dict[str, Any] = {
        "steps": n,
        "model_version": c.model_version,
        "resolution_px": c.resolution_px,
        "size_multiple": m,
        "normalization": "image, noise and rgb NCHW float32; image and rgb in [-1, 1] (rgb8 / 127.5 - 1)",
        "text_encoder": "all-MiniLM-L6-v2 (mean-pooled, L2-normalised)",
        "cond_names": list(model.cond_names),
        "opset": opset,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    spec = generator_spec(model.cond_names, 384, m, opt, batch=(1, 3, max_batch), metadata=metadata)
    sampler = UnrolledSampler(model, n).eval()
    shapes = spec.shapes(1)
    example = []
    for t in spec.inputs:
        if t.dtype == "int64":
            example.append(torch.ones(shapes[t.name], dtype=torch.long))
        else:
            example.append(torch.randn(shapes[t.name]))
    from torch.export import Dim

    dims = {k: Dim(k, min=lo, max=hi) for k, (lo, _, hi) in spec.dims.items()}
    img = {0: dims["batch"], 2: m * dims["h"], 3: m * dims["w"]}
    tok = {0: dims["batch"], 1: dims["tokens"]}
    cond_dims = (tok, tok, tok, {0: dims["batch"]}, {0: dims["batch"], 1: dims["tokens"] + 1})
    if "camera" in model.cond_names:
        cond_dims += ({0: dims["batch"]},)
    dynamic = (img, img, cond_dims)
    path = Path(out) if out else default_export_path(c.model_version, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"exporting {c.model_version} ({n} step(s), opt {opt[0]}x{opt[1]}) to {path} ...", flush=True)
    import logging

    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # e.g. "torchvision is not installed"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            sampler,
            tuple(example),
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            external_data=False,
        )
    proto = program.model_proto
    for key, value in ((SPEC_KEY, spec.to_json()), ("model_version", c.model_version), ("steps", str(n))):
        proto.metadata_props.add(key=key, value=value)
    tmp = path.with_suffix(".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def export_tensorrt(onnx_path: str | Path, out: str | Path | None = None, fp16: bool = True) -> Path:
    """Build (or reuse) the TensorRT engine of an exported ONNX file; needs a CUDA GPU and TensorRT."""
    import shutil

    from vb_perception.runtime.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(onnx_path, fp16=fp16)
    built = backend.engine_path
    backend.close()
    if out:
        shutil.copy(built, out)
        shutil.copy(built.with_suffix(".json"), Path(out).with_suffix(".json"))
        return Path(out)
    return built
