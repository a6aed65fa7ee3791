"""The backend interface: load a network, declare its inputs and outputs, run it on numpy arrays, close it."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.errors import VbPerceptionError
from vb_perception.runtime.spec import ExportSpec, TensorSpec

__all__ = ["BACKENDS", "Backend", "BackendError", "backend_for", "load_backend"]

log = logging.getLogger("vb_perception.runtime")

#: backend names, fastest first: the order of fallbacks.
BACKENDS = ("tensorrt", "onnxruntime", "torch")


class BackendError(VbPerceptionError):
    """A backend is not installed, or a model file does not suit it."""


class Backend(ABC):
    """One loaded network. ``infer`` takes and returns numpy arrays named as in ``spec``."""

    name: str = "?"

    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.spec.outputs

    @property
    def metadata(self) -> dict[str, Any]:
        return self.spec.metadata

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the session / engine / device memory."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def backend_for(path: str | Path) -> str:
    """The backend a model file asks for: ``.onnx`` -> onnxruntime, ``.engine`` / ``.plan`` -> tensorrt, a model
    folder -> torch."""
    p = Path(path)
    if p.is_dir():
        return "torch"
    suffix = p.suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix in (".engine", ".plan"):
        return "tensorrt"
    raise BackendError(f"{p}: cannot tell the backend from the name; pass a model folder, a .onnx or a .engine file")


def load_backend(path: str | Path, name: str | None = None, **options: Any) -> Backend:
    """Open ``path`` with backend ``name`` (default: from the file). A missing library falls back to the next
    backend that can read the file, with a log line (TensorRT -> ONNX Runtime for an ``.onnx``)."""
    chosen = name or backend_for(path)
    if chosen not in BACKENDS:
        raise BackendError(f"unknown backend {chosen!r}; use one of {', '.join(BACKENDS)}")
    if chosen == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            if Path(path).suffix.lower() != ".onnx":
                raise BackendError(
                    "the tensorrt backend needs the TensorRT Python package (pip install tensorrt, on a CUDA machine)"
                ) from None
            log.warning("TensorRT is not installed; running %s with ONNX Runtime instead", path)
            chosen = "onnxruntime"
        else:
            from vb_perception.runtime.tensorrt_backend import TensorRTBackend

            return TensorRTBackend(path, **options)
    if chosen == "onnxruntime":
        from vb_perception.runtime.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)
    from vb_perception.runtime.torch_backend import TorchBackend

    return TorchBackend(path, **options)
