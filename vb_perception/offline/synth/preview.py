"""Contact sheet of synthetic samples: RGB | depth | normals | instances | a prompt and its target."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs import encode_depth, encode_normals
from vb_perception.offline.synth.dataset import SynthConfig, render_sample
from vb_perception.offline.synth.examples import TASKS, make_example
from vb_perception.offline.synth.raycast import make_raycaster

__all__ = ["instance_colors", "write_preview"]


def instance_colors(ids: NDArray[np.int32]) -> NDArray[np.uint8]:
    """A fixed pseudo-random colour per instance id (0 = black), for looking at instance maps."""
    table = np.random.default_rng(12345).integers(40, 256, (int(ids.max(initial=0)) + 1, 3)).astype(np.uint8)
    table[0] = 0
    return table[ids]


def write_preview(cfg: SynthConfig, n: int, out: Path) -> Path:
    """Render samples 0..n-1 of ``cfg`` and write a contact sheet PNG to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    caster = make_raycaster(cfg.backend, cfg.device)
    fig, axes = plt.subplots(
        n, 6, figsize=(15, 2.6 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 1, 1, 1, 1, 1.6]}
    )
    for row in tqdm(range(n), desc="synth-preview", unit="sample"):
        s = render_sample(cfg, row, caster)
        ex = make_example(s, random.Random(f"{cfg.seed}/{row}/preview"), task=TASKS[row % len(TASKS)])
        panels = [
            (s.rgb, f"#{row} {s.family}"),
            (encode_depth(s.depth_m, invalid="max"), f"depth {np.nanmin(s.depth_m):.1f}-{np.nanmax(s.depth_m):.1f} m"),
            (encode_normals(s.normals), "normals (camera)"),
            (instance_colors(s.instance_ids), f"{len(s.instances)} instances"),
            (ex.target, f"target: {ex.spec.task}"),
        ]
        for ax, (img, title) in zip(axes[row], panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        names = ", ".join(sorted({i.class_name for i in s.instances}))
        text = "\n".join(textwrap.wrap(f"prompt: {ex.prompt}", 52)[:6] + textwrap.wrap(f"visible: {names}", 52)[:3])
        axes[row, 5].text(0.0, 0.95, text, fontsize=7, va="top", family="monospace")
        axes[row, 5].set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
