"""``vb-perception eval``: metrics of a model on synthetic samples (``synth`` npz) or a folder of RGB + metric depth.

Synthetic samples are asked for every task at once (one batched call per image): depth, normals, a semantic
prompt over visible classes, a referring prompt and an instance prompt, each built with a fixed seed so runs
compare. Real data (a folder with ``color.png`` + ``depth.png``, like the TUM fixture) gets depth metrics.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from vb_perception.errors import VbPerceptionError
from vb_perception.offline.metrics import (
    DepthByRange,
    depth_metrics,
    instance_f1,
    iou,
    normal_metrics,
    summarize,
)
from vb_perception.offline.synth.attributes import EXPRESSION_KINDS
from vb_perception.pipeline import DepthResult, InstancesResult, NormalsResult, Perception, SegmentationResult

__all__ = ["HELDOUT", "evaluate", "format_report"]

#: The held-out synthetic split: seeds and a scene mix training never uses (training: seed 1000, 45/25/30 mix).
HELDOUT = {"seed": 777, "mix": (("indoor", 0.34), ("tabletop", 0.33), ("street", 0.33))}


def _synthetic(pipe: Perception, folder: Path, n: int | None, out: Path, intrinsics: bool) -> dict[str, Any]:
    from tqdm import tqdm

    from vb_perception.offline.cache import SampleCache
    from vb_perception.offline.synth.attributes import expression_kind
    from vb_perception.offline.synth.examples import TrainingExample, make_example, target_for
    from vb_perception.prompts import DepthSpec, render_prompt

    cache = SampleCache(folder)
    count = min(n or len(cache), len(cache))
    depth_rows, normal_rows, inst_rows = [], [], []
    by_range, by_family = DepthByRange(), dict[str, list[dict[str, float]]]()
    sem_ious, ref_ious, ref_i, ref_u, color_err, confused = [], [], 0, 0, [], []
    sem_objects: list[bool] = []  # per semantic IoU: an object class (chair, car) or stuff (wall, road)
    ref_by_kind: dict[str, list[float]] = {}
    ref_by_area: dict[str, list[float]] = {}
    panels = []
    for i in tqdm(range(count), desc="eval", unit="sample"):
        s = cache[i]
        rng = random.Random(f"eval/{i}")
        depth = DepthSpec()  # always the paper's encoding: augmentation colormaps are for training
        examples = [TrainingExample(s.rgb, render_prompt(depth, rng=rng), depth, target_for(depth, s))]
        examples += [make_example(s, rng, task=t) for t in ("normals", "semantic", "referring", "instances")]
        fx_px = float(s.k[0, 0]) if intrinsics else None
        results = pipe(s.rgb, [e.prompt for e in examples], seed=i, fx_px=fx_px)
        for ex, r in zip(examples, results):
            if isinstance(r, DepthResult):
                depth_rows.append(depth_metrics(r.depth_m, s.depth_m))
                by_family.setdefault(s.family, []).append(depth_rows[-1])
                by_range.add(r.depth_m, s.depth_m)
            elif isinstance(r, NormalsResult):
                normal_rows.append(normal_metrics(r.normals, s.normals))
            elif isinstance(r, SegmentationResult):
                gt_target = ex.target
                for k, rgb in enumerate(r.colors.tolist(), start=1):
                    gt = np.all(gt_target == rgb, -1)
                    inter, union = iou(r.labels == k, gt)
                    if gt.any():
                        diff = r.generated.astype(np.float32)[gt] - np.array(rgb, np.float32)
                        color_err.append(float(np.linalg.norm(diff, axis=-1).mean()))
                        confused.append(float(np.mean((r.labels[gt] != k) & (r.labels[gt] != 0))))
                    if union == 0:
                        continue
                    if ex.spec.task == "semantic":
                        sem_ious.append(inter / union)
                        name = ex.spec.classes[k - 1][0]  # type: ignore[union-attr]
                        sem_objects.append(any(j.is_object for j in s.instances if j.class_name == name))
                    else:
                        ref_ious.append(inter / union)
                        ref_i, ref_u = ref_i + inter, ref_u + union
                        expression = ex.spec.targets[k - 1][0]  # type: ignore[union-attr]
                        ref_by_kind.setdefault(expression_kind(expression), []).append(inter / union)
                        ref_by_area.setdefault(_area_bin(float(gt.mean())), []).append(inter / union)
            elif isinstance(r, InstancesResult):
                members = [j.id for j in s.instances if j.class_name == r.class_name]
                inst_rows.append(instance_f1(r.labels, [s.instance_ids == m for m in members]))
        if len(panels) < 6:
            panels.append((s, examples, results))
    report: dict[str, Any] = {
        "samples": count,
        "depth": summarize(depth_rows),
        "depth_by_range": by_range.rows(),
        "depth_by_family": {
            f: {"samples": len(rows)} | {k: v for k, v in summarize(rows).items() if k in _FAMILY_KEYS}
            for f, rows in sorted(by_family.items())
        },
        "normals": summarize(normal_rows),
        "semantic": {
            "miou": float(np.mean(sem_ious)) if sem_ious else float("nan"),
            "classes": len(sem_ious),
            "by_kind": _giou_rows(
                {k: [v for v, o in zip(sem_ious, sem_objects) if o == (k == "objects")] for k in ("objects", "stuff")},
                ("objects", "stuff"),
            ),
        },
        "referring": {
            "ciou": ref_i / ref_u if ref_u else float("nan"),
            "giou": float(np.mean(ref_ious)) if ref_ious else float("nan"),
            "targets": len(ref_ious),
            # mean IoU (gIoU) by what the expression relies on (synth.attributes.EXPRESSION_KINDS), by target area
            "by_kind": _giou_rows(ref_by_kind, (*EXPRESSION_KINDS, "other")),
            "by_area": _giou_rows(ref_by_area, AREA_BINS),
        },
        "instances": summarize(inst_rows),
        "colors": {
            "mean_error_rgb": float(np.mean(color_err)) if color_err else float("nan"),
            "confused_frac": float(np.mean(confused)) if confused else float("nan"),
        },
    }
    _panels(out / "eval_panels.png", panels)
    plot_depth_by_range(out / "eval_depth_by_range.png", report["depth_by_range"])
    return report


_FAMILY_KEYS = ("delta1", "abs_rel", "rmse_m", "delta1_aligned")
#: Referring targets by their share of the image's pixels (at 64 px, 1 % is about 41 pixels).
AREA_BINS = ("< 1 %", "1-5 %", ">= 5 %")


def _area_bin(fraction: float) -> str:
    return AREA_BINS[0] if fraction < 0.01 else AREA_BINS[1] if fraction < 0.05 else AREA_BINS[2]


def _giou_rows(ious: dict[str, list[float]], order: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """``{group: {"targets": n, "mean_iou": mean IoU}}`` in ``order``, groups without targets left out."""
    return {g: {"targets": len(ious[g]), "mean_iou": float(np.mean(ious[g]))} for g in order if ious.get(g)}


def plot_depth_by_range(path: Path, rows: list[dict[str, Any]], title: str = "metric depth by range") -> None:
    """:func:`~vb_perception.offline.report.depth_by_range_figure` of ``rows``, saved as ``path``."""
    import matplotlib.pyplot as plt

    from vb_perception.offline.report import depth_by_range_figure

    fig = depth_by_range_figure({title: rows})
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _panels(path: Path, rows: list[Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return
    ncol = 1 + 2 * max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.6 * ncol, 1.7 * len(rows)), squeeze=False)
    for row, (s, examples, results) in enumerate(rows):
        axes[row, 0].imshow(s.rgb)
        axes[row, 0].set_title("input", fontsize=6)
        for j, (ex, r) in enumerate(zip(examples, results)):
            axes[row, 1 + 2 * j].imshow(ex.target)
            axes[row, 1 + 2 * j].set_title(f"{ex.spec.task} target", fontsize=6)
            axes[row, 2 + 2 * j].imshow(r.generated)
            axes[row, 2 + 2 * j].set_title("generated", fontsize=6)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _real(pipe: Perception, folder: Path, depth_scale_m: float | None, fx_px: float | None) -> dict[str, Any]:
    from vb_perception.imageio import read_depth, read_rgb

    color, depth = folder / "color.png", folder / "depth.png"
    if not (color.is_file() and depth.is_file()):
        raise VbPerceptionError(f"{folder}: expected synth .npz samples, or color.png + depth.png (metric depth)")
    gt = read_depth(depth, scale_m=depth_scale_m)
    (r,) = pipe(read_rgb(color), ["Generate a metric depth map of this image."], fx_px=fx_px)
    assert isinstance(r, DepthResult)
    by_range = DepthByRange()
    by_range.add(r.depth_m, gt)
    return {
        "samples": 1,
        "fx_px": fx_px,
        "depth": depth_metrics(r.depth_m, gt),
        "depth_by_range": by_range.rows(),
    }


def evaluate(
    data: str | Path,
    out: str | Path,
    model_dir: str | None = None,
    steps: int | None = None,
    n: int | None = None,
    depth_scale_m: float | None = None,
    device: str = "cpu",
    backend: str = "torch",
    engine: str | Path | None = None,
    fx_px: float | None = None,
    intrinsics: bool = True,
    flip_average: bool = False,
) -> dict[str, Any]:
    """Evaluate and write ``eval.json`` (+ ``eval_panels.png`` for synthetic data) into ``out``. ``backend`` and
    ``engine`` as in :class:`~vb_perception.pipeline.Perception` (e.g. an int8 export on onnxruntime).

    Models with focal conditioning get each synthetic sample's focal length, or ``fx_px`` for a real folder, unless
    ``intrinsics`` is False (the unknown-camera case); other models ignore it. ``flip_average`` as in
    :class:`~vb_perception.pipeline.Perception`."""
    folder, out_dir = Path(data), Path(out)
    if not folder.is_dir():
        raise VbPerceptionError(f"{folder}: no such folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe = Perception(model_dir, device=device, steps=steps, backend=backend, engine=engine, flip_average=flip_average)
    synthetic = any(folder.glob("*.npz"))
    if synthetic:
        report = _synthetic(pipe, folder, n, out_dir, intrinsics)
    else:
        report = _real(pipe, folder, depth_scale_m, fx_px if intrinsics else None)
        plot_depth_by_range(
            out_dir / "eval_depth_by_range.png", report["depth_by_range"], f"metric depth: {folder.name}"
        )
    report = (
        {
            "data": str(folder),
            "model": str(pipe.model_dir),
            "model_version": pipe.model_version,
            "steps": pipe.steps,
            "backend": backend,
            "focal_length": (
                "not used by the model"
                if not pipe.uses_focal
                else "given"
                if intrinsics and (synthetic or fx_px is not None)
                else "unknown to the model"
            ),
            "flip_average": flip_average,
        }
        | ({"engine": str(pipe.engine_path)} if pipe.engine_path else {})
        | report
    )
    (out_dir / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _f(section: dict[str, Any], *keys: str, digits: int = 3) -> str:
    return " / ".join(f"{section.get(k, float('nan')):.{digits}f}" for k in keys)


def format_report(r: dict[str, Any]) -> str:
    """A markdown table of the headline numbers."""
    d, nm = r.get("depth", {}), r.get("normals", {})
    rows = [
        ("depth δ1 / δ2 / δ3", _f(d, "delta1", "delta2", "delta3")),
        ("depth AbsRel / RMSE [m]", _f(d, "abs_rel", "rmse_m")),
        ("depth δ1 / AbsRel, median-scaled (reference)", _f(d, "delta1_aligned", "abs_rel_aligned")),
    ]
    if nm:
        rows.append(("normals mean / median [deg]", _f(nm, "mean_deg", "median_deg", digits=1)))
        rows.append(("normals within 11.25 / 22.5 / 30 deg", _f(nm, "within_11.25", "within_22.5", "within_30")))
    if "semantic" in r:
        rows.append(("semantic mIoU", _f(r["semantic"], "miou")))
        rows.append(("referring cIoU / gIoU", _f(r["referring"], "ciou", "giou")))
        rows.append(("instances F1 @ IoU 0.5", _f(r["instances"], "f1")))
        rows.append(
            ("requested-colour error [RGB] / confused pixels", _f(r["colors"], "mean_error_rgb", "confused_frac"))
        )
    head = f"{r.get('model_version', '?')} on {r['data']} ({r['samples']} samples, {r.get('steps')} step(s))"
    if r.get("focal_length", "").startswith(("given", "unknown")):
        head += f"; focal length {r['focal_length']}"
    if r.get("flip_average"):
        head += "; depth and normals averaged with the mirrored image"
    lines = [head, "", "| metric | value |", "|---|---:|"] + [f"| {a} | {b} |" for a, b in rows]
    kinds = r.get("referring", {}).get("by_kind", {})
    if kinds:
        lines += ["", "| referring expression / semantic class | targets | mean IoU |", "|---|---:|---:|"]
        groups = list(kinds.items()) + [(f"area {a}", v) for a, v in r["referring"].get("by_area", {}).items()]
        groups += [(f"semantic: {g}", v) for g, v in r.get("semantic", {}).get("by_kind", {}).items()]
        lines += [f"| {g} | {v['targets']} | {v['mean_iou']:.3f} |" for g, v in groups]
    ranges = [x for x in r.get("depth_by_range", []) if x["pixels"]]
    if ranges:
        lines += ["", "| depth range | pixels | δ1 | AbsRel | pred / true |", "|---|---:|---:|---:|---:|"]
        lines += [
            f"| {x['range']} | {x['pixels']} | {x['delta1']:.3f} | {x['abs_rel']:.3f} | ×{x['scale']:.2f} |"
            for x in ranges
        ]
    return "\n".join(lines)
