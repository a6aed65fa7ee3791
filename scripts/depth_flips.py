#!/usr/bin/env python3
"""Near pixels that decode far: where a model's depth over-estimates by more than a factor come from.

Usage: python scripts/depth_flips.py [MODEL_DIR] [--data out/heldout64] [--n 100] [--factor 4] [--family tabletop]

For every held-out sample of the family it runs the depth prompt (as ``eval`` does: same prompts, seeds and focal
lengths), keeps the depth path head's two inputs (the free RGB output and the correction channel) and reports, over
the pixels whose prediction is more than ``factor`` times their true depth: the true and predicted curve values,
the curve value the free RGB alone decodes to, the correction, and the free RGB. It needs a model with the depth
path head (``depth_head: true``).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import numpy as np


def main() -> int:
    from vb_perception.codecs import torch_ops
    from vb_perception.codecs.depth import depth_to_curve
    from vb_perception.offline.cache import SampleCache
    from vb_perception.pipeline import Perception
    from vb_perception.prompts import DepthSpec, render_prompt

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--data", default="out/heldout64")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--family", default="tabletop", help="scene family, or 'all'")
    args = parser.parse_args()

    pipe = Perception(args.model)
    model = pipe.model
    if model is None or not getattr(model.config, "depth_head", False):
        raise SystemExit(f"{pipe.model_dir} has no depth path head (depth_head: true); nothing to inspect")
    seen: dict[str, Any] = {}
    depth_path = model._depth_path

    def keep_inputs(free: Any, correction: Any, *rest: Any) -> Any:
        seen["free"], seen["c"] = free.detach().clone(), correction.detach().clone()
        return depth_path(free, correction, *rest)

    model._depth_path = keep_inputs  # type: ignore[method-assign]
    cache = SampleCache(args.data)
    rows, pixels = [], 0
    for i in range(min(args.n, len(cache))):
        s = cache[i]
        if args.family != "all" and s.family != args.family:
            continue
        rng = random.Random(f"eval/{i}")  # evaluate.py's prompt for sample i
        r = pipe(s.rgb, [render_prompt(DepthSpec(), rng=rng)], seed=i, fx_px=float(s.k[0, 0]))[0]
        free01 = (seen["free"].clamp(-1, 1) + 1) / 2
        f_free = torch_ops.rgb_to_curve(free01, channel_dim=1)[0].numpy()
        if f_free.shape != s.depth_m.shape:
            raise SystemExit(f"{args.data}: sample {i} is not at the model's processing size; use a synth split")
        ok = np.isfinite(s.depth_m) & (s.depth_m > 0) & np.isfinite(r.depth_m)
        pixels += int(ok.sum())
        f_true = depth_to_curve(np.where(ok, s.depth_m, 1.0))
        f_pred = depth_to_curve(np.where(ok, r.depth_m, 1.0))
        c = seen["c"][0].numpy()
        for y, x in zip(*np.nonzero(ok & (r.depth_m > args.factor * s.depth_m))):
            rows.append(
                (s.depth_m[y, x], f_true[y, x], f_pred[y, x], f_free[y, x], c[y, x], *free01[0, :, y, x].tolist())
            )
    if not rows:
        print(f"no pixel over-estimated by more than {args.factor}x in {pixels} pixels")
        return 0
    a = np.array(rows, dtype=np.float64)
    med = np.median(a, axis=0)
    rgb = "(" + ", ".join(f"{v:.2f}" for v in med[5:]) + ")"
    print(f"{len(a)} of {pixels} pixels ({len(a) / pixels:.2%}) over-estimated by more than {args.factor}x")
    print("| median | true depth [m] | true curve | predicted curve | free RGB's curve | correction | free RGB |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print(f"| | {med[0]:.2f} | {med[1]:.3f} | {med[2]:.3f} | {med[3]:.3f} | {med[4]:+.3f} | {rgb} |")
    print(f"already far from the free RGB (its curve > true + 0.3): {np.mean(a[:, 3] > a[:, 1] + 0.3):.1%}")
    print(f"pushed far by the correction (> +0.3): {np.mean(a[:, 4] > 0.3):.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
