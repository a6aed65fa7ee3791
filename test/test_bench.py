"""bench/train_step.py: the step breakdown the GPU runs are tuned by (here on the CPU, on the tiny config)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from scripts_loader import load_script

pytest.importorskip("diffusers", reason="the generator needs diffusers")

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "train_step.py"
TINY = REPO / "config" / "tune" / "tiny.yaml"


def _bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(BENCH), "--config", str(TINY), *args]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_train_step_bench_times_every_part_for_each_batch_size(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--batch", "2", "3", "--steps", "1", "--warmup", "0")
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert "batch 2" in rows["part (eager, CPU, 2 threads)"] and "batch 3" in rows["part (eager, CPU, 2 threads)"]
    for part in ("data", "text conditioning", "forward + losses", "backward", "optimizer", "EMA"):
        cells = [c.strip() for c in rows[part].split("|")[2:-1]]
        assert len(cells) == 2 and all(c.endswith(" ms") and float(c[:-3]) >= 0 for c in cells), rows[part]
    assert "/s)" in rows["**step**"] and "/s)" in rows["the same, parts not synchronized (as training runs)"]


def test_train_step_bench_says_when_there_is_no_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = _bench(tmp_path, "--device", "cuda")
    assert done.returncode != 0 and "no CUDA device here" in done.stderr


def test_train_step_bench_writes_json_rows_the_device_pick_reads(tmp_path: Path) -> None:
    import json

    out = tmp_path / "bench.jsonl"
    args = ("--batch", "2", "3", "--steps", "1", "--warmup", "1", "--data-threads", "1", "--json", str(out))
    done = _bench(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["batch"] for r in rows] == [2, 3] and all(r["compile"] is False and r["data_threads"] == 1 for r in rows)
    assert all(
        set(r["parts_ms"]) == {"data", "text conditioning", "forward + losses", "backward", "optimizer", "EMA"}
        for r in rows
    )
    assert all(r["warmup_s"] > 0 and r["pipelined_step_ms"] > 0 for r in rows)
    kit = load_script("device_kit")
    chosen = kit.pick(out, batch=2, lr=1e-3, workers=1, train_s=60)
    assert chosen in ({}, {"train.batch_size": 3, "train.compile": False, "train.lr": float(f"{1e-3 * 1.5**0.25:.3g}")})


def test_ensemble_bench_prints_every_variant_and_the_uncertainty_check(tmp_path: Path) -> None:
    pytest.importorskip("open3d", reason="the bench reads synthetic samples")
    import torch
    from tiny_models import TINY

    from vb_perception.model.generator import VBGenerator
    from vb_perception.offline.synth.dataset import SynthConfig, write_dataset

    torch.manual_seed(0)
    model = VBGenerator(TINY).save_pretrained(tmp_path / "tiny")
    write_dataset(SynthConfig(res_px=32, seed=777), 2, tmp_path / "data", workers=1, progress=False)
    cmd = [sys.executable, str(REPO / "bench" / "ensemble.py"), "--model", str(model), "--data", str(tmp_path / "data")]
    done = subprocess.run(
        [*cmd, "--n", "2", "--repeat", "1"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")]
    assert {"one generation", "+ mirrored", "2 seeds", "4 seeds", "2 seeds x mirrored"} <= set(rows)
    assert "Spearman" in done.stdout and {"0%", "20%"} <= set(rows)
    assert {"one generation", "+ mirrored, a second call", "+ mirrored, same batch (`flip_average`)"} <= set(rows)
