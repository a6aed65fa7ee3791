"""Evaluation metrics, in numpy: depth (metric and scale-aligned), normals, semantic / referring IoU, instance F1.

Depth metrics follow the usual definitions on pixels where the ground truth is valid (finite, > 0); pixels where the
prediction is invalid there are counted in ``pred_invalid_frac`` and left out of the averages.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEPTH_RANGES_M",
    "DepthByRange",
    "depth_metrics",
    "instance_f1",
    "iou",
    "normal_metrics",
    "summarize",
]

#: Ground-truth depth ranges [m] that :class:`DepthByRange` reports separately: manipulation, rooms, halls, streets.
DEPTH_RANGES_M: tuple[float, ...] = (0.0, 2.0, 5.0, 10.0, 20.0, float("inf"))


DELTA1_RATIO = 1.25
"""δ1 counts pixels whose max(pred / gt, gt / pred) is below this (δ2, δ3: its square and cube)."""


def _valid_pairs(
    pred_m: NDArray[np.floating], gt_m: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """The (pred, gt) pixel pairs every depth metric scores: ground truth finite and > 0 (else the pixel has no
    truth) and a prediction finite and > 0. Returns both as float64 vectors and the number of pixels with truth."""
    gt = np.asarray(gt_m, dtype=np.float64)
    pred = np.asarray(pred_m, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape; resize first")
    valid = np.isfinite(gt) & (gt > 0)
    ok = valid & np.isfinite(pred) & (pred > 0)
    return pred[ok], gt[ok], int(valid.sum())


def depth_metrics(pred_m: NDArray[np.floating], gt_m: NDArray[np.floating]) -> dict[str, float]:
    """δ1/δ2/δ3, AbsRel, RMSE (metric, no alignment) and the same after median scaling (``*_aligned``)."""
    p, g, n_valid = _valid_pairs(pred_m, gt_m)
    out = {"pixels": float(p.size), "pred_invalid_frac": float(1 - p.size / max(n_valid, 1))}
    if not p.size:
        return out | {
            k: float("nan")
            for k in (
                "delta1",
                "delta2",
                "delta3",
                "abs_rel",
                "rmse_m",
                "delta1_aligned",
                "abs_rel_aligned",
                "rmse_m_aligned",
            )
        }
    for suffix, q in (("", p), ("_aligned", p * np.median(g) / np.median(p))):
        ratio = np.maximum(q / g, g / q)
        out[f"delta1{suffix}"] = float(np.mean(ratio < DELTA1_RATIO))
        out[f"abs_rel{suffix}"] = float(np.mean(np.abs(q - g) / g))
        out[f"rmse_m{suffix}"] = float(np.sqrt(np.mean((q - g) ** 2)))
        if not suffix:
            out["delta2"] = float(np.mean(ratio < DELTA1_RATIO**2))
            out["delta3"] = float(np.mean(ratio < DELTA1_RATIO**3))
    return out


def normal_metrics(pred: NDArray[np.floating], gt: NDArray[np.floating]) -> dict[str, float]:
    """Mean / median angle (degrees) and the share of pixels within 11.25, 22.5 and 30 degrees."""
    ok = np.isfinite(gt).all(-1) & np.isfinite(pred).all(-1)
    if not ok.any():
        return {
            "mean_deg": float("nan"),
            "median_deg": float("nan"),
            "within_11.25": float("nan"),
            "within_22.5": float("nan"),
            "within_30": float("nan"),
        }
    cos = np.clip(np.sum(pred[ok] * gt[ok], -1), -1.0, 1.0)
    ang = np.degrees(np.arccos(cos))
    return {
        "mean_deg": float(ang.mean()),
        "median_deg": float(np.median(ang)),
        "within_11.25": float(np.mean(ang < 11.25)),
        "within_22.5": float(np.mean(ang < 22.5)),
        "within_30": float(np.mean(ang < 30.0)),
    }


def iou(pred: NDArray[np.bool_], gt: NDArray[np.bool_]) -> tuple[int, int]:
    """(intersection, union) pixel counts of two masks."""
    return int(np.logical_and(pred, gt).sum()), int(np.logical_or(pred, gt).sum())


def instance_f1(
    pred_labels: NDArray[np.integer], gt_masks: Iterable[NDArray[np.bool_]], threshold: float = 0.5
) -> dict[str, float]:
    """Greedy one-to-one matching of predicted instances (labels 1..K) to ground-truth masks at IoU >= threshold."""
    gts = list(gt_masks)
    preds = [pred_labels == i for i in range(1, int(pred_labels.max(initial=0)) + 1)]
    pairs = sorted(
        (
            (i_, u_, gi, pi)
            for gi, g in enumerate(gts)
            for pi, p in enumerate(preds)
            for i_, u_ in [iou(p, g)]
            if u_ and i_ / u_ >= threshold
        ),
        key=lambda x: -x[0] / x[1],
    )
    used_g, used_p = set(), set()
    for _, _, gi, pi in pairs:
        if gi not in used_g and pi not in used_p:
            used_g.add(gi)
            used_p.add(pi)
    tp = len(used_g)
    precision = tp / len(preds) if preds else (1.0 if not gts else 0.0)
    recall = tp / len(gts) if gts else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "tp": float(tp),
        "pred": float(len(preds)),
        "gt": float(len(gts)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every key over rows (NaN-aware); ``pixels`` are summed."""
    keys = sorted({k for r in rows for k in r})
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows if k in r], dtype=np.float64)
        out[k] = (
            float(np.nansum(vals))
            if k == "pixels"
            else float(np.nanmean(vals))
            if np.isfinite(vals).any()
            else float("nan")
        )
    return out


