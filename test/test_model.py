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
    # many new sentences of mixed lengths: embedded in length-sorted chunks, each as on its own, in input order
    many = [f"segment the {'very ' * (i % 7)}big object number {i}" for i in range(40)]
    together = text.encode(many)
    alone = torch.cat([text._embed([m]) for m in many])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)
    # as on a GPU: all new sentences in one call, the same embeddings
    one_call = TextEncoder()
    one_call.chunk = 1 << 16
    torch.testing.assert_close(one_call.encode(many), alone, atol=1e-5, rtol=0)
    assert text.chunk == 16  # the CPU default


def test_batch_tokens_looks_every_token_up_and_pads_with_zeros(text: TextEncoder) -> None:
    from vb_perception.model.conditioning import batch_tokens

    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS]
    emb, colors, roles, task, mask, camera = batch_tokens(items, text, torch.device("cpu"), camera=True)
    length = max(len(t.texts) for t in items)
    assert emb.shape == (len(items), length, 384) and colors.dtype == torch.float32 and camera.shape[0] == len(items)
    for b, item in enumerate(items):
        for k in range(length):
            s = item.texts[k] if k < len(item.texts) else ""
            expected = text.encode([s])[0] if s else torch.zeros(384)  # empty (background) and padding: zeros
            torch.testing.assert_close(emb[b, k], expected)
        n = len(item.texts)
        assert mask[b].tolist() == [1] * (n + 1) + [0] * (length - n)
        assert colors[b, :n].mul(255).round().int().tolist() == [list(c) for c in item.colors]
        assert roles[b, :n].tolist() == list(item.roles) and int(task[b]) == item.task


def test_padding_to_a_fixed_token_count_changes_no_output(text: TextEncoder) -> None:
    from vb_perception.model.conditioning import INSTANCE_TOKENS

    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, palette_head_dim=8, depth_head=True, focal_conditioning=True)).eval()
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS if "car" not in p]  # no instance prompt: short
    tight = model.conditioning(items, text)
    padded = model.conditioning(items, text, min_length=INSTANCE_TOKENS)
    assert tight[0].shape[1] < INSTANCE_TOKENS == padded[0].shape[1]
    img = torch.rand(len(items), 3, 32, 32) * 2 - 1
    t = torch.full((len(items),), 999)
    with torch.no_grad():
        torch.testing.assert_close(model(img, img, t, tight), model(img, img, t, padded), atol=1e-5, rtol=1e-5)
    longest = tokens_for(PROMPTS[4], parse_prompt(PROMPTS[4]))  # the instance prompt fits the fixed count
    assert len(longest.texts) <= INSTANCE_TOKENS


def test_forward_sample_and_seeds(text: TextEncoder) -> None:
    torch.manual_seed(0)
    model = VBGenerator(TINY).eval()
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS]
    cond = model.conditioning(items, text)
    # padded tokens + task token mask; the longest is the instance prompt: prompt, background, 15 slots (white is
    # its background, so the white slot is out)
    assert cond[0].shape == (6, 17, 384) and cond[4].shape == (6, 18)
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


def test_rows_can_share_a_noise_draw() -> None:
    from vb_perception.model.base import draw_noise

    plain = draw_noise((3, 2, 4, 4), torch.Generator().manual_seed(5))
    shared = draw_noise((5, 2, 4, 4), torch.Generator().manual_seed(5), [0, 1, 2, 0, 2])
    torch.testing.assert_close(shared[:3], plain)  # rows 0-2 as three rows of their own
    torch.testing.assert_close(shared[3], plain[0])
    torch.testing.assert_close(shared[4], plain[2])
    with pytest.raises(ValueError, match="one draw index"):
        draw_noise((2, 3), None, [0])


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


