"""scripts/bundle.py keeps a bundle's provenance cumulative across the runs that trained it."""

from __future__ import annotations

from pathlib import Path

from scripts_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundle.py"
bundle = load_script("bundle")

FIRST = {"run": "vb-mini2", "step": 7400, "samples_seen": 118400, "train_wall_s": 14875, "continued": "dice at 1700"}


def _run(step: int) -> dict[str, object]:
    return {"run": "vb-mini2", "step": step, "samples_seen": step * 16, "train_wall_s": step * 2}


def test_a_second_run_adds_a_segment_and_sums_the_totals() -> None:
    notes = bundle.merged_notes(FIRST, _run(1000), "vb-mini2b", "then a second run")
    assert [s["segment"] for s in notes["segments"]] == ["vb-mini2", "vb-mini2b"]
    assert notes["step"] == 8400 and notes["samples_seen"] == 118400 + 16000 and notes["train_wall_s"] == 14875 + 2000
    assert notes["continued"] == "dice at 1700; then a second run"


def test_a_later_checkpoint_of_the_same_run_replaces_its_segment() -> None:
    once = bundle.merged_notes(FIRST, _run(1000), "vb-mini2b", "then a second run")
    twice = bundle.merged_notes(once, _run(2500), "vb-mini2b", "then a second run")
    assert [s["steps"] for s in twice["segments"]] == [7400, 2500]
    assert twice["step"] == 9900 and twice["continued"] == once["continued"]  # said once, not twice


def test_rebundling_a_run_rewrites_its_history_text_instead_of_appending() -> None:
    once = bundle.merged_notes(FIRST, _run(1000), "vb-mini2b", "then a second run, bundled at 1000")
    twice = bundle.merged_notes(once, _run(2500), "vb-mini2b", "then a second run, bundled at 2500")
    assert twice["continued"] == "dice at 1700; then a second run, bundled at 2500"
    assert twice["segments"][-1]["note"] == "then a second run, bundled at 2500"
    third = bundle.merged_notes(twice, _run(300), "vb-mini2c", "a third run")
    assert third["continued"] == "dice at 1700; then a second run, bundled at 2500; a third run"


def test_a_segment_keeps_the_device_its_run_trained_on() -> None:
    gpu = _run(1000) | {"device": "NVIDIA H200"}
    notes = bundle.merged_notes(FIRST, gpu, "vb-mini2-gpu1", "on a GPU")
    assert "device" not in notes["segments"][0]  # the first run predates the record: the CPU
    assert notes["segments"][-1]["device"] == "NVIDIA H200"


def test_a_model_whose_int8_copy_drifts_is_not_bundled(tmp_path: Path, monkeypatch) -> None:
    import sys

    import pytest

    bundled = (Path(__file__).resolve().parents[1] / "models" / "vb-mini" / "config.json").read_bytes()
    monkeypatch.setattr(bundle, "int8_drift", lambda model: {"focal length given": 0.02, "no focal length": 0.04})
    monkeypatch.setattr(sys, "argv", ["bundle.py", str(tmp_path), "--segment", "soup"])
    with pytest.raises(SystemExit, match=r"not bundled: the int8 copy drifts more than 3\.5%"):
        bundle.main()
    assert (Path(__file__).resolve().parents[1] / "models" / "vb-mini" / "config.json").read_bytes() == bundled


def test_int8_drift_measures_both_camera_cases(tmp_path: Path) -> None:
    import pytest

    torch = pytest.importorskip("torch", reason="export needs torch")
    pytest.importorskip("onnxruntime", reason="the check runs ONNX Runtime")
    from tiny_models import TINY

    from vb_perception.model.generator import VBGenerator

    torch.manual_seed(0)
    model = VBGenerator(TINY).save_pretrained(tmp_path / "tiny")
    drift = bundle.int8_drift(model)
    assert set(drift) == {"focal length given", "no focal length"}
    assert all(0.0 <= v < float("inf") for v in drift.values())
