"""TensorRT: build an engine from the exported ONNX (fp16, one optimization profile from the export descriptor,
a timing cache), cache it keyed by ONNX hash + TensorRT version + GPU, run it on a CUDA stream.

Nothing here imports TensorRT at module import: :func:`check_onnx_for_tensorrt` and :func:`engine_key` run on any
machine (the ONNX graph is checked for TensorRT here, in CI, without a GPU).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.runtime.base import Backend, BackendError, log
from vb_perception.runtime.onnx_backend import read_metadata, read_spec

__all__ = ["MAX_OPSET", "MIN_OPSET", "TensorRTBackend", "check_onnx_for_tensorrt", "engine_key"]

#: TensorRT 10 parses ONNX opsets 9 to 20 (onnx-tensorrt operator docs).
MIN_OPSET, MAX_OPSET = 9, 20
#: ONNX operators the TensorRT ONNX parser does not implement (onnx-tensorrt support matrix).
UNSUPPORTED_OPS = frozenset(
    "BitShift Compress ConcatFromSequence ConvInteger Det DynamicQuantizeLinear Hardmax MatMulInteger MaxRoiPool "
    "MaxUnpool Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement OptionalHasElement QLinearConv "
    "QLinearMatMul RandomNormal RandomNormalLike SequenceAt SequenceConstruct SequenceEmpty SequenceErase "
    "SequenceInsert SequenceLength SoftmaxCrossEntropyLoss SplitToSequence StringNormalizer TfIdfVectorizer "
    "Unique".split()
)


def check_onnx_for_tensorrt(path: str | Path) -> list[str]:
    """Problems TensorRT would have with the exported graph (empty: none found): the opset, operators outside the
    standard domain or unsupported by the parser, convolution weights that are not initializers, and input
    dimensions that are neither fixed nor covered by the descriptor's profile."""
    import onnx

    model = onnx.load(str(path))
    spec = read_spec(path)
    problems = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not MIN_OPSET <= imp.version <= MAX_OPSET:
            problems.append(f"opset {imp.version} outside TensorRT's {MIN_OPSET}..{MAX_OPSET}")
        elif imp.domain not in ("", "ai.onnx"):
            problems.append(f"custom operator domain {imp.domain!r}")
    initializers = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.op_type} from domain {node.domain!r}")
        elif node.op_type in UNSUPPORTED_OPS:
            problems.append(f"{node.op_type} is not supported by the TensorRT ONNX parser")
        elif node.op_type in ("Conv", "ConvTranspose") and node.input[1] not in initializers:
            problems.append(f"{node.name}: convolution weights must be initializers")
    declared = {t.name: t for t in spec.inputs}
    for value in model.graph.input:
        if value.name not in declared:
            problems.append(f"graph input {value.name} missing from the export descriptor")
            continue
        dims = value.type.tensor_type.shape.dim
        if len(dims) != len(declared[value.name].dims):
            problems.append(f"input {value.name}: rank {len(dims)} but the descriptor says {declared[value.name].dims}")
        for axis, d in enumerate(dims):
            fixed = d.HasField("dim_value")
            expect = declared[value.name].dims[axis]
            if fixed and isinstance(expect, int) and d.dim_value != expect:
                problems.append(f"input {value.name} axis {axis}: {d.dim_value} in the graph, {expect} declared")
            if not fixed and isinstance(expect, int):
                problems.append(f"input {value.name} axis {axis}: dynamic in the graph but fixed ({expect}) declared")
    return problems


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, capability: tuple[int, int], fp16: bool) -> str:
    """The engine cache key: a change of any part means the cached engine is not for this graph or machine."""
    text = json.dumps([onnx_sha256, trt_version, gpu_name, list(capability), fp16])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TensorRTBackend(Backend):
    """``path``: an ``.onnx`` export (the engine is built or taken from the cache) or an ``.engine`` built by this
    class (its ``.json`` sidecar names the ONNX it came from, so a stale engine is rebuilt instead of failing)."""

    name = "tensorrt"

    def __init__(self, path: str | Path, fp16: bool = True, cache_dir: str | Path | None = None, **_: Any) -> None:
        if Path(path).suffix.lower() == ".onnx" and "quantization" in read_metadata(path):
            raise BackendError(
                f"{path} is the int8 copy for ONNX Runtime on CPUs (activations with zero points, which TensorRT's "
                "explicit int8 does not take); build the TensorRT engine from the fp32 export (fp16 on the GPU)"
            )
        try:
            import tensorrt as trt
            import torch
        except ImportError as exc:
            raise BackendError("the tensorrt backend needs TensorRT and torch with CUDA") from exc
        if not torch.cuda.is_available():
            raise BackendError("the tensorrt backend needs a CUDA GPU; use --backend onnxruntime on this machine")
        from vb_perception.offline.export import export_dir

        self.trt, self.torch = trt, torch
        p = Path(path)
        if p.suffix.lower() in (".engine", ".plan"):
            sidecar = json.loads(p.with_suffix(".json").read_text()) if p.with_suffix(".json").is_file() else {}
            onnx_path = Path(sidecar.get("onnx", ""))
            engine_path = p
        else:
            onnx_path, engine_path = p, None
        if not onnx_path.is_file():
            raise BackendError(f"{path}: the ONNX file this engine was built from is missing; export it again")
        super().__init__(read_spec(onnx_path))
        gpu = torch.cuda.get_device_name()
        cc = torch.cuda.get_device_capability()
        key = engine_key(_sha256(onnx_path), trt.__version__, gpu, cc, fp16)
        cache = Path(cache_dir) if cache_dir else export_dir() / "engines"
        cache.mkdir(parents=True, exist_ok=True)
        engine_path = engine_path or cache / f"{onnx_path.stem}-{key}.engine"
        meta_path = engine_path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if not engine_path.is_file() or meta.get("key") != key:
            if engine_path.is_file():
                log.warning("cached engine %s is for another graph, TensorRT or GPU; rebuilding", engine_path)
            self._build(onnx_path, engine_path, cache / "timing.cache", fp16)
            meta_path.write_text(json.dumps({"key": key, "onnx": str(onnx_path), "gpu": gpu, "trt": trt.__version__}))
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            log.warning("could not deserialize %s; rebuilding", engine_path)
            self._build(onnx_path, engine_path, cache / "timing.cache", fp16)
            self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(engine_path.read_bytes())
        self.engine_path = engine_path
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    def _build(self, onnx_path: Path, engine_path: Path, timing_path: Path, fp16: bool) -> None:
        trt = self.trt
        log.warning("building a TensorRT engine for %s (minutes, once per GPU and TensorRT version)", onnx_path.name)
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise BackendError(f"{onnx_path}: TensorRT could not parse it: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        lo, opt, hi = (self.spec.shapes(i) for i in range(3))
        for t in self.spec.inputs:
            profile.set_shape(t.name, lo[t.name], opt[t.name], hi[t.name])
        config.add_optimization_profile(profile)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"{onnx_path}: the TensorRT build failed (see the TensorRT log above)")
        engine_path.write_bytes(bytes(serialized))
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        self.spec.check(feeds)
        keep = []
        with torch.cuda.stream(self.stream):
            for t in self.inputs:
                x = torch.from_numpy(np.ascontiguousarray(feeds[t.name])).to("cuda", non_blocking=True)
                keep.append(x)
                self.context.set_input_shape(t.name, tuple(x.shape))
                self.context.set_tensor_address(t.name, x.data_ptr())
            outs = {}
            for t in self.outputs:
                out = torch.empty(tuple(self.context.get_tensor_shape(t.name)), dtype=torch.float32, device="cuda")
                outs[t.name] = out
                self.context.set_tensor_address(t.name, out.data_ptr())
            self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return {k: v.cpu().numpy() for k, v in outs.items()}

    def close(self) -> None:
        self.context = None
        self.engine = None
