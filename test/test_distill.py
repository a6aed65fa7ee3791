"""`vb-perception distill` end to end on tiny configs: a student through its own few-step sampler, resume, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="distillation needs torch")
pytest.importorskip("diffusers", reason="distillation needs diffusers")
pytest.importorskip("accelerate", reason="distillation needs accelerate")
pytest.importorskip("open3d", reason="distillation renders its sample cache")

from vb_perception.cli import main
from vb_perception.model.base import Generator
from vb_perception.model.loading import load_generator
from vb_perception.offline.distill import load_distill_config
from vb_perception.offline.tune import TuneError

REPO = Path(__file__).resolve().parents[1]
TINY_TUNE = REPO / "config" / "tune" / "tiny.yaml"
TINY = REPO / "config" / "distill" / "tiny.yaml"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("teacher")
    args = ["tune", "--config", str(TINY_TUNE), "--set", f"run_dir={root / 'run'}"]
    assert main(args + ["--set", f"data.cache_dir={root / 'cache'}", "--set", "train.max_steps=2"]) == 0
    return root


def _distill(teacher: Path, run: Path, *extra: str) -> int:
    sets = [f"teacher={teacher / 'run' / 'model'}", f"run_dir={run}", f"data.cache_dir={teacher / 'cache'}", *extra]
    return main(["distill", "--config", str(TINY)] + [a for s in sets for a in ("--set", s)])


def test_student_trains_through_its_sampler_resumes_and_exports(teacher: Path, tmp_path: Path) -> None:
    run = tmp_path / "student"
    assert _distill(teacher, run) == 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(float(r["loss"]) > 0 for r in rows)
    student = load_generator(run / "model")
    assert student.config.default_steps == 1  # the first of student_steps
    assert student.config.notes["distilled_from"] == "tiny@2"
    assert student.config.notes["student_steps"] == [1, 2] and student.config.notes["teacher_weight"] == 0.5
    teacher_model = load_generator(teacher / "run" / "model")
    moved = [k for k, v in teacher_model.state_dict().items() if not torch.equal(v, student.state_dict()[k])]
    assert moved  # the student left the teacher's weights
    assert (run / "panel_0000003.png").is_file()
    assert _distill(teacher, run, "train.max_steps=4") == 0  # resumes at 3
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert load_generator(run / "model").config.model_version == "tiny-student@4"


def test_rollout_keeps_gradients_only_on_the_last_call() -> None:
    from tiny_models import TINY

    from vb_perception.model.generator import VBGenerator

    model = VBGenerator(TINY)
    calls: list[bool] = []
    model.register_forward_hook(lambda *_: calls.append(torch.is_grad_enabled()))
    cond = (torch.zeros(1, 1, 384), torch.zeros(1, 1, 3), torch.zeros(1, 1, dtype=torch.long))
    cond = cond + (torch.zeros(1, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
    x = torch.zeros(1, 3, 16, 16)
    out = Generator.rollout(model, x, cond, 3, torch.randn(1, 3, 16, 16), grad_last=True)
    assert calls == [False, False, True] and out.requires_grad
    calls.clear()
    sampled = model.sample(x, cond, steps=2)
    assert calls == [False, False] and not sampled.requires_grad


def test_distill_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata: {}\n")
    with pytest.raises(TuneError, match="needs `teacher:`"):
        load_distill_config(bad)
    bad.write_text("teacher: m\nstudent_steps: [0]\n")
    with pytest.raises(TuneError, match="student_steps must be a list of step counts from 1 to 8"):
        load_distill_config(bad)
    bad.write_text("teacher: m\ngt_weight: 0\nteacher_weight: 0\n")
    with pytest.raises(TuneError, match="not both 0"):
        load_distill_config(bad)
    bad.write_text("teacher: m\nteachers: 3\n")
    with pytest.raises(TuneError, match=r"unknown top-level keys \['teachers'\]"):
        load_distill_config(bad)


def test_a_missing_teacher_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _distill(tmp_path, tmp_path / "run") == 2
    assert "not a vb_perception model folder" in capsys.readouterr().err


def test_a_palette_head_student_keeps_its_segmentation_losses(tmp_path: Path) -> None:
    args = ["tune", "--config", str(TINY_TUNE), "--set", f"run_dir={tmp_path / 'run'}"]
    args += ["--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "train.max_steps=1"]
    assert main(args + ["--set", "model.palette_head_dim=8", "--set", "model.space_to_depth=2"]) == 0
    run = tmp_path / "student"
    mix = "data.task_mix={semantic: 0.5, referring: 0.5}"
    assert _distill(tmp_path, run, mix, "train.max_steps=2", "train.seg_dice_weight=0.5") == 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(float(r["seg_ce"]) > 0 for r in rows)
    assert load_generator(run / "model").config.palette_head_dim == 8


def test_the_bundled_models_student_trains_on_the_teachers_losses() -> None:
    from dataclasses import fields

    from vb_perception.offline.tune import load_tune_config

    student = load_distill_config(REPO / "config" / "distill" / "vb-mini-1step.yaml").train
    teacher = load_tune_config(REPO / "config" / "tune" / "vb-mini2.yaml").train
    losses = [f.name for f in fields(teacher) if f.name.endswith("_weight")]
    assert "depth_log_weight" in losses and "seg_dice_weight" in losses
    differ = {
        n: (getattr(student, n), getattr(teacher, n)) for n in losses if getattr(student, n) != getattr(teacher, n)
    }
    assert not differ, f"the student's loss weights differ from its teacher's (student, teacher): {differ}"
