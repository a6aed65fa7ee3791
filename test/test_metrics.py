"""Evaluation metrics on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from vb_perception.offline.metrics import depth_metrics, instance_f1, iou, normal_metrics, summarize


def test_depth_metrics_known_values() -> None:
    gt = np.array([[1.0, 2.0], [4.0, np.nan]])
    assert depth_metrics(gt, gt)["delta1"] == 1.0 and depth_metrics(gt, gt)["abs_rel"] == 0.0
    m = depth_metrics(gt * 1.1, gt)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["delta1"] == 1.0 and m["abs_rel_aligned"] == pytest.approx(0.0, abs=1e-12)
    far = depth_metrics(gt * 1.3, gt)
    assert far["delta1"] == 0.0 and far["delta2"] == 1.0 and far["delta1_aligned"] == 1.0
    assert far["rmse_m"] == pytest.approx(np.sqrt(np.mean((0.3 * np.array([1.0, 2.0, 4.0])) ** 2)))
    holes = depth_metrics(np.array([[1.0, np.nan], [4.0, 1.0]]), gt)
    assert holes["pred_invalid_frac"] == pytest.approx(1 / 3) and holes["pixels"] == 2


def test_normal_metrics_known_angles() -> None:
    gt = np.tile([0.0, 0.0, 1.0], (4, 1))
    a = np.radians([0.0, 10.0, 20.0, 40.0])
    pred = np.stack([np.sin(a), np.zeros(4), np.cos(a)], 1)
    m = normal_metrics(pred, gt)
    assert m["mean_deg"] == pytest.approx(17.5) and m["median_deg"] == pytest.approx(15.0)
    assert (m["within_11.25"], m["within_22.5"], m["within_30"]) == (0.5, 0.75, 0.75)


def test_iou_and_instance_f1() -> None:
    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros((10, 10), bool)
    b[2:7] = True
    assert iou(a, b) == (30, 70)
    labels = np.zeros((10, 10), int)
    labels[:5] = 1
    labels[8:, 8:] = 2  # a false positive
    f = instance_f1(labels, [a, b[::-1]])
    assert (f["tp"], f["precision"], f["recall"]) == (1.0, 0.5, 0.5)
    assert instance_f1(np.zeros((4, 4), int), [])["f1"] == 1.0


def test_summarize_means_and_sums() -> None:
    s = summarize(
        [{"delta1": 1.0, "pixels": 10.0}, {"delta1": 0.5, "pixels": 5.0}, {"delta1": float("nan"), "pixels": 0.0}]
    )
    assert s == {"delta1": 0.75, "pixels": 15.0}


def test_depth_by_range_pools_pixels_per_ground_truth_range() -> None:
    from vb_perception.offline.metrics import DepthByRange

    gt = np.array([[1.0, 1.5, 3.0, 30.0]])
    by = DepthByRange()
    by.add(gt * np.array([[1.1, 1.1, 1.0, 2.0]]), gt)  # near 10 % too far, 3 m exact, 30 m twice too far
    by.add(np.array([[np.nan, 0.0, 3.0, 30.0]]), gt)  # invalid predictions are left out
    rows = {r["range"]: r for r in by.rows()}
    assert list(rows) == ["0-2 m", "2-5 m", "5-10 m", "10-20 m", "20+ m"]
    near, mid, far = rows["0-2 m"], rows["2-5 m"], rows["20+ m"]
    assert near["pixels"] == 2 and near["delta1"] == 1.0 and near["abs_rel"] == pytest.approx(0.1)
    assert near["scale"] == pytest.approx(1.1)
    assert mid["pixels"] == 2 and mid["abs_rel"] == 0.0 and mid["scale"] == pytest.approx(1.0)
    assert far["pixels"] == 2 and far["delta1"] == 0.5 and far["scale"] == pytest.approx(2**0.5)
    assert far["range_m"] == [20.0, None] and rows["5-10 m"]["pixels"] == 0 and np.isnan(rows["5-10 m"]["delta1"])
    with pytest.raises(ValueError, match="resize first"):
        by.add(np.ones((2, 2)), gt)
