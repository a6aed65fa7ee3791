"""scripts/soup.py: the weighted average of models of one architecture, as a model folder."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="soups need torch")
pytest.importorskip("diffusers", reason="the generator needs diffusers")

from scripts_loader import load_script
from tiny_models import TINY

from vb_perception.model.generator import VBGenerator
from vb_perception.model.loading import load_generator

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "soup.py"
soup = load_script("soup")


def _model(tmp_path: Path, name: str, seed: int, config: object = TINY) -> Path:
    torch.manual_seed(seed)
    return VBGenerator(config).save_pretrained(tmp_path / name)  # type: ignore[arg-type]


def test_the_soup_is_the_weighted_average_and_loads(tmp_path: Path) -> None:
    a, b, c = (_model(tmp_path, n, s) for n, s in (("a", 0), ("b", 1), ("c", 2)))
    out = soup.soup(tmp_path / "soup", [(a, 0.5), (b, 0.25), (c, 0.25)])
    mixed = load_generator(out).state_dict()
    parts = [load_generator(m).state_dict() for m in (a, b, c)]
    for k, v in mixed.items():
        expected = parts[0][k].float() * 0.5 + parts[1][k].float() * 0.25 + parts[2][k].float() * 0.25
        torch.testing.assert_close(v.float(), expected)
    notes = json.loads((out / "config.json").read_text())["notes"]
    assert notes["step"] == 0 and [p["weight"] for p in notes["soup"]] == [0.5, 0.25, 0.25]


def test_the_soup_refuses_other_architectures_and_bad_weights(tmp_path: Path) -> None:
    a, b = _model(tmp_path, "a", 0), _model(tmp_path, "b", 1)
    wide = _model(tmp_path, "wide", 2, replace(TINY, palette_head_dim=8))
    with pytest.raises(soup.SoupError, match="another architecture"):
        soup.soup(tmp_path / "x", [(a, 0.5), (wide, 0.5)])
    with pytest.raises(soup.SoupError, match="sum to 1"):
        soup.soup(tmp_path / "x", [(a, 0.5), (b, 0.6)])
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "x"), f"{a}=0.5", f"{b}=half"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "MODEL=WEIGHT" in done.stderr
    assert not (tmp_path / "x").exists()  # nothing written on bad input
    # a config written before a field existed (here refine_channels) is that field at its default, not another
    # architecture
    config = json.loads((b / "config.json").read_text())
    del config["refine_channels"]
    (b / "config.json").write_text(json.dumps(config))
    assert load_generator(soup.soup(tmp_path / "old-and-new", [(a, 0.5), (b, 0.5)])).config.refine_channels == 0


def test_a_run_folder_gives_its_raw_weights_not_its_ema(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from vb_perception.cli import main

    tiny = REPO / "config" / "tune" / "tiny.yaml"
    run, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["tune", "--config", str(tiny), "--set", f"run_dir={run}", "--set", f"data.cache_dir={cache}"]) == 0
    out = soup.soup(tmp_path / "raw", [(run, 1.0)])  # a soup of one run: its raw weights as a model folder
    raw = load_file(run / "checkpoint" / "model.safetensors")
    loaded = load_generator(out).state_dict()
    for k, v in raw.items():
        torch.testing.assert_close(loaded[k].float(), v.float())
    ema = load_generator(run / "model").state_dict()
    assert any(not torch.allclose(ema[k].float(), v.float()) for k, v in raw.items())  # not the EMA
    notes = json.loads((out / "config.json").read_text())["notes"]
    assert notes["soup"][0]["raw"] is True and notes["soup"][0]["model_version"].startswith("tiny@")
    assert notes["step"] == 4 and notes["samples_seen"] > 0  # the run's own training, to bundle as its segment
    with pytest.raises(soup.SoupError, match="neither a model folder"):
        soup.soup(tmp_path / "x", [(tmp_path / "cache", 1.0)])