def test_space_to_depth_runs_at_lower_resolution_and_keeps_the_output_size(text: TextEncoder) -> None:
    cfg = replace(TINY, space_to_depth=2)
    model = VBGenerator(cfg).eval()
    assert model.unet.conv_in.in_channels == 24 and model.unet.conv_out.out_channels == 12
    assert model.size_multiple == 8  # 2 levels x space-to-depth 2 -> 4, at least 8
    assert VBGenerator(replace(TINY, space_to_depth=4)).size_multiple == 8
    three_levels = {"block_out_channels": (16, 32, 32), "down_block_types": ("DownBlock2D",) * 3}
    three_levels["up_block_types"] = ("UpBlock2D",) * 3
    assert VBGenerator(replace(TINY, space_to_depth=4, **three_levels)).size_multiple == 16
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS[:2]]
    cond = model.conditioning(items, text)
    img = torch.rand(2, 3, 24, 40) * 2 - 1
    assert model.sample(img, cond, steps=1).shape == img.shape
    # the unshuffled channels keep the input planes in blocks, so growing palette planes is still exact
    grown = model.with_palette_channels(6).eval()
    gen = torch.Generator().manual_seed(3)
    a = model.sample(img, cond, steps=1, generator=gen)
    b = grown.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    with pytest.raises(ModelError, match="space_to_depth"):
        VBGenerator(replace(TINY, space_to_depth=3))


def test_palette_head_paints_exactly_the_requested_colours(text: TextEncoder) -> None:
    from vb_perception.codecs import decode_semantic
    from vb_perception.offline.tune import palette_losses

    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, palette_head_dim=8)).eval()
    prompts = ['{"cat": "red", "dog": <0, 0, 255>, "background": "#00FF00"}', "Generate a metric depth map"]
    items = [tokens_for(p, parse_prompt(p)) for p in prompts]
    cond = model.conditioning(items, text)
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    aux: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        out = model(img, torch.zeros_like(img), torch.full((2,), 999), cond, aux=aux)
    assert aux["logits"].shape == (2, 4, 32, 32)
    assert aux["uses_palette"].tolist() == [True, False]
    assert aux["valid"][0].tolist() == [False, True, True, True]  # prompt token out; background + two classes in
    # every semantic pixel is a convex mix of exactly the three requested colours
    rgb = (out[0] + 1) / 2
    assert torch.allclose(rgb.sum(0), torch.ones(32, 32), atol=1e-5)  # each palette colour has one channel at 1
    assert rgb.min() >= -1e-6
    # sharp logits give the colours exactly: decoding cannot confuse them
    sharp = aux["logits"] * 1e6
    probs = sharp[0].softmax(0)
    mixed = torch.einsum("lhw,lc->chw", probs, cond[1][0])
    spec = parse_prompt(prompts[0])
    rgb8 = (mixed.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    labels = decode_semantic(rgb8, spec.palette, background_rgb=spec.background).labels
    winner = sharp[0, 1:].argmax(0).numpy()  # 0 background, 1 cat, 2 dog
    assert (labels == winner).all()
    # the cross-entropy is taken against the palette entry each target pixel is painted in
    target = torch.full((2, 3, 32, 32), -1.0)
    target[0, 0] = 1.0  # every pixel red = "cat" (index 2: prompt, background, cat, dog)
    ce = palette_losses(aux, target, cond[1])[0]
    manual = torch.nn.functional.cross_entropy(aux["logits"][:1], torch.full((1, 32, 32), 2))
    torch.testing.assert_close(ce, manual)


def test_palette_dice_rewards_the_right_small_region() -> None:
    from vb_perception.offline.tune import palette_losses

    colors = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])  # prompt, background, class
    aux = {
        "valid": torch.tensor([[False, True, True]]),
        "is_class": torch.tensor([[False, False, True]]),
        "uses_palette": torch.tensor([True]),
        "is_instances": torch.tensor([False]),
    }
    target = torch.zeros(1, 3, 8, 8)
    target[0, 2] = 1.0  # blue background ...
    target[0, :, 2:4, 2:4] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # ... and a 2x2 red object
    target = target * 2 - 1
    right = torch.full((1, 3, 8, 8), -1e4)
    right[0, 1] = 10.0
    right[0, 2, 2:4, 2:4] = 20.0
    all_background = right.clone()
    all_background[0, 2] = -10.0
    ce_r, dice_r = palette_losses(aux | {"logits": right}, target, colors)
    ce_b, dice_b = palette_losses(aux | {"logits": all_background}, target, colors)
    assert ce_r < 1e-3 and dice_r < 0.05  # the object found: both losses vanish
    assert dice_b > 0.75  # missing the object costs the Dice nearly 1 ...
    assert ce_b < 2.0 < dice_b * 3  # ... while cross-entropy, averaged over pixels, barely notices


