"""``vb-perception export --int8``: an int8 copy of an exported ONNX graph, for ONNX Runtime on CPUs.

ONNX Runtime's static quantization (``onnxruntime.quantization``) rewrites the convolutions and matrix products as
QDQ int8 (weights per output channel, activations per tensor). The activation ranges come from calibration frames
that look like the robot's: synthetic renders from their own seed (neither the training nor the held-out split),
each asked for every task (depth, normals, semantic, instances, referring) at the export's processing size. The
first and last convolutions and the prompt path stay fp32 (:func:`fp32_nodes`). The result is a normal ``.onnx``
file with the same inputs, outputs and metadata (plus ``quantization``), so every consumer of the fp32 export
(``predict --backend onnxruntime --engine``, the node, ``eval``) runs it unchanged. Activations are unsigned with
zero points (ONNX Runtime's fast u8s8 kernels on x86), which TensorRT's explicit int8 does not take: GPUs build
their fp16 engine from the fp32 export. Accuracy against fp32 and speed: README.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.errors import VbPerceptionError
from vb_perception.runtime.onnx_backend import SPEC_KEY, read_metadata
from vb_perception.runtime.spec import ExportSpec

__all__ = ["CALIBRATION_SEED", "calibration_feeds", "fp32_nodes", "int8_path", "quantize_int8"]

#: Seed of the calibration renders (training uses 1000, the held-out split 777).
CALIBRATION_SEED = 555
_QUANTIZED = ("Conv", "MatMul")
_TASKS = ("depth", "normals", "semantic", "instances", "referring")


def int8_path(onnx_path: str | Path) -> Path:
    """Where the int8 copy of ``onnx_path`` goes by default: ``<stem>-int8.onnx`` next to it."""
    p = Path(onnx_path)
    return p.with_name(p.stem + "-int8.onnx")


def calibration_feeds(
    onnx_path: str | Path, frames: int, seed: int = CALIBRATION_SEED
) -> Iterator[dict[str, np.ndarray]]:
    """The exported graph's inputs for ``frames`` synthetic frames: one batch of every task per frame, the camera
    image resized to the export's optimal processing size, prompts and tokens as the pipeline makes them."""
    import torch

    from vb_perception.model.conditioning import batch_tokens, focal_ratio, tokens_for
    from vb_perception.model.text import TextEncoder
    from vb_perception.offline.synth.dataset import SynthConfig, render_sample
    from vb_perception.offline.synth.examples import make_example
    from vb_perception.offline.synth.raycast import make_raycaster
    from vb_perception.pipeline import network_image

    meta = read_metadata(onnx_path)
    spec = ExportSpec.from_json(meta[SPEC_KEY])
    opt = spec.shapes(1)["image"]
    h, w = int(opt[2]), int(opt[3])
    text = TextEncoder()
    synth = SynthConfig(res_px=max(h, w), seed=seed)
    caster = make_raycaster(synth.backend, synth.device)
    gen = torch.Generator().manual_seed(seed)
    for i in range(frames):
        sample = render_sample(synth, i, caster)
        rng = random.Random(f"calibration/{i}")
        examples = [make_example(sample, rng, task=t) for t in _TASKS[: spec.dims["batch"][2]]]
        x = network_image(sample.rgb, h, w, len(examples)).contiguous()
        # Focal-conditioned models: the render's camera on even frames, an unknown camera on odd ones, so the
        # calibrated range of the camera input covers both (an unseen "unknown" flag would quantize to 0).
        camera = any(t.name == "camera" for t in spec.inputs)
        focal = focal_ratio(float(sample.k[0, 0]), *sample.rgb.shape[:2]) if i % 2 == 0 else None
        items = [tokens_for(e.prompt, e.spec, focal) for e in examples]
        cond = batch_tokens(items, text, torch.device("cpu"), camera=camera)
        noise = torch.randn(x.shape, generator=gen)
        tensors = [x, noise, *cond]
        yield {t.name: v.numpy() for t, v in zip(spec.inputs, tensors)}


