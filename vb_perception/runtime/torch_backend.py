"""torch: a model folder run through the unrolled few-step sampler, on CPU or CUDA (fp16 autocast on CUDA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.runtime.base import Backend, BackendError
from vb_perception.runtime.spec import generator_spec

__all__ = ["TorchBackend"]


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self, path: str | Path, steps: int | None = None, device: str = "cpu", fp16: bool | None = None, **_: Any
    ) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendError("the torch backend needs torch (pip install torch)") from exc
        from vb_perception.model.loading import load_generator
        from vb_perception.runtime.unrolled import UnrolledSampler

        self.torch = torch
        self.device = torch.device(device)
        model = load_generator(path, device=self.device)
        self.steps = steps or model.config.default_steps
        self.net = UnrolledSampler(model, self.steps).eval()
        self.fp16 = self.device.type == "cuda" if fp16 is None else fp16
        c = model.config
        super().__init__(
            generator_spec(
                model.cond_names,
                384,
                model.size_multiple,
                (c.resolution_px, c.resolution_px),
                metadata={"steps": self.steps, "model_version": c.model_version, "resolution_px": c.resolution_px},
            )
        )

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self.torch
        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])).to(self.device) for t in self.inputs]
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.fp16):
            rgb = self.net(*args)
        return {"rgb": rgb.float().cpu().numpy()}
