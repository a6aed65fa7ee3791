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


def test_batch_workers_give_the_same_batches_as_the_training_process(tmp_path: Path) -> None:
    from vb_perception.offline.tune import _Examples, step_batches

    cfg = load_tune_config(TINY, {"data.cache_dir": str(tmp_path / "cache")})
    data = _Examples(cfg)
    here = list(step_batches(data, 2, 4, workers=0))
    ahead = list(step_batches(data, 2, 4, workers=1))  # a spawned process, its own copy of the examples
    assert len(here) == len(ahead) == 2
    for (img_a, tgt_a, tok_a, spec_a), (img_b, tgt_b, tok_b, spec_b) in zip(here, ahead):
        assert torch.equal(img_a, img_b) and torch.equal(tgt_a, tgt_b)
        assert tok_a == tok_b and spec_a == spec_b


def test_hue_augmentation_recolours_only_depth_and_normals_inputs(tmp_path: Path) -> None:
    from vb_perception.offline.tune import _Examples

    over = {"data.cache_dir": str(tmp_path / "cache"), "train.batch_size": 12}
    plain = _Examples(load_tune_config(TINY, over))
    hued = _Examples(load_tune_config(TINY, over | {"data.hue_aug": 1.0}))
    img_a, tgt_a, tok_a, spec_a = plain.batch(3)
    img_b, tgt_b, tok_b, spec_b = hued.batch(3)
    assert torch.equal(tgt_a, tgt_b) and tok_a == tok_b and spec_a == spec_b  # same examples, same targets
    tasks = [s.task for s in spec_a]
    recoloured = {"depth", "normals"}
    assert recoloured & set(tasks) and set(tasks) - recoloured  # this batch has both kinds
    for i, task in enumerate(tasks):
        same = torch.equal(img_a[i], img_b[i])
        assert same == (task not in recoloured), task
        if not same:  # a hue rotation: the grey level (channel mean) stays within rounding
            assert (img_a[i].mean(0) - img_b[i].mean(0)).abs().mean() < 0.02
    with pytest.raises(TuneError, match="hue_aug"):
        load_tune_config(TINY, {"data.hue_aug": -0.1})


def test_live_rendering_draws_several_examples_from_each_render(tmp_path: Path) -> None:
    from vb_perception.offline.tune import _Examples

    cfg = load_tune_config(TINY, {"data.cache_dir": None, "data.examples_per_render": 2, "train.batch_size": 4})
    data = _Examples(cfg)
    img = data.batch(0)[0]
    assert img.shape[0] == 4
    # examples 0, 1 share render 0 and examples 2, 3 render 1: the batch rendered twice, not four times
    assert data._last is not None and data._last[0] == 1
    first, second = data.sample(None, 0), data.sample(None, 2)  # type: ignore[arg-type]
    assert first.seed == 0 and second.seed == 1


def test_max_wall_s_stops_early_and_saves_a_resumable_checkpoint(tmp_path: Path) -> None:
    assert _tune(tmp_path, "--set", "train.max_wall_s=0.001", "--set", "train.checkpoint_every=100") == 0
    run = tmp_path / "run"
    model = VBGenerator.from_pretrained(run / "model")
    step = int(model.config.model_version.split("@")[1])
    assert step == 1  # one step at least, then stopped before max_steps, yet exported where it stopped
    assert (run / "checkpoint" / "state.json").is_file()
    assert _tune(tmp_path, "--set", "train.checkpoint_every=100") == 0  # resumes and finishes
    assert VBGenerator.from_pretrained(run / "model").config.model_version == "tiny@4"