def test_instance_prompts_use_the_slot_palette(text: TextEncoder) -> None:
    from vb_perception.colors import INSTANCE_SLOT_COLORS, instance_slots

    model = VBGenerator(replace(TINY, palette_head_dim=8)).eval()
    from vb_perception.prompts import InstanceSpec, render_prompt

    prompt = render_prompt(InstanceSpec("chair", (255, 0, 0)), rng=0)
    spec = parse_prompt(prompt)
    item = tokens_for(prompt, spec)
    slots = instance_slots(spec.background)
    assert (255, 0, 0) not in slots and len(slots) == len(INSTANCE_SLOT_COLORS) - 1
    assert item.colors[2:] == slots and set(item.texts[2:]) == {"chair"}
    cond = model.conditioning([item], text)
    img = torch.rand(1, 3, 32, 32) * 2 - 1
    aux: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        out = model(img, torch.zeros_like(img), torch.full((1,), 999), cond, aux=aux)
    assert aux["uses_palette"].tolist() == [True] and aux["is_instances"].tolist() == [True]
    assert aux["valid"][0].tolist() == [False] + [True] * (1 + len(slots))
    # the output is a convex mix of the background and slot colours: inside their bounding box
    rgb = (out[0] + 1) / 2
    assert rgb.min() >= -1e-6 and rgb.max() <= 1 + 1e-6


def test_instance_targets_are_matched_to_the_slots_the_model_prefers() -> None:
    from vb_perception.offline.tune import palette_losses, palette_targets

    # prompt, background (black), three slots: red, green, blue
    colors = torch.tensor([[[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]])
    aux = {
        "valid": torch.tensor([[False, True, True, True, True]]),
        "is_class": torch.tensor([[False, False, True, True, True]]),
        "uses_palette": torch.tensor([True]),
        "is_instances": torch.tensor([True]),
    }
    target = torch.full((1, 3, 8, 8), -1.0)  # black background
    target[0, 0, :4, :4] = 1.0  # instance A painted red
    target[0, 1, 4:, 4:] = 1.0  # instance B painted green
    logits = torch.full((1, 5, 8, 8), -20.0)
    logits[0, 1] = 5.0  # background elsewhere
    logits[0, 4, :4, :4] = 10.0  # the model paints A blue ...
    logits[0, 2, 4:, 4:] = 10.0  # ... and B red: another permutation, just as right
    logits[0, 0] = -1e4
    aux["logits"] = logits
    index, repainted = palette_targets(aux, target, colors)
    assert (index[0, :4, :4] == 4).all() and (index[0, 4:, 4:] == 2).all() and (index[0, :4, 4:] == 1).all()
    assert (repainted[0, :, :4, :4] == torch.tensor([-1.0, -1, 1])[:, None, None]).all()  # A now blue
    assert (repainted[0, :, 4:, 4:] == torch.tensor([1.0, -1, -1])[:, None, None]).all()  # B now red
    ce, dice = palette_losses(aux, target, colors)
    assert ce < 1e-2 and dice < 0.4  # only the unused slot's smoothing term is left
    # painting both instances in one slot is wrong whatever the matching
    merged = logits.clone()
    merged[0, 2, :4, :4], merged[0, 4, :4, :4] = 10.0, -20.0
    ce_m, _ = palette_losses(aux | {"logits": merged}, target, colors)
    assert ce_m > 2.0


def test_depth_head_draws_on_the_walk_and_starts_as_the_model_it_grew_from(text: TextEncoder) -> None:
    from vb_perception.codecs import torch_ops
    from vb_perception.offline.tune import TrainConfig, decoded_losses

    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, palette_head_dim=8)).eval()
    head = model.with_depth_head().eval()
    assert head.config.depth_head and head.unet.conv_out.out_channels == 3 + 8 + 1
    prompts = ["Generate a metric depth map", "surface normals", '{"cat": "red"}', "depth with the plasma colormap"]
    items = [tokens_for(p, parse_prompt(p)) for p in prompts]
    cond = model.conditioning(items, text)
    img = torch.rand(4, 3, 32, 32) * 2 - 1
    gen = torch.Generator().manual_seed(1)
    a = model.sample(img, cond, steps=1, generator=gen)
    b = head.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a[1:], b[1:])  # other tasks (and other colormaps) untouched
    depth_a = torch_ops.decode_depth((a[0] + 1) / 2, channel_dim=0)
    depth_b = torch_ops.decode_depth((b[0] + 1) / 2, channel_dim=0)
    torch.testing.assert_close(depth_a, depth_b, rtol=1e-4, atol=1e-5)  # same depths until trained
    on_walk = torch_ops.curve_to_rgb(torch_ops.rgb_to_curve((b[0] + 1) / 2, channel_dim=0), channel_dim=0)
    torch.testing.assert_close((b[0] + 1) / 2, on_walk, atol=1e-5, rtol=0)  # the depth colour lies on the walk
    # the decoded-value loss reaches the correction channel's zero weights at once
    head.train()
    aux: dict[str, torch.Tensor] = {}
    pred = head(img, torch.zeros_like(img), torch.full((4,), 999), cond, aux=aux)
    assert aux["is_depth"].tolist() == [True, False, False, False] and aux["depth_curve"].shape == (4, 32, 32)
    specs = [parse_prompt(p) for p in prompts]
    losses = decoded_losses(head, pred, img, img, specs, TrainConfig(), aux, cond[1])
    losses["total"].backward()
    grad = head.unet.conv_out.weight.grad
    assert grad is not None and float(grad[-1].abs().sum()) > 0  # the last row: the correction
    plain = VBGenerator(replace(TINY, depth_head=True)).eval()  # no palette head: free RGB + correction
    assert plain(img, torch.zeros_like(img), torch.full((4,), 999), cond).shape == img.shape


