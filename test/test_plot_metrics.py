"""scripts/plot_metrics.py: a run's metrics.csv as a picture, runs one after the other."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scripts_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_metrics.py"
pm = load_script("plot_metrics")

HEADER = "step,loss,rgb,depth_curve,depth_log,normals_cos,seg_ce,lr,samples_per_s,elapsed_s\n"


def _csv(folder: Path, steps: range) -> Path:
    folder.mkdir(parents=True)
    rows = [f"{s},{1 / s:.4f},0.1,0.1,0.1,0.05,0.2,{3e-4 * (1 - s / 100):.2e},400,{s}\n" for s in steps]
    (folder / "metrics.csv").write_text(HEADER + "".join(rows))
    return folder


def test_reads_runs_and_draws_them_one_after_the_other(tmp_path: Path) -> None:
    a, b = _csv(tmp_path / "a", range(20, 101, 20)), _csv(tmp_path / "b", range(10, 51, 10))
    m = pm.read(a)
    assert list(m["step"]) == [20, 40, 60, 80, 100] and m["loss"][0] == pytest.approx(0.05)
    sys.argv = ["plot_metrics.py", str(a), str(b / "metrics.csv"), "--batch", "64", "--out", str(tmp_path / "p.png")]
    assert pm.main() == 0
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_smoothing_is_a_trailing_moving_average() -> None:
    y = np.array([0.0, 2.0, 4.0, 6.0])
    assert list(pm.smooth(y, 2)) == [0.0, 1.0, 3.0, 5.0]


def test_a_folder_without_metrics_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no metrics\.csv"):
        pm.read(tmp_path)
    _csv(tmp_path / "empty", range(0))
    with pytest.raises(SystemExit, match="no rows yet"):
        pm.read(tmp_path / "empty")
