"""The pipeline, predict and eval on a small random model: shapes, units, files, errors (not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the generator needs torch")
pytest.importorskip("diffusers", reason="the generator needs diffusers")
pytest.importorskip("open3d", reason="eval builds synthetic samples")

from tiny_models import TINY

from vb_perception.cli import main
from vb_perception.errors import PromptError, VbPerceptionError
from vb_perception.model.generator import VBGenerator
from vb_perception.pipeline import (
    DepthResult,
    InstancesResult,
    NormalsResult,
    Perception,
    SegmentationResult,
    processing_size,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return VBGenerator(TINY).save_pretrained(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> Perception:
    return Perception(model_dir)


def test_processing_size_keeps_aspect_and_multiples_of_8() -> None:
    assert processing_size(480, 640, 64) == (64, 88)
    assert processing_size(100, 100, 32) == (32, 32)


def test_all_tasks_in_one_call_come_back_at_input_resolution(
    pipe: Perception, tum_frame: tuple[np.ndarray, ...]
) -> None:
    rgb = tum_frame[0]
    prompts = [
        "Generate a metric depth map",
        "surface normals",
        "Segment the chair in red and the table in blue",
        "Each bottle is colored differently",
    ]
    depth, normals, seg, inst = pipe(rgb, prompts)
    assert isinstance(depth, DepthResult) and depth.depth_m.shape == (480, 640) and depth.depth_m.dtype == np.float32
    assert np.all((depth.depth_m > 0) | np.isnan(depth.depth_m))
    assert isinstance(normals, NormalsResult) and normals.normals.shape == (480, 640, 3)
    ok = np.isfinite(normals.normals[..., 0])
    np.testing.assert_allclose(np.linalg.norm(normals.normals[ok], axis=-1), 1.0, atol=1e-4)
    assert (
        isinstance(seg, SegmentationResult) and seg.labels.shape == (480, 640) and seg.class_names == ("chair", "table")
    )
    assert set(np.unique(seg.labels)) <= {0, 1, 2}
    assert isinstance(inst, InstancesResult) and inst.labels.shape == (480, 640)
    assert depth.generated.shape == (*processing_size(480, 640, pipe.model.config.resolution_px), 3)


def test_prompt_tokens_are_computed_once_per_prompt_change(pipe: Perception) -> None:
    image = np.zeros((32, 40, 3), np.uint8)
    calls = []
    original = pipe.model.conditioning
    pipe.model.conditioning = lambda *a: calls.append(a) or original(*a)  # type: ignore[method-assign]
    try:
        first = pipe(image, ["depth", "Segment the cat in red"], seed=1)
        again = pipe(image, ["depth", "Segment the cat in red"], seed=1)
        assert len(calls) == 1  # the second frame reuses the tokens
        np.testing.assert_array_equal(first[0].generated, again[0].generated)
        pipe(image, ["depth", "Segment the dog in red"])
        assert len(calls) == 2
        for i in range(12):  # bounded: old prompt lists are dropped
            pipe(image, [f"Segment the cat number {i} in red"])
        assert len(pipe._cond_cache) <= 8
    finally:
        pipe.model.conditioning = original  # type: ignore[method-assign]


def test_bad_prompts_fail_before_any_compute(pipe: Perception) -> None:
    with pytest.raises(PromptError, match="did you mean 'purple'"):
        pipe(np.zeros((32, 32, 3), np.uint8), ["depth", "Segment the cat in blurple"])
    with pytest.raises(VbPerceptionError, match="uint8 HxWx3"):
        pipe(np.zeros((32, 32), np.uint8), ["depth"])


def test_predict_cli_writes_every_output(model_dir: Path, tmp_path: Path, tum_frame: tuple[np.ndarray, ...]) -> None:
    from vb_perception.imageio import write_rgb

    img = write_rgb(tmp_path / "frame.png", tum_frame[0][::4, ::4])
    args = ["predict", str(img), "--task", "depth", "--task", "normals", "--prompt", "Segment the chair in red"]
    assert main([*args, "--model", str(model_dir), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / "frame"
    assert np.load(out / "depth_m.npy").shape == (120, 160)
    assert np.load(out / "normals.npy").shape == (120, 160, 3)
    with np.load(out / "segmentation.npz", allow_pickle=False) as seg:
        assert seg["labels"].dtype == np.int32 and seg["classes"].tolist() == ["chair"]
    assert (out / "panel.png").is_file() and len(list(out.glob("generated_*.png"))) == 3
    assert json.loads((out / "outputs.json").read_text())["outputs"][0]["task"] == "depth"
    assert main(["predict", str(img), "--task", "segment", "--model", str(model_dir), "--out", str(tmp_path)]) == 2


def test_eval_on_synthetic_samples_and_a_real_frame(model_dir: Path, tmp_path: Path) -> None:
    from vb_perception.offline.synth.dataset import SynthConfig, write_dataset

    write_dataset(SynthConfig(res_px=32, seed=777), 3, tmp_path / "data", workers=1, progress=False)
    assert (
        main(["eval", "--data", str(tmp_path / "data"), "--model", str(model_dir), "--out", str(tmp_path / "ev")]) == 0
    )
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert report["samples"] == 3
    for key in ("delta1", "delta2", "delta3", "abs_rel", "rmse_m", "delta1_aligned"):
        assert report["depth"][key] >= 0.0 or np.isnan(report["depth"][key])
    assert {"mean_deg", "median_deg", "within_11.25"} <= set(report["normals"])
    assert {"miou"} <= set(report["semantic"]) and {"ciou", "giou"} <= set(report["referring"])
    ref, sem = report["referring"], report["semantic"]
    for section, total in ((ref["by_kind"], ref["targets"]), (ref["by_area"], ref["targets"]), (sem["by_kind"], None)):
        assert sum(g["targets"] for g in section.values()) == (total if total is not None else sem["classes"])
        assert all(0.0 <= g["mean_iou"] <= 1.0 for g in section.values())
    assert (tmp_path / "ev" / "eval_panels.png").is_file() and (tmp_path / "ev" / "eval_depth_by_range.png").is_file()
    ranges = report["depth_by_range"]  # every valid ground-truth pixel in exactly one range
    assert sum(r["pixels"] for r in ranges) == report["depth"]["pixels"]
    families = report["depth_by_family"]
    assert sum(f["samples"] for f in families.values()) == 3 and all("delta1" in f for f in families.values())
    tum = Path(__file__).resolve().parents[1] / "vb_perception" / "data" / "tum_rgbd"
    assert (
        main(
            [
                "eval",
                "--data",
                str(tum),
                "--depth-scale-m",
                "0.0002",
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / "tum"),
            ]
        )
        == 0
    )
    real = json.loads((tmp_path / "tum" / "eval.json").read_text())
    assert (
        real["depth"]["pixels"] > 1000 and sum(r["pixels"] for r in real["depth_by_range"]) == real["depth"]["pixels"]
    )
    assert (tmp_path / "tum" / "eval_depth_by_range.png").is_file()
    flip = ["eval", "--data", str(tum), "--depth-scale-m", "0.0002", "--model", str(model_dir), "--flip-average"]
    assert main([*flip, "--out", str(tmp_path / "tum_flip")]) == 0
    mirrored = json.loads((tmp_path / "tum_flip" / "eval.json").read_text())
    assert real["flip_average"] is False and mirrored["flip_average"] is True
    assert mirrored["depth"]["pixels"] == real["depth"]["pixels"] and mirrored["depth"] != real["depth"]


def test_a_focal_conditioned_model_takes_the_camera_focal_length_everywhere(tmp_path: Path, pipe: Perception) -> None:
    from dataclasses import replace

    from vb_perception.offline.synth.dataset import SynthConfig, write_dataset

    torch.manual_seed(0)
    folder = VBGenerator(replace(TINY, focal_conditioning=True)).save_pretrained(tmp_path / "focal")
    plain, pipe = pipe, Perception(folder)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    prompt = ["Generate a metric depth map"]
    wide, tele, unknown = (pipe(image, prompt, fx_px=f)[0] for f in (20.0, 90.0, None))
    assert isinstance(wide, DepthResult) and isinstance(tele, DepthResult) and isinstance(unknown, DepthResult)
    assert not np.array_equal(wide.generated, tele.generated) and not np.array_equal(wide.generated, unknown.generated)
    assert np.array_equal(pipe(image, prompt, fx_px=20.0)[0].generated, wide.generated)  # cached per camera
    with pytest.raises(VbPerceptionError, match="positive focal length"):
        pipe(image, prompt, fx_px=0.0)
    assert not plain.uses_focal  # a model without the input ignores a valid focal length, yet checks it
    assert np.array_equal(plain(image, prompt, fx_px=20.0)[0].generated, plain(image, prompt)[0].generated)
    with pytest.raises(VbPerceptionError, match="positive focal length"):
        plain(image, prompt, fx_px=float("nan"))
    img = tmp_path / "cam.png"
    from vb_perception.imageio import write_rgb

    write_rgb(img, image)
    out = tmp_path / "pred"
    assert (
        main(["predict", str(img), "--task", "depth", "--fx-px", "45", "--model", str(folder), "--out", str(out)]) == 0
    )
    assert json.loads((out / "cam" / "outputs.json").read_text())["fx_px"] == 45.0
    write_dataset(SynthConfig(res_px=32, seed=777), 2, tmp_path / "data", workers=1, progress=False)
    for flag, expected in (([], "given"), (["--no-intrinsics"], "unknown to the model")):
        ev = tmp_path / f"ev{len(flag)}"
        args = ["eval", "--data", str(tmp_path / "data"), "--model", str(folder), "--out", str(ev), *flag]
        assert main(args) == 0
        assert json.loads((ev / "eval.json").read_text())["focal_length"] == expected
