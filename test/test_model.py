"""The generator: conditioning, the frozen text encoder, sampling, and safetensors persistence."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the generator needs torch")
pytest.importorskip("diffusers", reason="the generator needs diffusers")

from tiny_models import TINY

from vb_perception.model.conditioning import TASK_CODES, task_code, tokens_for
from vb_perception.model.generator import ModelError, VBGenerator
from vb_perception.model.text import TextEncoder
from vb_perception.prompts import parse_prompt

PROMPTS = [
    "Generate a metric depth map of this image.",
    "Visualize the depth with the plasma colormap",
    "surface normals",
    "Segment the cat in red and the dog in <0, 0, 255>",
    "Each car is colored differently. The background is white.",
    "The area that corresponds to the man in pink t shirt is rendered solid white.",
]


@pytest.fixture(scope="module")
def text() -> TextEncoder:
    return TextEncoder()


def test_every_task_has_its_code_and_tokens() -> None:
    codes = [task_code(parse_prompt(p)) for p in PROMPTS]
    assert [TASK_CODES[c] for c in codes] == [
        "depth/hilbert",
        "depth/plasma",
        "normals",
        "semantic",
        "instances",
        "referring",
    ]
    sem = tokens_for(PROMPTS[3], parse_prompt(PROMPTS[3]))
    assert sem.texts == (PROMPTS[3], "", "cat", "dog")
    assert sem.colors == ((0, 0, 0), (0, 0, 0), (255, 0, 0), (0, 0, 255))
    inst = tokens_for(PROMPTS[4], parse_prompt(PROMPTS[4]))
    assert inst.texts[-1] == "car" and inst.colors[1] == (255, 255, 255)
    assert tokens_for(PROMPTS[2], parse_prompt(PROMPTS[2])).texts == (PROMPTS[2],)


def test_text_encoder_is_the_real_minilm_and_caches(text: TextEncoder) -> None:
    emb = text.encode(["a cat", "a kitten", "a dump truck", "a cat"])
    assert emb.shape == (4, 384)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.2  # meaning, not spelling
    torch.testing.assert_close(emb[0], emb[3])
    assert "a cat" in text._cache


def test_forward_sample_and_seeds(text: TextEncoder) -> None:
    torch.manual_seed(0)
    model = VBGenerator(TINY).eval()
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS]
    cond = model.conditioning(items, text)
    assert cond[0].shape == (6, 4, 384) and cond[4].shape == (6, 5)  # padded tokens + task token mask
    img = torch.rand(6, 3, 32, 40) * 2 - 1  # any size that is a multiple of 8
    out = model(img, torch.zeros_like(img), torch.full((6,), 999), cond)
    assert out.shape == img.shape
    a = model.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))
    b = model.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))
    c = model.sample(img, cond, steps=3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    assert a.abs().max() <= 1.0 and c.shape == a.shape
    # the prompt changes the output: same image, different prompts
    assert (a[0] - a[3]).abs().mean() > 1e-4


def test_save_and_load_roundtrip_in_fp16_safetensors(tmp_path: Path) -> None:
    model = VBGenerator(replace(TINY, model_version="test-1"))
    folder = model.save_pretrained(tmp_path / "m")
    raw = (folder / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"F16"}
    loaded = VBGenerator.from_pretrained(folder)
    assert loaded.config.model_version == "test-1" and loaded.config.block_out_channels == (16, 32)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(v.half().float(), v2)


def test_wrong_model_folders_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a vb_perception model folder"):
        VBGenerator.from_pretrained(tmp_path)
    folder = VBGenerator(TINY).save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        VBGenerator.from_pretrained(folder)
    VBGenerator(TINY).save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["block_out_channels"] = [16, 48]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="weights do not fit the config"):
        VBGenerator.from_pretrained(folder)
    cfg["colour_magic"] = 1
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="unknown fields"):
        VBGenerator.from_pretrained(folder)


def test_pickle_is_never_used_for_weights() -> None:
    import inspect

    import vb_perception.model.generator as gen
    import vb_perception.offline.tune as tune

    for module in (gen, tune):
        source = inspect.getsource(module)
        assert "torch.load(" not in source and "pickle.load" not in source and "load_file" in source


def test_palette_planes_and_growing_a_checkpoint_keeps_its_outputs() -> None:
    from vb_perception.model.generator import palette_planes

    text = TextEncoder()
    prompts = ["Generate a metric depth map", '{"cat": "red", "background": "#0000FF"}']
    items = [tokens_for(p, parse_prompt(p)) for p in prompts]
    model = VBGenerator(TINY).eval()
    cond = model.conditioning(items, text)
    planes = palette_planes(cond[1], cond[2], (4, 5))
    assert planes.shape == (2, 6, 4, 5)
    assert torch.all(planes[0] == 0)  # depth: no palette
    torch.testing.assert_close(planes[1, :, 0, 0], torch.tensor([-1.0, -1.0, 1.0, 1.0, -1.0, -1.0]))  # blue, red
    grown = model.with_palette_channels(6).eval()
    assert grown.unet.conv_in.in_channels == 12 and grown.config.palette_channels == 6
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    a = model.sample(image, cond, steps=2, generator=torch.Generator().manual_seed(0))
    b = grown.sample(image, cond, steps=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)  # zero-initialised planes: the same function until trained
