"""The ``vb-perception`` command line: every subcommand, run in-process and once through the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vb_perception.cli import main
from vb_perception.imageio import read_depth, read_rgb, write_depth


def test_depth_round_trip_through_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    depth = np.random.default_rng(0).uniform(0.5, 20.0, (30, 40)).astype(np.float32)
    depth[0, 0] = np.nan
    write_depth(tmp_path / "d.npy", depth)
    assert main(["encode-depth", str(tmp_path / "d.npy"), "--out", str(tmp_path / "d.png")]) == 0
    assert read_rgb(tmp_path / "d.png").shape == (30, 40, 3)
    for suffix in ("npy", "tif", "png"):
        out = tmp_path / f"back.{suffix}"
        assert main(["decode-depth", str(tmp_path / "d.png"), "--out", str(out)]) == 0
        back = read_depth(out)
        assert np.isnan(back[0, 0])
        tol = 0.003 if suffix != "png" else 0.004  # png stores whole millimetres
        assert np.nanmax(np.abs(back - depth) / depth) < tol
    assert "valid pixels" in capsys.readouterr().out


def test_integer_depth_png_with_scale(tmp_path: Path) -> None:
    from PIL import Image

    raw = np.full((8, 8), 10000, np.uint16)
    raw[0] = 0
    Image.fromarray(raw).save(tmp_path / "tum.png")
    assert (
        main(["encode-depth", str(tmp_path / "tum.png"), "--depth-scale-m", "0.0002", "--out", str(tmp_path / "e.png")])
        == 0
    )
    assert main(["decode-depth", str(tmp_path / "e.png"), "--out", str(tmp_path / "d.npy")]) == 0
    d = np.load(tmp_path / "d.npy")
    assert np.all(np.isnan(d[0])) and np.allclose(d[1:], 2.0, rtol=0.002)


def test_normals_round_trip_in_the_optical_frame(tmp_path: Path) -> None:
    n = np.random.default_rng(1).normal(size=(6, 7, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    np.save(tmp_path / "n.npy", n)
    assert (
        main(["encode-normals", str(tmp_path / "n.npy"), "--frame", "optical", "--out", str(tmp_path / "n.png")]) == 0
    )
    assert (
        main(["decode-normals", str(tmp_path / "n.png"), "--frame", "optical", "--out", str(tmp_path / "b.npy")]) == 0
    )
    back = np.load(tmp_path / "b.npy")
    assert np.degrees(np.arccos(np.clip(np.sum(n * back, -1), -1, 1))).max() < 0.5


def test_parse_prompt_prints_the_spec_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-prompt", "Segment the cat in red and the dog in <0, 0, 255>", "--compact"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec == {
        "task": "semantic",
        "classes": [{"name": "cat", "rgb": [255, 0, 0]}, {"name": "dog", "rgb": [0, 0, 255]}],
        "background": [0, 0, 0],
    }


def test_render_prompt_prints_parseable_variants(capsys: pytest.CaptureFixture[str]) -> None:
    from vb_perception.prompts import parse_prompt

    assert main(["render-prompt", "Each price tag is colored differently", "--n", "4", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert all(parse_prompt(line) == parse_prompt("Each price tag is colored differently") for line in lines)


def test_bad_input_exits_2_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-prompt", "Segment the cat in blurple"]) == 2
    assert "did you mean 'purple'" in capsys.readouterr().err
    assert main(["decode-depth", str(tmp_path / "missing.png"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert main(["decode-depth", str(tmp_path / "junk.png"), "--out", str(tmp_path / "x.npy")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["encode-depth", "x.npy", "--out", "y.png", "--colormap", "jet"])
    assert exc.value.code == 2


def test_demo_writes_the_panel_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["codec-demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "AbsRel" in out and "panel:" in out
    report = json.loads((tmp_path / "codec_report.json").read_text())
    assert report["png_abs_rel"] < 0.001 and report["jpeg_abs_rel"] < 0.01
    assert report["invalid_kept_invalid"] is True
    assert report["normals_mean_angle_deg"] < 0.5
    panel = read_rgb(tmp_path / "codec_panel.png")
    assert panel.shape[0] > 400 and panel.shape[1] > 800
    assert panel.std() > 20  # a picture, not a blank canvas


def test_installed_console_script_has_help_everywhere() -> None:
    exe = shutil.which("vb-perception") or str(Path(__file__).resolve().parents[1] / ".venv/bin/vb-perception")
    if not Path(exe).exists():
        pytest.skip("vb-perception is not installed in this environment (pip install -e . installs it)")
    top = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for command in (
        "encode-depth",
        "decode-depth",
        "encode-normals",
        "decode-normals",
        "parse-prompt",
        "demo",
        "codec-demo",
    ):
        assert command in top
        sub = subprocess.run([exe, command, "--help"], capture_output=True, text=True, check=True).stdout
        assert "Example:" in sub
