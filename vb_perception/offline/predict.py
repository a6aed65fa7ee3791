"""``vb-perception predict``: run the generator on image files and write decoded outputs, raw generations and a panel.

Per image, in ``OUT/<image stem>/``: ``depth_m.npy`` (float32 metres, input resolution, NaN invalid),
``normals.npy`` (float32 HxWx3, paper camera frame), ``segmentation.npz`` (``labels`` int32: 0 background, i = i-th
class of the prompt; ``classes``), ``instances.npz``, ``generated_<n>_<task>.png`` and ``panel.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vb_perception.errors import VbPerceptionError
from vb_perception.imageio import read_rgb, write_rgb
from vb_perception.pipeline import DepthResult, InstancesResult, NormalsResult, Perception, Result, SegmentationResult

__all__ = ["TASK_PROMPTS", "predict_files"]

TASK_PROMPTS = {"depth": "Generate a metric depth map of this image.", "normals": "Estimate the surface normals."}


def prompts_for(tasks: Sequence[str], prompts: Sequence[str]) -> list[str]:
    """The prompts to run: one per ``--task`` (depth, normals; segment needs ``--prompt``) plus every ``--prompt``."""
    out = []
    for task in tasks:
        if task == "segment":
            if not prompts:
                raise VbPerceptionError("--task segment needs --prompt, e.g. --prompt 'Segment the chair in red'")
            continue
        if task not in TASK_PROMPTS:
            raise VbPerceptionError(f"unknown task {task!r}; use depth, normals or segment")
        out.append(TASK_PROMPTS[task])
    return out + list(prompts)


def _panel(path: Path, image: np.ndarray, results: list[Result]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vb_perception.codecs import encode_normals
    from vb_perception.offline.synth.preview import instance_colors

    fig, axes = plt.subplots(1, len(results) + 1, figsize=(3.6 * (len(results) + 1), 3.2), squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title("input", fontsize=8)
    for ax, r in zip(axes[0, 1:], results):
        if isinstance(r, DepthResult):
            im = ax.imshow(r.depth_m, cmap="turbo")
            fig.colorbar(im, ax=ax, shrink=0.7, label="m")
            title = "depth [m]"
        elif isinstance(r, NormalsResult):
            ax.imshow(encode_normals(r.normals))
            title = "normals"
        elif isinstance(r, SegmentationResult):
            palette = np.concatenate([[[0, 0, 0]], r.colors]).astype(np.uint8)
            ax.imshow((0.45 * image + 0.55 * palette[r.labels]).astype(np.uint8))
            title = ", ".join(r.class_names)[:40]
        else:
            assert isinstance(r, InstancesResult)
            ax.imshow(instance_colors(r.labels))
            title = f"{r.count} x {r.class_name}"
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def predict_files(
    images: Sequence[str | Path],
    prompts: Sequence[str],
    out_dir: Path,
    model_dir: str | None = None,
    steps: int | None = None,
    device: str = "cpu",
    backend: str = "torch",
    engine: str | None = None,
    fx_px: float | None = None,
    flip_average: bool = False,
) -> list[Path]:
    """Run ``prompts`` on each image (the model loads once); returns the per-image output folders. ``fx_px``: the
    images' focal length in pixels, for models with focal conditioning; ``flip_average`` as in
    :class:`~vb_perception.pipeline.Perception`."""
    from tqdm import tqdm

    if not prompts:
        raise VbPerceptionError("nothing to predict: give --task and/or --prompt")
    pipe = Perception(model_dir, device=device, steps=steps, backend=backend, engine=engine, flip_average=flip_average)
    folders = []
    for path in tqdm([Path(p) for p in images], desc="predict", unit="image", disable=len(images) < 2):
        image = read_rgb(path)
        results = pipe(image, list(prompts), fx_px=fx_px)
        folder = out_dir / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        summary = []
        for i, r in enumerate(results):
            task = type(r).__name__.replace("Result", "").lower()
            write_rgb(folder / f"generated_{i}_{task}.png", r.generated)
            if isinstance(r, DepthResult):
                np.save(folder / "depth_m.npy", r.depth_m)
            elif isinstance(r, NormalsResult):
                np.save(folder / "normals.npy", r.normals)
            elif isinstance(r, SegmentationResult):
                np.savez_compressed(folder / "segmentation.npz", labels=r.labels, classes=np.array(r.class_names))
            else:
                np.savez_compressed(folder / "instances.npz", labels=r.labels, class_name=np.array(r.class_name))
            summary.append({"prompt": r.prompt, "task": task})
        _panel(folder / "panel.png", image, results)
        (folder / "outputs.json").write_text(
            json.dumps(
                {
                    "image": str(path),
                    "model": str(pipe.model_dir),
                    "model_version": pipe.model_version,
                    "backend": pipe.backend_name,
                    "steps": pipe.steps,
                    "fx_px": fx_px if pipe.uses_focal else None,  # None: the model did not use a focal length
                    "outputs": summary,
                },
                indent=1,
            )
            + "\n"
        )
        folders.append(folder)
    return folders
