"""scripts/int8_drift.py: where an int8 copy's depth drifts from fp32, edge flips against drift along an edge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scripts_loader import load_script

drift = load_script("int8_drift")


def test_flips_and_drift_along_an_edge_are_told_apart() -> None:
    d32 = np.full((2, 4), 2.0, np.float32)
    d8 = d32.copy()
    d8[0, 0] = 3.0  # a flip: 50 % off
    d8[1, :] = 2.02  # along the same edge: 1 % off
    d8[0, 3] = np.nan  # invalid in int8: left out
    e32 = np.full((2, 4), 2, np.int64)
    e8 = e32.copy()
    e8[0, 0] = 3
    dist = np.zeros((7, 2, 4), np.float32)
    dist[3, 0, 0] = 0.01  # fp32 had int8's edge 0.01 farther
    r = drift.analyse(d32, d8, e32, e8, dist, "case")
    assert r.pixels == 7
    assert r.drift == pytest.approx((0.5 + 4 * 0.01) / 7, rel=1e-5)
    assert r.flip_share == pytest.approx(1 / 7)
    assert r.flip_drift_share == pytest.approx(0.5 / 0.54, rel=1e-5)
    assert r.same_edge_drift == pytest.approx(0.04 / 7, rel=1e-5)
    assert r.flip_margin_median == pytest.approx(0.01)
    assert r.pairs == [("yellow-green -> green-cyan", 1)]


def test_a_tiny_model_with_the_depth_head_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="export needs torch")
    pytest.importorskip("onnxruntime", reason="the probe runs ONNX Runtime")
    from tiny_models import save_tiny

    model = save_tiny(tmp_path / "tiny", depth_head=True, palette_head_dim=4, focal_conditioning=True)
    out = tmp_path / "report"
    assert drift.main([str(model), "--out", str(out), "--engines", str(tmp_path / "engines")]) == 0
    rows = json.loads((out / "int8_drift.json").read_text())
    assert [r["case"] for r in rows] == ["focal length given", "no focal length"]
    for r in rows:
        assert r["pixels"] > 0 and 0.0 <= r["flip_share"] <= 1.0 and np.isfinite(r["drift"])
    assert (out / "int8_drift.png").stat().st_size > 10_000
    assert (tmp_path / "engines" / "model-int8.onnx").is_file()  # kept for a second look


def test_a_model_without_the_depth_head_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the model folder needs torch")
    from tiny_models import save_tiny

    model = save_tiny(tmp_path / "tiny")
    with pytest.raises(SystemExit, match="no depth path head"):
        drift.main([str(model), "--out", str(tmp_path / "r")])
