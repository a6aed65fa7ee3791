"""ONNX Runtime: the CPU execution provider here; CUDA or TensorRT providers when the installed build has them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.runtime.base import Backend, BackendError, log
from vb_perception.runtime.spec import ExportSpec

__all__ = ["SPEC_KEY", "OnnxRuntimeBackend", "read_spec"]

#: the metadata key under which the export descriptor travels inside the .onnx file.
SPEC_KEY = "vb_perception.spec"
_PREFERRED = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an ``.onnx`` file (its weights are read too: ``onnx.load`` has no header-only mode)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a broken file
        raise BackendError(f"{path}: not a readable ONNX file ({exc}); export it with `vb-perception export`") from exc
    return {p.key: p.value for p in model.metadata_props}


def read_spec(path: str | Path) -> ExportSpec:
    """The export descriptor stored in an ``.onnx`` file."""
    meta = read_metadata(path)
    if SPEC_KEY not in meta:
        raise BackendError(
            f"{path}: an ONNX file without vb_perception metadata; export it with `vb-perception export`"
        )
    return ExportSpec.from_json(meta[SPEC_KEY])


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 0, **_: Any) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendError("the onnxruntime backend needs the PyPI package onnxruntime") from exc
        super().__init__(read_spec(path))
        available = ort.get_available_providers()
        wanted = providers or [p for p in _PREFERRED if p in available]
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning("ONNX Runtime here lacks %s; using %s", missing, [p for p in wanted if p in available])
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=[p for p in wanted if p in available]
            )
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types
            raise BackendError(f"{path}: ONNX Runtime could not load it ({exc})") from exc
        self.providers = self.session.get_providers()

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.spec.check(feeds)
        names = [t.name for t in self.outputs]
        values = self.session.run(names, {t.name: feeds[t.name] for t in self.inputs})
        return dict(zip(names, values))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