def test_wsd_schedule_is_flat_then_anneals_linearly_to_zero() -> None:
    from vb_perception.offline.tune import TrainConfig

    tc = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, lr_schedule="wsd", decay_steps=20)
    assert tc.learning_rate(0) == pytest.approx(1e-4)  # warm-up
    assert tc.learning_rate(9) == tc.learning_rate(50) == tc.learning_rate(80) == pytest.approx(1e-3)
    assert tc.learning_rate(90) == pytest.approx(5e-4)  # half-way through the decay
    assert tc.learning_rate(99) == pytest.approx(5e-5) and tc.learning_rate(100) == 0.0
    cosine = TrainConfig(lr=1e-3, warmup_steps=1, max_steps=100)
    assert cosine.learning_rate(0) == pytest.approx(1e-3) and cosine.learning_rate(100) == pytest.approx(1e-4)
    with pytest.raises(TuneError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(TuneError, match="decay_steps"):
        TrainConfig(max_steps=10, lr_schedule="wsd", decay_steps=11)


def test_decay_wall_s_cools_down_over_the_last_seconds_of_a_timed_run(tmp_path: Path) -> None:
    from vb_perception.offline.tune import TrainConfig

    tc = TrainConfig(lr=1e-3, max_wall_s=100.0, decay_wall_s=40.0)
    assert tc.wall_factor(0.0) == tc.wall_factor(60.0) == 1.0
    assert tc.wall_factor(80.0) == pytest.approx(0.5) and tc.wall_factor(100.0) == tc.wall_factor(130.0) == 0.0
    assert TrainConfig().wall_factor(1e6) == 1.0  # off by default
    bad_configs = ({"decay_wall_s": 10}, {"max_wall_s": 5, "decay_wall_s": 6}, {"max_wall_s": 5, "decay_wall_s": -1})
    for bad in bad_configs:
        with pytest.raises(TuneError, match="decay_wall_s"):
            TrainConfig(**bad)  # type: ignore[arg-type]
    # a run whose whole time is its decay: the first step is already past the 1 ms budget, so its lr is 0
    args = ("--set", "train.max_wall_s=0.001", "--set", "train.decay_wall_s=0.001", "--set", "train.log_every=1")
    assert _tune(tmp_path, *args) == 0
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["1"] and float(rows[0]["lr"]) == 0.0
    notes = VBGenerator.from_pretrained(tmp_path / "run" / "model").config.notes
    assert notes["device"].startswith("CPU (")  # where it trained, for the bundle's card


def test_a_copied_run_resumed_with_wsd_is_a_cool_down_branch(tmp_path: Path) -> None:
    import shutil

    assert _tune(tmp_path, "--set", "train.checkpoint_every=2") == 0  # the main run, at full lr to step 4
    shutil.copytree(tmp_path / "run", tmp_path / "cool")
    branch = ["--set", f"run_dir={tmp_path / 'cool'}", "--set", "train.lr_schedule=wsd"]
    assert _tune(tmp_path, *branch, "--set", "train.max_steps=8", "--set", "train.decay_steps=4") == 0
    rows = list(csv.DictReader((tmp_path / "cool" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # the branch resumed the copy at step 4
    lrs = [float(r["lr"]) for r in rows[4:]]
    lr = float(load_tune_config(TINY).train.lr)
    assert lrs == pytest.approx([lr, 0.75 * lr, 0.5 * lr, 0.25 * lr], rel=0.01)
    assert VBGenerator.from_pretrained(tmp_path / "cool" / "model").config.model_version == "tiny@8"
    assert VBGenerator.from_pretrained(tmp_path / "run" / "model").config.model_version == "tiny@4"  # untouched


def test_the_ema_schedule_survives_a_resume_and_can_start_at_full_decay(tmp_path: Path) -> None:
    import json

    from safetensors.torch import load_file

    assert _tune(tmp_path, "--set", "train.checkpoint_every=2") == 0
    state = tmp_path / "run" / "checkpoint" / "state.json"
    assert json.loads(state.read_text())["ema_step"] == 4
    assert _tune(tmp_path, "--set", "train.max_steps=6") == 0  # resumed: the EMA's step goes on from 4
    assert json.loads(state.read_text())["ema_step"] == 6

    def gap(run: str) -> float:  # exported EMA weights against the raw weights of the same run
        raw = load_file(str(tmp_path / run / "checkpoint" / "model.safetensors"))
        ema = VBGenerator.from_pretrained(tmp_path / run / "model").state_dict()
        return sum(float((ema[k].float() - raw[k].float()).abs().sum()) for k in raw)

    assert _tune(tmp_path, "--set", f"run_dir={tmp_path / 'warm'}") == 0
    assert _tune(tmp_path, "--set", f"run_dir={tmp_path / 'full'}", "--set", "train.ema_warmup=false") == 0
    assert gap("full") > 2 * gap("warm")  # at full decay from the start the EMA stays back near its first step


def test_the_log_depth_loss_is_the_mean_absolute_log_ratio_over_targets_in_range() -> None:
    import math

    import torch

    from vb_perception.codecs import torch_ops
    from vb_perception.offline.tune import LOG_DEPTH_MAX_M, _log_depth_l1

    d_true = torch.tensor([[0.5, 2.0, 8.0, 40.0, 300.0]])  # 300 m: beyond the range, like sky; ignored
    f_true = torch_ops.depth_to_curve(d_true)
    assert float(_log_depth_l1(f_true, f_true)) == pytest.approx(0.0, abs=1e-5)
    f_pred = torch_ops.depth_to_curve(d_true * 1.25).requires_grad_()
    loss = _log_depth_l1(f_pred, f_true)
    assert float(loss.detach()) == pytest.approx(math.log(1.25), rel=1e-3)  # the same 25 % off at 0.5 m as at 40 m
    loss.backward()
    grad = f_pred.grad
    assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad[0, 4]) == 0.0
    # a prediction far beyond the range is clamped there (finite), and an all-sky batch gives 0, not NaN
    assert float(_log_depth_l1(torch.ones(1, 2), f_true[:, :2])) == pytest.approx(
        float(torch.log(LOG_DEPTH_MAX_M / d_true[0, :2]).mean()), rel=1e-3
    )
    assert float(_log_depth_l1(f_true[:, 4:], f_true[:, 4:])) == 0.0


def test_the_log_depth_loss_trains_and_is_logged(tmp_path: Path) -> None:
    assert _tune(tmp_path, "--set", "train.depth_log_weight=0.5", "--set", "data.task_mix={depth: 1.0}") == 0
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert rows and all(float(r["depth_log"]) > 0 for r in rows)


def test_focal_conditioning_trains_and_grows_onto_a_model_without_it(tmp_path: Path) -> None:
    from tiny_models import save_tiny

    start = save_tiny(tmp_path / "start")  # tiny.yaml's architecture, without the camera input
    args = ("--set", "model.focal_conditioning=true", "--set", "data.focal_dropout=0.5", "--set", "train.max_steps=2")
    assert _tune(tmp_path, *args, "--set", f"init_from={start}") == 0
    model = VBGenerator.from_pretrained(tmp_path / "run" / "model")
    assert model.config.focal_conditioning and model.cond_names[-1] == "camera"
    with pytest.raises(TuneError, match="focal_dropout"):
        load_tune_config(TINY, {"data.focal_dropout": 1.5})


def test_the_refinement_grows_onto_a_model_it_starts_from_and_trains(tmp_path: Path) -> None:
    from tiny_models import save_tiny

    start = save_tiny(tmp_path / "start")  # tiny.yaml's architecture, without the refinement
    args = ("--set", "model.refine_channels=8", "--set", "train.max_steps=2", "--set", "train.ema_decay=0.0")
    assert _tune(tmp_path, *args, "--set", f"init_from={start}") == 0
    model = VBGenerator.from_pretrained(tmp_path / "run" / "model")
    assert model.config.refine_channels == 8
    assert float(model.refine[-1].weight.detach().abs().sum()) > 0  # started at zero, trained


def test_attention_head_channels_regroup_a_model_it_starts_from(tmp_path: Path) -> None:
    from tiny_models import save_tiny

    start = save_tiny(tmp_path / "start")  # tiny.yaml's architecture: diffusers' 8 heads per block
    args = ("--set", "model.attention_head_channels=16", "--set", "train.max_steps=2")
    assert _tune(tmp_path, *args, "--set", f"init_from={start}") == 0
    model = VBGenerator.from_pretrained(tmp_path / "run" / "model")
    heads = {m.heads for m in model.unet.modules() if type(m).__name__ == "Attention"}
    assert model.config.attention_head_channels == 16 and heads == {2}  # 32 channels / 16


def test_the_free_rgb_term_supervises_the_depth_path_heads_free_colour(tmp_path: Path) -> None:
    common = ("--set", "model.palette_head_dim=8", "--set", "model.depth_head=true", "--set", "train.max_steps=2")
    common += ("--set", "data.task_mix={depth: 1.0}", "--set", "train.log_every=1")
    rgb = {}
    for weight in (0.0, 1.0):
        run = tmp_path / f"w{weight}"
        assert _tune(run, *common, "--set", f"train.depth_free_rgb_weight={weight}") == 0
        rows = list(csv.DictReader((run / "run" / "metrics.csv").open()))
        rgb[weight] = float(rows[0]["rgb"])
    # same seed, batches and first step: the term adds the free colour's error to the logged RGB loss
    assert rgb[1.0] > rgb[0.0] > 0


def test_the_soft_depth_gradient_keeps_the_forward_pass_and_changes_the_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("--set", "model.palette_head_dim=8", "--set", "model.depth_head=true", "--set", "train.max_steps=2")
    common += ("--set", "data.task_mix={depth: 1.0}", "--set", "train.log_every=1", "--set", "train.ema_decay=0.0")
    loss, weights = {}, {}
    for temperature in (0.0, 0.05):
        run = tmp_path / f"t{temperature}"
        assert _tune(run, *common, "--set", f"train.depth_soft_gradient={temperature}") == 0
        loss[temperature] = [float(r["loss"]) for r in csv.DictReader((run / "run" / "metrics.csv").open())]
        weights[temperature] = VBGenerator.from_pretrained(run / "run" / "model").unet.conv_out.weight.float()
    assert loss[0.05][0] == pytest.approx(loss[0.0][0], rel=1e-6)  # the same outputs and losses at the first step
    assert not torch.allclose(weights[0.05], weights[0.0])  # a different gradient through the projection
    with pytest.raises(TuneError, match="depth_soft_gradient"):
        load_tune_config(TINY, {"train.depth_soft_gradient": -0.1})
    assert _tune(tmp_path / "no-head", "--set", "train.max_steps=1", "--set", "train.depth_soft_gradient=0.05") != 0
    assert "needs a model with the depth path head" in capsys.readouterr().err


@pytest.mark.slow
def test_a_compiled_unet_trains_as_the_eager_one_and_saves_the_same_keys(tmp_path: Path) -> None:
    steps = ("--set", "train.max_steps=2", "--set", "train.num_threads=1")
    assert _tune(tmp_path / "eager", *steps) == 0
    assert _tune(tmp_path / "compiled", *steps, "--set", "train.compile=true") == 0
    losses = {
        k: [float(r["loss"]) for r in csv.DictReader((tmp_path / k / "run" / "metrics.csv").open())]
        for k in ("eager", "compiled")
    }
    assert len(losses["compiled"]) == 2 and losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3)
    eager = VBGenerator.from_pretrained(tmp_path / "eager" / "run" / "model").state_dict()
    compiled = VBGenerator.from_pretrained(tmp_path / "compiled" / "run" / "model").state_dict()
    assert compiled.keys() == eager.keys()  # compiled in place: no _orig_mod prefixes in checkpoints or exports
    assert all(torch.allclose(compiled[k].float(), eager[k].float(), atol=1e-3) for k in eager)


def test_mixed_precision_is_refused_on_a_cpu_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = ("--set", "train.max_steps=1")
    if not torch.cuda.is_available():
        for precision in ("bf16", "fp16"):
            assert _tune(tmp_path / precision, *steps, "--set", f"train.mixed_precision={precision}") != 0
            err = capsys.readouterr().err
            assert f"train.mixed_precision={precision} is for GPUs" in err and "README: bf16 on the CPU" in err
            assert not (tmp_path / precision / "run" / "checkpoint").exists()
    with pytest.raises(TuneError, match="mixed_precision"):
        load_tune_config(TINY, {"train.mixed_precision": "int4"})
    assert load_tune_config(TINY, {"train.mixed_precision": False}).train.mixed_precision == "no"  # YAML's `no`


@pytest.mark.parametrize("name", ["vb-mini2.yaml", "vb-mini2-gpu.yaml"])
def test_the_bundled_models_configs_continue_from_the_bundle(name: str) -> None:
    """The configs that train the bundled model (the CPU one through ``--set init_from=models/vb-mini``) describe the
    architecture it has now, so a lent GPU's run does not stop at ``init_from ... differs``."""
    from vb_perception.offline.tune import build_model

    cfg = load_tune_config(REPO / "config" / "tune" / name, {"init_from": str(REPO / "models" / "vb-mini")})
    model = build_model(cfg)
    assert isinstance(model, VBGenerator) and model.config.refine_channels == cfg.model.refine_channels
