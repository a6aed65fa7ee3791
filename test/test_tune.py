"""`vb-perception tune` end to end on the tiny config: train, checkpoint, resume, export; config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="tuning needs torch")
pytest.importorskip("diffusers", reason="tuning needs diffusers")
pytest.importorskip("accelerate", reason="tuning needs accelerate")
pytest.importorskip("open3d", reason="tuning renders its sample cache")

from vb_perception.cli import main
from vb_perception.model.generator import VBGenerator
from vb_perception.offline.tune import TuneError, load_tune_config

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "config" / "tune" / "tiny.yaml"


def _tune(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "tune",
            "--config",
            str(TINY),
            "--set",
            f"run_dir={tmp_path / 'run'}",
            "--set",
            f"data.cache_dir={tmp_path / 'cache'}",
            *extra,
        ]
    )


def test_tiny_run_trains_checkpoints_resumes_and_exports(tmp_path: Path) -> None:
    assert _tune(tmp_path) == 0
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows)
    model = VBGenerator.from_pretrained(run / "model")
    assert model.config.model_version == "tiny@4" and model.config.notes["samples_seen"] == 16
    assert (run / "panel_0000004.png").is_file() and (run / "config.resolved.yaml").is_file()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    (run / "checkpoint").rename(run / "checkpoint.old")  # killed between the two renames of a save
    with (run / "metrics.csv").open("a") as f:  # a row logged after the checkpoint by a run that was then killed
        f.write("5,9.9,9.9,0,0,0,0,0\n")
    assert _tune(tmp_path, "--set", "train.max_steps=6") == 0  # resumes at step 4 and redoes step 5
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    after = VBGenerator.from_pretrained(run / "model").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    suffixes = {p.suffix for p in run.rglob("*") if p.is_file()}
    assert suffixes <= {".safetensors", ".json", ".yaml", ".csv", ".png"}  # no pickle anywhere


def test_a_run_dir_refuses_another_architecture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _tune(tmp_path, "--set", "train.max_steps=1") == 0
    assert _tune(tmp_path, "--set", "model.block_out_channels=[16, 24]", "--set", "train.max_steps=2") == 2
    assert "holds a run with another model architecture; use a new run_dir" in capsys.readouterr().err


def test_config_errors_name_the_allowed_keys(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {batch_sise: 3}\n")
    with pytest.raises(TuneError, match=r"unknown keys \['batch_sise'\]; allowed: .*batch_size"):
        load_tune_config(bad)
    with pytest.raises(TuneError, match="no such config"):
        load_tune_config(tmp_path / "missing.yaml")
    assert main(["tune", "--config", str(TINY), "--set", "oops"]) == 2


def test_the_palette_head_and_space_to_depth_train_with_their_losses(tmp_path: Path) -> None:
    assert (
        _tune(
            tmp_path,
            "--set",
            "model.space_to_depth=2",
            "--set",
            "model.palette_head_dim=8",
            "--set",
            "train.seg_dice_weight=0.5",
            "--set",
            "data.task_mix={semantic: 0.5, referring: 0.5}",
            "--set",
            "train.max_steps=2",
        )
        == 0
    )
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(float(r["seg_ce"]) > 0 for r in rows)
    model = VBGenerator.from_pretrained(run / "model")
    assert model.config.space_to_depth == 2 and model.config.palette_head_dim == 8