def test_depth_head_saves_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    head = VBGenerator(replace(TINY, palette_head_dim=8, depth_head=True))
    loaded = VBGenerator.from_pretrained(head.save_pretrained(tmp_path / "m"))
    assert loaded.config.depth_head and loaded.unet.conv_out.out_channels == 12
    torch.testing.assert_close(loaded.unet.conv_out.weight, head.unet.conv_out.weight.half().float())


def test_camera_features_tell_known_focal_lengths_apart_and_unknown_from_all() -> None:
    from vb_perception.errors import VbPerceptionError
    from vb_perception.model.conditioning import CAMERA_DIM, camera_features, focal_ratio
    from vb_perception.runtime.spec import CAMERA_DIM as SPEC_CAMERA_DIM

    assert SPEC_CAMERA_DIM == CAMERA_DIM  # the torch-free export spec agrees with the model
    assert focal_ratio(525.0, 480, 640) == pytest.approx(525 / 480) and focal_ratio(None, 480, 640) is None
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(VbPerceptionError, match="positive focal length"):
            focal_ratio(bad, 480, 640)
    f = camera_features([None, 0.5, 1.0, 2.0])
    assert f.shape == (4, CAMERA_DIM) and bool(torch.isfinite(f).all())
    assert f[0].tolist() == [0.0, 1.0] + [0.0] * (CAMERA_DIM - 2)  # unknown: its own flag, nothing else
    assert (f[1:, 0] == 1).all() and (f[1:, 1] == 0).all()
    assert torch.cdist(f[1:], f[1:]).triu(1)[torch.ones(3, 3).triu(1).bool()].min() > 0.3  # distinct cameras


def test_focal_conditioning_grows_as_the_same_model_then_uses_the_focal_length(text: TextEncoder) -> None:
    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, palette_head_dim=8, depth_head=True)).eval()
    grown = model.with_focal_conditioning().eval()
    assert grown.config.focal_conditioning and grown.cond_names[-1] == "camera" and "camera" not in model.cond_names
    prompts = ["Generate a metric depth map", "surface normals", '{"cat": "red"}']
    img = torch.rand(3, 3, 32, 32) * 2 - 1

    def run(m: VBGenerator, focal: float | None) -> torch.Tensor:
        cond = m.conditioning([tokens_for(p, parse_prompt(p), focal) for p in prompts], text)
        return m.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))

    base = run(model, None)
    assert len(model.conditioning([tokens_for(prompts[0], parse_prompt(prompts[0]), 0.8)], text)) == 5
    for focal in (None, 0.6, 1.3):  # zero projection: every camera gives what the model gave
        torch.testing.assert_close(run(grown, focal), base)
    with torch.no_grad():
        grown.unet.time_embedding.cond_proj.weight.normal_()  # as if trained
    near, far, unknown = run(grown, 1.3), run(grown, 0.6), run(grown, None)
    assert (near - far).abs().max() > 1e-3 and (near - unknown).abs().max() > 1e-3
    cond5 = grown.conditioning([tokens_for(p, parse_prompt(p)) for p in prompts], text)[:5]  # no camera: unknown
    torch.testing.assert_close(grown.sample(img, cond5, steps=1, generator=torch.Generator().manual_seed(1)), unknown)


