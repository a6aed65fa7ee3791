"""The training cache of synthetic renders: growing it renders only the new samples, and it reads only 0..n-1."""

from __future__ import annotations

from pathlib import Path

from vb_perception.offline.cache import SampleCache, ensure_cache
from vb_perception.offline.synth.dataset import SynthConfig


def test_growing_the_cache_renders_only_new_samples(tmp_path: Path) -> None:
    cfg = SynthConfig(res_px=24, seed=31)
    first = ensure_cache(tmp_path, cfg, 2, workers=1)
    assert len(first) == 2
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    grown = ensure_cache(tmp_path, cfg, 3, workers=1)
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")}
    assert len(grown) == 3 and set(after) == set(before) | {"000002.npz"}
    assert all(after[name] == t for name, t in before.items())  # the old samples were not rendered again
    assert len(ensure_cache(tmp_path, cfg, 2, workers=1)) == 2  # a smaller n reads only 0..n-1
    assert grown[2].seed == 2 and grown[2].rgb.shape == (24, 24, 3)


def test_a_changed_config_renders_everything_again(tmp_path: Path) -> None:
    ensure_cache(tmp_path, SynthConfig(res_px=24, seed=31), 1, workers=1)
    old = (tmp_path / "000000.npz").stat().st_mtime_ns
    cache = ensure_cache(tmp_path, SynthConfig(res_px=16, seed=31), 1, workers=1)
    assert (tmp_path / "000000.npz").stat().st_mtime_ns != old
    assert cache[0].rgb.shape == (16, 16, 3)


def test_a_sample_without_its_sidecar_is_not_read(tmp_path: Path) -> None:
    ensure_cache(tmp_path, SynthConfig(res_px=24, seed=31), 2, workers=1)
    (tmp_path / "000001.json").unlink()  # a run killed between the two writes
    assert SampleCache(tmp_path).indices == [0]
