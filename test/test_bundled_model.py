"""The bundled model in models/vb-mini: it loads by default, is fp16 safetensors within budget, and predicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the generator needs torch")
pytest.importorskip("diffusers", reason="the generator needs diffusers")

from vb_perception.cli import main
from vb_perception.pipeline import default_model_dir

BUNDLED = Path(__file__).resolve().parents[1] / "models" / "vb-mini"


def test_bundled_model_is_fp16_safetensors_with_a_model_card() -> None:
    assert default_model_dir().resolve() == BUNDLED.resolve()
    weights = BUNDLED / "model.safetensors"
    assert weights.stat().st_size <= 50 * 2**20
    raw = weights.read_bytes()[:200_000]
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    card = (BUNDLED / "MODEL_CARD.md").read_text()
    for must in ("black → red → yellow → green → cyan → blue → magenta → white", "Limitations", "δ1", "wall"):
        assert must in card


def test_predict_with_the_bundled_model_writes_metric_depth(tmp_path: Path, tum_frame: tuple[np.ndarray, ...]) -> None:
    from vb_perception.imageio import write_rgb

    image = write_rgb(tmp_path / "color.png", tum_frame[0])
    assert main(["predict", str(image), "--task", "depth", "--out", str(tmp_path / "out")]) == 0
    depth = np.load(tmp_path / "out" / "color" / "depth_m.npy")
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    finite = depth[np.isfinite(depth)]
    assert finite.size > 0.9 * depth.size
    assert 0.05 < np.median(finite) < 100.0  # metres, not a normalised or inverse depth


def test_flip_average_mirrors_back_and_averages_depth_and_normals(tum_frame: tuple[np.ndarray, ...]) -> None:
    from vb_perception.codecs import mirror_normals
    from vb_perception.pipeline import Perception

    rgb = np.ascontiguousarray(tum_frame[0][::6, ::6][8:72, :80])  # the processing size itself: no resampling
    fx_px = float(tum_frame[2][0, 0]) / 6
    prompts = ["Generate a metric depth map", "surface normals", '{"floor": "red"}']
    plain, mirrored = Perception(), Perception()
    d0, n0, s0 = plain(rgb, prompts, fx_px=fx_px)
    d1, n1 = mirrored(rgb[:, ::-1].copy(), prompts[:2], fx_px=fx_px)  # the same prompts and start noise, mirrored
    back = mirror_normals(n1.normals)
    # the mirrored image's normals, mirrored back with x negated, agree with the plain ones; without the sign, not
    cos = np.sum(back * n0.normals, -1)
    wrong = np.sum(n1.normals[:, ::-1] * n0.normals, -1)
    assert np.nanmean(cos) > 0.8 and np.nanmean(cos) > np.nanmean(wrong) + 0.05
    # flip_average runs those mirrored prompts as extra rows of the same batch: the same answer as the separate call
    # but for float rounding in a batch of another size (a generated pixel may land one 8-bit level away)
    both = Perception(flip_average=True)(rgb, prompts, fx_px=fx_px)
    depth = np.sqrt(d0.depth_m * d1.depth_m[:, ::-1])
    assert np.mean(np.isclose(both[0].depth_m, depth, rtol=1e-5, equal_nan=True)) > 0.99
    np.testing.assert_allclose(both[0].depth_m, depth, rtol=0.02)
    normals = n0.normals + back
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    assert np.mean(np.all(np.isclose(both[1].normals, normals, atol=1e-5, equal_nan=True), -1)) > 0.99
    np.testing.assert_allclose(both[1].normals, normals, atol=0.02)
    assert np.array_equal(both[2].labels, s0.labels)  # segmentation is not averaged
    # and one model call, not two
    calls = []
    pipe = Perception(flip_average=True)
    original = pipe.model.sample  # type: ignore[union-attr]
    pipe.model.sample = lambda x, *a, **k: calls.append(x.shape[0]) or original(x, *a, **k)  # type: ignore[union-attr]
    pipe(rgb, prompts, fx_px=fx_px)
    assert calls == [5]  # 3 prompts + depth and normals mirrored