def test_focal_conditioning_saves_and_loads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, focal_conditioning=True))
    loaded = VBGenerator.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert loaded.config.focal_conditioning
    w = model.unet.time_embedding.cond_proj.weight
    torch.testing.assert_close(loaded.unet.time_embedding.cond_proj.weight, w.half().float())


def test_attention_head_channels_regroup_the_same_weights_into_heads(tmp_path: Path, text: TextEncoder) -> None:
    from vb_perception.model.generator import ModelError, attention_heads

    torch.manual_seed(0)
    assert attention_heads(TINY) == 8  # diffusers' attention_head_dim: the number of heads, whatever the width
    model = VBGenerator(TINY).eval()
    regrouped = model.with_attention_head_channels(16).eval()
    assert attention_heads(regrouped.config) == (1, 2)
    heads = {n: m.heads for n, m in regrouped.unet.named_modules() if type(m).__name__ == "Attention"}
    assert heads and all(h == 2 for h in heads.values())  # attention runs at the 32-channel level only
    for (name, a), (_, b) in zip(model.state_dict().items(), regrouped.state_dict().items()):
        assert torch.equal(a, b), name  # the same weights ...
    prompts = ["Generate a metric depth map", '{"cat": "red"}']
    img = torch.rand(2, 3, 32, 32) * 2 - 1
    cond = model.conditioning([tokens_for(p, parse_prompt(p)) for p in prompts], text)
    a, b = (m.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1)) for m in (model, regrouped))
    assert (a - b).abs().max() > 1e-4  # ... another function
    loaded = VBGenerator.from_pretrained(regrouped.save_pretrained(tmp_path / "m"))
    assert loaded.config.attention_head_channels == 16 and attention_heads(loaded.config) == (1, 2)
    with pytest.raises(ModelError, match="does not divide the block widths"):
        attention_heads(replace(TINY, attention_head_channels=12))


def test_refinement_grows_as_the_same_model_and_every_layer_then_learns(tmp_path: Path, text: TextEncoder) -> None:
    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, space_to_depth=2, palette_head_dim=8, depth_head=True)).eval()
    grown = model.with_refine(8).eval()
    assert grown.config.refine_channels == 8 and grown.refine[0].in_channels == 3 + (3 + 8 + 1)
    items = [tokens_for(p, parse_prompt(p)) for p in PROMPTS]
    cond = model.conditioning(items, text)
    img = torch.rand(len(PROMPTS), 3, 32, 32) * 2 - 1
    a = model.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))
    b = grown.sample(img, cond, steps=1, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)  # the last convolution starts at zero
    # it is not a dead branch: the zero layer gets a gradient at once, the layers before it after one step
    grown.train()
    params = list(grown.refine.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    noisy, t = torch.randn_like(img), torch.full((len(PROMPTS),), 999)
    grown(img, noisy, t, cond).square().mean().backward()
    assert float(grown.refine[-1].weight.grad.abs().sum()) > 0
    assert float(grown.refine[0].weight.grad.abs().sum()) == 0
    opt.step()
    opt.zero_grad()
    grown(img, noisy, t, cond).square().mean().backward()
    assert float(grown.refine[0].weight.grad.abs().sum()) > 0
    loaded = VBGenerator.from_pretrained(grown.save_pretrained(tmp_path / "m"))
    assert loaded.config.refine_channels == 8
    torch.testing.assert_close(loaded.refine[-1].weight, grown.refine[-1].weight.detach().half().float())
    assert grown.with_refine(8) is grown
    with pytest.raises(ModelError, match="already has a refinement of width 8"):
        grown.with_refine(16)
