"""Bring your own base: `tune` / `distill` / the pipeline on a Stable-Diffusion-family checkpoint folder, here a tiny
randomly initialised one built in the test (same classes and layout as a real one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("diffusers", reason="needs diffusers")
pytest.importorskip("accelerate", reason="needs accelerate")
pytest.importorskip("open3d", reason="tuning renders its sample cache")

from safetensors.torch import load_file
from tiny_sd import make_tiny_sd

from vb_perception.cli import main
from vb_perception.model.generator import ModelError
from vb_perception.model.latent import LatentConfig, LatentGenerator
from vb_perception.model.loading import load_generator
from vb_perception.pipeline import DepthResult, Perception, SegmentationResult

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd")


@pytest.fixture(scope="module")
def tuned(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("byo")
    sets = [f"base={base}", f"run_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", "train.max_steps=3"]
    assert (
        main(["tune", "--config", str(REPO / "config/tune/tiny.yaml")] + [a for s in sets for a in ("--set", s)]) == 0
    )
    return root


def test_from_base_widens_conv_in_and_keeps_the_pretrained_response(base: Path) -> None:
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    model = LatentGenerator.from_base(base, LatentConfig(resolution_px=32))
    assert model.unet.conv_in.in_channels == 8 and model.unet.config.in_channels == 8
    z = torch.randn(1, 4, 8, 8)
    t = torch.tensor([500])
    hidden = torch.randn(1, 3, 32)
    with torch.no_grad():  # the same latent in both halves: the widened UNet answers like the original
        a = original(z, t, encoder_hidden_states=hidden).sample
        b = model.unet(torch.cat([z, z], 1), t, encoder_hidden_states=hidden).sample
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # structured tokens start silent
    assert all(float(p.detach().abs().sum()) == 0 for p in model.cond.out[-1].parameters())
    assert not any(n.startswith(("vae.", "text_encoder.")) for n, _ in model.named_trainable())


def test_tune_with_a_base_trains_exports_and_the_pipeline_runs_it(tuned: Path) -> None:
    folder = tuned / "run" / "model"
    config = json.loads((folder / "config.json").read_text())
    assert config["kind"] == "latent" and config["model_version"] == "tiny@3"
    assert {p.name for p in folder.iterdir()} >= {"unet", "vae", "text_encoder", "tokenizer", "adapter.safetensors"}
    suffixes = {p.suffix for p in (tuned / "run").rglob("*") if p.is_file()}
    assert suffixes <= {".safetensors", ".json", ".yaml", ".csv", ".png"}  # no pickle anywhere
    ckpt = set(load_file(str(tuned / "run/checkpoint/model.safetensors")))
    assert ckpt and not any(k.startswith(("vae.", "text_encoder.")) for k in ckpt)  # frozen parts stay out
    model = load_generator(folder)
    assert isinstance(model, LatentGenerator)
    start = LatentGenerator.from_base(model.config.base)
    for name, value in start.vae.state_dict().items():  # the VAE is frozen ...
        torch.testing.assert_close(model.vae.state_dict()[name], value)
    assert float(model.cond.out[-1].weight.detach().abs().sum()) > 0  # ... the adapter, silent at the start, learned
    pipe = Perception(folder)
    assert pipe.text is None  # CLIP is built in; no MiniLM load
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    depth, seg = pipe(image, ["Generate a metric depth map", "Segment the chair in red"])
    assert isinstance(depth, DepthResult) and depth.depth_m.shape == (48, 64) and depth.depth_m.dtype == np.float32
    assert isinstance(seg, SegmentationResult) and seg.labels.shape == (48, 64) and seg.class_names == ("chair",)
    assert depth.generated.shape[0] % pipe.model.size_multiple == 0


def test_distill_a_latent_model(tuned: Path, tmp_path: Path) -> None:
    sets = [f"teacher={tuned / 'run' / 'model'}", f"run_dir={tmp_path / 's'}", f"data.cache_dir={tuned / 'cache'}"]
    assert (
        main(["distill", "--config", str(REPO / "config/distill/tiny.yaml")] + [a for s in sets for a in ("--set", s)])
        == 0
    )
    student = load_generator(tmp_path / "s" / "model")
    assert isinstance(student, LatentGenerator) and student.config.notes["distilled_from"] == "tiny@3"


def test_bad_bases_are_clear_errors(base: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing unet/, vae/, text_encoder/, tokenizer/"):
        LatentGenerator.from_base(tmp_path)
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(base, pickled)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))  # only a pickle-format file left
    with pytest.raises(ModelError, match="weights must be safetensors"):
        LatentGenerator.from_base(pickled)