class DepthByRange:
    """Metric depth errors per ground-truth range (:data:`DEPTH_RANGES_M`), pooled over the pixels of many images:
    where a model is good (near, far) and whether it over- or under-estimates there.

    ``add(pred_m, gt_m)`` per image (same shape; pixels valid as in :func:`depth_metrics`), then ``rows()``: one dict
    per range with ``range`` (a label), ``range_m`` [lo, hi or None], ``pixels``, ``delta1``, ``abs_rel`` and
    ``scale`` (the geometric mean of pred / gt: above 1 means too far)."""

    def __init__(self, edges_m: tuple[float, ...] = DEPTH_RANGES_M) -> None:
        self.edges_m = edges_m
        self._sums = np.zeros((len(edges_m) - 1, 4))  # pixels, delta1 count, abs_rel sum, log-ratio sum

    def add(self, pred_m: NDArray[np.floating], gt_m: NDArray[np.floating]) -> None:
        p, g, _ = _valid_pairs(pred_m, gt_m)
        which = np.searchsorted(self.edges_m, g, side="right") - 1
        log_ratio = np.log(p / g)
        for k in range(len(self.edges_m) - 1):
            m = which == k
            self._sums[k] += (
                m.sum(),
                np.sum(np.abs(log_ratio[m]) < np.log(DELTA1_RATIO)),
                np.sum(np.abs(p[m] - g[m]) / g[m]),
                np.sum(log_ratio[m]),
            )

    def rows(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for k, (n, d1, rel, logr) in enumerate(self._sums):
            nan = float("nan")
            lo, hi = self.edges_m[k], self.edges_m[k + 1]
            out.append(
                {
                    "range": f"{lo:g}-{hi:g} m" if np.isfinite(hi) else f"{lo:g}+ m",
                    "range_m": [lo, hi if np.isfinite(hi) else None],  # None: no upper bound (JSON has no inf)
                    "pixels": int(n),
                    "delta1": d1 / n if n else nan,
                    "abs_rel": rel / n if n else nan,
                    "scale": float(np.exp(logr / n)) if n else nan,
                }
            )
        return out