def fp32_nodes(model: Any, image_inputs: tuple[str, ...]) -> list[str]:
    """The names of the convolutions and matrix products that stay fp32 in the int8 copy: the first and last
    convolutions and the prompt path.

    - The first convolution reads the camera image concatenated with the sampling noise. One per-tensor uint8 scale
      must span the noise's tails (about ±5), which leaves the image about 5 grey levels per step. The decoded depth
      then lost up to 29 % (mean relative, vb-mini2@16600 on the TUM frame), against 1–4 % with it in fp32.
    - The last convolution writes the RGB the codecs decode. Every other convolution depends on the first and feeds
      the last, so in a topologically sorted graph (ONNX requires it) they are the first and last Conv nodes. With
      the full-resolution refinement (``refine_channels``), the UNet's output convolution and the refinement's
      three stay fp32 too (:func:`_full_resolution_convs`): they decide the decoded values, and cost little.
    - The prompt path is every product that does not depend on ``image_inputs`` (the export descriptor's image and
      noise inputs): the token MLPs, the cross-attention keys and values, the palette keys. It works on at most a
      few dozen tokens, so int8 saves nothing there. Quantized, it cost instance F1 0.298 → 0.173 on the held-out
      split (probably because the instance slots are chosen by small differences between palette logits)."""
    nodes = list(model.graph.node)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    depends = set(image_inputs)
    for n in nodes:
        if any(i in depends for i in n.input):
            depends.update(n.output)
    prompt = [n.name for n in nodes if n.op_type in _QUANTIZED and not any(i in depends for i in n.input)]
    return sorted(set(prompt) | ({convs[0], convs[-1]} if convs else set()) | _full_resolution_convs(nodes))


def _full_resolution_convs(nodes: list[Any]) -> set[str]:
    """The convolutions of a space-to-depth model from its output convolution on: the one that feeds the pixel
    shuffle (``DepthToSpace``) and the full-resolution refinement after it (``refine_channels``), whose output is
    what the codecs decode. Empty for models without the shuffle."""
    shuffles = [n for n in nodes if n.op_type == "DepthToSpace"]
    if not shuffles:
        return set()
    producer = {o: n for n in nodes for o in n.output}
    kept = set()
    feeding = producer.get(shuffles[-1].input[0])
    if feeding is not None and feeding.op_type == "Conv":
        kept.add(feeding.name)
    reached = set(shuffles[-1].output)
    for n in nodes:
        if any(i in reached for i in n.input):
            reached.update(n.output)
            if n.op_type == "Conv":
                kept.add(n.name)
    return kept


def quantize_int8(
    onnx_path: str | Path, out: str | Path | None = None, frames: int = 16, progress: bool = True
) -> Path:
    """Write the int8 (QDQ) copy of an fp32 export calibrated on ``frames`` synthetic frames; returns its path."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )
    from tqdm import tqdm

    src = Path(onnx_path)
    if not src.is_file():
        raise VbPerceptionError(f"{src}: no such ONNX file; run `vb-perception export --backend onnx` first")
    meta = read_metadata(src)
    if SPEC_KEY not in meta:
        raise VbPerceptionError(f"{src}: not a vb_perception export (no export descriptor in its metadata)")
    if "quantization" in meta:
        raise VbPerceptionError(f"{src} is already quantized ({meta['quantization']}); quantize the fp32 export")
    if frames < 1:
        raise VbPerceptionError("--calibration-frames must be at least 1")
    dst = Path(out) if out else int8_path(src)

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            feeds = calibration_feeds(src, frames)
            self.feeds = iter(tqdm(feeds, total=frames, desc="int8 calibration", unit="frame", disable=not progress))

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        spec = ExportSpec.from_json(meta[SPEC_KEY])
        kept_fp32 = fp32_nodes(onnx.load(str(pre)), tuple(t.name for t in spec.inputs[:2]))
        quantize_static(
            str(pre),
            str(Path(tmp) / "int8.onnx"),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(_QUANTIZED),
            nodes_to_exclude=kept_fp32,
        )
        model = onnx.load(str(Path(tmp) / "int8.onnx"))
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used]  # the pre-processing declares domains it never uses
    del model.opset_import[:]
    model.opset_import.extend(keep)
    kept = {p.key for p in model.metadata_props}
    for key, value in meta.items():
        if key not in kept:
            model.metadata_props.add(key=key, value=value)
    note = {
        "scheme": "int8 QDQ (Conv, MatMul), weights per channel; first and last Conv and the prompt path in fp32",
        "calibration_frames": frames,
        "fp32_nodes": kept_fp32,
    }
    model.metadata_props.add(key="quantization", value=json.dumps(note))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp_dst = dst.with_suffix(".tmp")
    onnx.save(model, str(tmp_dst))
    tmp_dst.replace(dst)
    return dst
