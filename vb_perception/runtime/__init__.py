"""Runtimes: torch (a model folder), ONNX Runtime (an exported .onnx), TensorRT (an engine built from it).

Each backend imports its library lazily; :func:`load_backend` picks one by name or by the model file's suffix and
logs any fallback. One export descriptor per network (:mod:`.spec`) drives export, engine build and I/O checks.
"""

from vb_perception.runtime.base import BACKENDS, Backend, BackendError, backend_for, load_backend
from vb_perception.runtime.spec import ExportSpec, SpecError, TensorSpec

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "ExportSpec",
    "SpecError",
    "TensorSpec",
    "backend_for",
    "load_backend",
]
