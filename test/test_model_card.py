"""The bundled model's card tells the truth: its tables are the stored eval reports, and `eval` reproduces them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from scripts_loader import load_script

from vb_perception.offline.evaluate import format_report

MODEL = Path(__file__).resolve().parents[1] / "models" / "vb-mini"
CARD = (MODEL / "MODEL_CARD.md").read_text()


def _report(name: str) -> dict[str, Any]:
    return json.loads((MODEL / name).read_text())


def _close(measured: Any, stored: Any, path: str = "", rel: float = 0.0, counts_abs: float = 2e-3) -> None:
    """Every stored number is measured again: floats within ``abs=2e-3`` or ``rel``, those under ``instances``
    (means of per-sample match counts) within ``counts_abs``; the rest exactly."""
    if isinstance(stored, dict):
        for key, value in stored.items():
            if key not in ("data", "model"):
                _close(measured[key], value, f"{path}.{key}", rel, counts_abs)
    elif isinstance(stored, list):
        assert isinstance(measured, list) and len(measured) == len(stored), path
        for i, (m, v) in enumerate(zip(measured, stored)):
            _close(m, v, f"{path}[{i}]", rel, counts_abs)
    elif isinstance(stored, float) and not math.isnan(stored):
        tol = counts_abs if path.startswith(".instances.") else 2e-3
        assert measured == pytest.approx(stored, abs=tol, rel=rel), path
    else:
        assert measured == stored or (isinstance(stored, float) and math.isnan(measured)), path


@pytest.mark.parametrize("name", ["eval_heldout.json", "eval_tum.json"])
def test_card_tables_are_the_stored_reports(name: str) -> None:
    report = _report(name)
    assert report["model_version"] == json.loads((MODEL / "config.json").read_text())["model_version"]
    for line in format_report(report).splitlines()[2:]:
        assert line in CARD, line


def test_eval_reproduces_the_real_frame_table(tmp_path: Path) -> None:
    pytest.importorskip("diffusers", reason="the generator needs diffusers")
    from vb_perception.offline.evaluate import evaluate

    stored = _report("eval_tum.json")
    measured = evaluate("vb_perception/data/tum_rgbd", tmp_path, depth_scale_m=0.0002, fx_px=stored.get("fx_px"))
    _close(measured, stored)


def test_eval_reproduces_the_heldout_table(tmp_path: Path) -> None:
    pytest.importorskip("diffusers", reason="the generator needs diffusers")
    pytest.importorskip("open3d", reason="the held-out split is rendered with open3d")
    from vb_perception.cli import main
    from vb_perception.offline.evaluate import evaluate

    stored = _report("eval_heldout.json")
    n = stored["samples"]
    assert main(["synth", "--heldout", "--n", str(n), "--res", "64", "--out", str(tmp_path / "heldout")]) == 0
    measured = evaluate(tmp_path / "heldout", tmp_path / "eval", n=n)
    # The split is rendered again here, and its pixels follow the CPU that renders it: the same bytes run to run and
    # for 1 or 2 cores on one machine, but on the AVX2 EPYC machines of 2026-12-08 every metric of this same model
    # and code moved from the bundle machine's report (2026-11-28) by up to 0.47 % (relative; a mean IoU over 12
    # targets) and the instance counts by one match in 100 samples, while the TUM frame above, which is not
    # rendered, reproduces to 3e-5. Open3D's Embree picks its ray-casting kernels (SSE to AVX-512) by CPU at run
    # time. So: 1 % relative, twice the measured drift, and two matches per 100 samples. (Measured on @29505's
    # report; @26919 scored against that report on this split fell outside the tolerance on 54 metrics, delta1 and
    # mIoU among them.)
    _close(measured, stored, rel=1e-2, counts_abs=2.0 / n)


def test_the_progress_plot_ends_at_the_committed_bundle(tmp_path: Path) -> None:
    import shutil
    import subprocess

    root = MODEL.parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout: the plot reads the bundle's history")
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=root, capture_output=True, text=True)
    if shallow.stdout.strip() == "true":
        pytest.skip("a shallow clone lacks the earlier bundles")
    dirty = subprocess.run(["git", "status", "--porcelain", "models/vb-mini"], cwd=root, capture_output=True, text=True)
    if dirty.stdout.strip():
        pytest.skip("models/vb-mini has uncommitted changes; the plot shows committed bundles only")
    progress_plot = load_script("progress_plot")
    points = progress_plot.history(root)
    progress_plot.plot(points, tmp_path / "p.png")
    config = json.loads((MODEL / "config.json").read_text())
    assert points[-1].version == config["model_version"]  # the latest point is the bundled model ...
    assert points[-1].metrics["depth δ1"] == _report("eval_heldout.json")["depth"]["delta1"]  # ... with its report
    hours = [p.train_h for p in points]
    assert hours == sorted(hours) and len(points) >= 2 and (tmp_path / "p.png").stat().st_size > 10_000


def test_the_card_tells_cpu_and_gpu_training_apart() -> None:
    card = load_script("model_card")
    cpu_only = card.hardware_split({"step": 100, "samples_seen": 1600, "train_wall_s": 7200})
    assert cpu_only.gpu_steps == 0 and cpu_only.hardware_text == "2 CPU cores (x86_64), no GPU"
    assert cpu_only.time_text(2.0) == "2.0 h on 2 CPU cores"
    segments = [
        {"segment": "a", "steps": 100, "samples_seen": 1600, "train_wall_s": 7200},  # older: no device recorded
        {"segment": "b", "steps": 50, "samples_seen": 800, "train_wall_s": 3600, "device": "CPU (2 threads)"},
        {"segment": "g", "steps": 1000, "samples_seen": 64000, "train_wall_s": 160, "device": "NVIDIA H200"},
    ]
    split = card.hardware_split({"segments": segments})
    assert (split.cpu_steps, split.cpu_wall_s, split.gpu_steps, split.gpu_samples) == (150, 10800, 1000, 64000)
    assert split.time_text(3.0) == "3.0 h on 2 CPU cores and 3 min on a lent NVIDIA H200"
    assert "400 examples/s" in split.limit_text and "64,000 more examples" in split.data_text
    # the bundled card says where its training ran
    notes = json.loads((MODEL / "config.json").read_text())["notes"]
    assert card.hardware_split(notes).hardware_text in CARD
