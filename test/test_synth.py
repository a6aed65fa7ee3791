"""The synthetic data engine: renderers checked against analytic geometry, determinism, attributes, examples."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the synthetic data engine needs torch")
pytest.importorskip("open3d", reason="the renderer cross-checks need open3d-cpu")

from vb_perception.codecs import decode_depth, decode_normals, depth_code_step_m
from vb_perception.colors import instance_slots
from vb_perception.geometry import normals_from_depth
from vb_perception.offline.synth.dataset import SynthConfig, SynthError, SynthStream, load_sample, render_sample
from vb_perception.offline.synth.examples import TASKS, make_example, target_for
from vb_perception.offline.synth.generate import FAMILIES, generate_scene
from vb_perception.offline.synth.raycast import Open3DRaycaster, TorchRaycaster, make_raycaster
from vb_perception.offline.synth.render import render_scene
from vb_perception.offline.synth.scene import Camera, Light, Material, SceneBuilder
from vb_perception.prompts import InstanceSpec, ReferringSpec, SemanticSpec, parse_prompt

BACKENDS = [TorchRaycaster(), Open3DRaycaster()]
IDS = ["torch", "open3d"]


def _camera(w: int = 64, h: int = 48, f: float = 50.0) -> Camera:
    k = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    return Camera(w, h, k, np.eye(3), np.zeros(3))


def _scene(add) -> object:  # type: ignore[no-untyped-def]
    b = SceneBuilder("test")
    m = b.material(Material((0.5, 0.5, 0.5)))
    add(b, b.instance("thing", "gray", 1.0), m)
    return b.build(_camera(), Light("directional", np.array([0.0, 0.0, 1.0]), np.ones(3), 0.3), (0.5, 0.6, 0.9))


@pytest.mark.parametrize("caster", BACKENDS, ids=IDS)
def test_plane_at_known_distance_gives_exact_z_depth_and_normal(caster) -> None:  # type: ignore[no-untyped-def]
    scene = _scene(lambda b, i, m: b.quad(2, -3.0, -10, 10, -10, 10, i, m))  # the plane z = -3, facing the camera
    s = render_scene(scene, caster, sensor=None)
    np.testing.assert_allclose(s.depth_m, 3.0, rtol=1e-5)  # z-depth, not ray length, even in the corners
    np.testing.assert_allclose(s.normals.reshape(-1, 3), [[0.0, 0.0, 1.0]] * s.depth_m.size, atol=1e-5)
    assert np.all(s.instance_ids == 1) and s.instances[0].class_name == "thing"


@pytest.mark.parametrize("caster", BACKENDS, ids=IDS)
def test_sphere_depths_match_the_analytic_intersection(caster) -> None:  # type: ignore[no-untyped-def]
    c, r = np.array([0.3, -0.2, -5.0]), 1.2
    scene = _scene(lambda b, i, m: b.sphere(tuple(c), r, i, m))
    s = render_scene(scene, caster, sensor=None)
    d = scene.camera.ray_directions().astype(np.float64)  # optical z = 1 per ray
    a, bq, cq = (d * d).sum(1), -(d @ c), c @ c - r * r
    disc = bq * bq - a * cq
    t = np.where(disc >= 0, (-bq - np.sqrt(np.maximum(disc, 0))) / a, np.nan).reshape(s.depth_m.shape)
    inner = disc.reshape(t.shape) > 0.05 * np.nanmax(disc)  # away from the silhouette
    tol = 1e-4 if caster.name == "torch" else 0.01  # open3d renders a 16x32 tessellation (<= 0.5 % of r deep)
    np.testing.assert_allclose(s.depth_m[inner], t[inner], rtol=tol)
    assert np.array_equal(np.isfinite(s.depth_m)[inner], np.isfinite(t)[inner])
    # back-projected points lie on the sphere: depth is z-depth, not distance along the ray
    k = scene.camera.k
    v, u = np.nonzero(inner)
    z = s.depth_m[v, u]
    pts = np.stack([(u - k[0, 2]) / k[0, 0] * z, -(v - k[1, 2]) / k[1, 1] * z, -z], 1)
    np.testing.assert_allclose(np.linalg.norm(pts - c, axis=1), r, rtol=tol * 2)
    n = s.normals[v, u]
    np.testing.assert_allclose(n, (pts - c) / r, atol=0.02 if caster.name == "torch" else 0.05)


@pytest.mark.parametrize("caster", BACKENDS, ids=IDS)
def test_box_and_cylinder_faces(caster) -> None:  # type: ignore[no-untyped-def]
    def add(b, i, m):  # type: ignore[no-untyped-def]
        b.box((-1.0, 0.0, -4.0), (0.5, 0.5, 0.5), math.radians(30), i, m)
        b.cylinder(1.0, -0.5, -4.0, 1.0, 0.4, i, m)

    s = render_scene(_scene(add), caster, sensor=None)
    hit = np.isfinite(s.depth_m)
    assert 0.1 < hit.mean() < 0.6
    n = s.normals[hit]
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-4)
    assert np.all(n[:, 2] > -1e-3)  # visible faces face the camera


def test_backends_agree_on_random_scenes() -> None:
    for family in FAMILIES:
        scene = generate_scene(np.random.default_rng(7), (96, 72), family)
        a = render_scene(scene, BACKENDS[0], sensor=None)
        b = render_scene(scene, BACKENDS[1], sensor=None)
        assert np.array_equal(np.isfinite(a.depth_m), np.isfinite(b.depth_m)) or (
            np.mean(np.isfinite(a.depth_m) != np.isfinite(b.depth_m)) < 0.002
        )
        both = np.isfinite(a.depth_m) & np.isfinite(b.depth_m)
        rel = np.abs(a.depth_m[both] - b.depth_m[both]) / a.depth_m[both]
        assert np.percentile(rel, 99) < 0.01, family
        assert np.mean(a.instance_ids == b.instance_ids) > 0.99, family


def test_normals_agree_with_normals_from_depth_on_planar_regions() -> None:
    angles = []
    for seed in range(6):
        s = render_sample(SynthConfig(res_px=128, seed=seed), 0)
        from_depth = normals_from_depth(s.depth_m, s.k)  # optical frame
        rendered = s.normals * np.array([1.0, -1.0, -1.0], np.float32)  # camera -> optical
        # planar: the 3x3 neighbourhood is one instance with one rendered normal
        pad_ids = np.pad(s.instance_ids, 1, mode="edge")
        pad_n = np.pad(rendered, ((1, 1), (1, 1), (0, 0)), mode="edge")
        h, w = s.instance_ids.shape
        same = np.ones((h, w), bool)
        for dy in range(3):
            for dx in range(3):
                same &= pad_ids[dy : dy + h, dx : dx + w] == s.instance_ids
                same &= np.sum(pad_n[dy : dy + h, dx : dx + w] * rendered, -1) > math.cos(math.radians(0.5))
        ok = same & np.isfinite(from_depth[..., 0]) & (s.depth_m < 40.0)
        cos = np.clip(np.sum(from_depth[ok] * rendered[ok], -1), -1, 1)
        angles.append(np.degrees(np.arccos(cos)))
    assert np.mean(np.concatenate(angles)) <= 5.0


def test_samples_are_deterministic_by_seed_and_index() -> None:
    cfg = SynthConfig(res_px=64, seed=11)
    a, b, c = render_sample(cfg, 3), render_sample(cfg, 3), render_sample(cfg, 4)
    for key in ("rgb", "depth_m", "normals", "instance_ids"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert not np.array_equal(a.rgb, c.rgb)


def test_every_instance_id_has_a_class_name_and_sane_ground_truth() -> None:
    for i in range(12):
        s = render_sample(SynthConfig(res_px=64, seed=5), i)
        known = {info.id: info for info in s.instances}
        present = set(np.unique(s.instance_ids)) - {0}
        assert present == set(known)
        assert all(known[j].class_name for j in present)
        assert s.k.shape == (3, 3) and s.rgb.dtype == np.uint8 and s.depth_m.dtype == np.float32
        assert np.array_equal(np.isnan(s.depth_m), s.instance_ids == 0)
        hfov = 2 * math.degrees(math.atan(s.k[0, 2] / s.k[0, 0]))
        assert 40.0 < hfov < 105.0
        valid = np.isfinite(s.depth_m)
        np.testing.assert_allclose(np.linalg.norm(s.normals[valid], axis=-1), 1.0, atol=1e-4)


def test_training_examples_parse_back_and_targets_decode() -> None:
    rng = random.Random(0)
    seen = set()
    for i in range(10):
        s = render_sample(SynthConfig(res_px=64, seed=2), i)
        for task in TASKS:
            ex = make_example(s, rng, task=task)
            seen.add(ex.spec.task)
            assert parse_prompt(ex.prompt) == ex.spec, ex.prompt
            assert ex.target.shape == s.rgb.shape and ex.target.dtype == np.uint8
            if ex.spec.task == "depth" and ex.spec.colormap == "hilbert":
                d = decode_depth(ex.target)
                ok = np.isfinite(s.depth_m)
                assert np.all(np.abs(d[ok] - s.depth_m[ok]) <= 0.51 * depth_code_step_m(s.depth_m[ok]))
                assert np.all(np.isnan(d[~ok]))  # sky is drawn at the far end and decodes invalid
            if ex.spec.task == "normals":
                ok = np.isfinite(s.normals[..., 0])
                cos = np.sum(decode_normals(ex.target)[ok] * s.normals[ok], -1)
                assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.5
            if isinstance(ex.spec, (SemanticSpec, ReferringSpec)):
                allowed = {ex.spec.background, *ex.spec.palette.values()}
                assert {tuple(c) for c in np.unique(ex.target.reshape(-1, 3), axis=0)} <= allowed
            if isinstance(ex.spec, ReferringSpec):
                assert all(np.any(np.all(ex.target == c, -1)) for c in ex.spec.palette.values())
            if isinstance(ex.spec, InstanceSpec):
                members = [j.id for j in s.instances if j.class_name == ex.spec.class_name and j.area_px > 0]
                painted = np.unique(ex.target[np.isin(s.instance_ids, members)].reshape(-1, 3), axis=0)
                assert len(painted) == min(len(members), len(instance_slots(ex.spec.background)))
                assert {tuple(c) for c in painted} <= set(instance_slots(ex.spec.background))  # the model's slots
    assert seen == set(TASKS)


def test_target_for_semantic_paints_only_the_named_classes() -> None:
    s = render_sample(SynthConfig(res_px=64, seed=1, mix=(("indoor", 1.0),)), 0)
    spec = SemanticSpec((("floor", (255, 0, 0)),), (0, 0, 255))
    t = target_for(spec, s)
    floor = np.isin(s.instance_ids, [i.id for i in s.instances if i.class_name == "floor"])
    assert np.all(t[floor] == (255, 0, 0)) and np.all(t[~floor] == (0, 0, 255))


def test_stream_and_torch_dataset_yield_examples() -> None:
    stream = SynthStream(SynthConfig(res_px=32, seed=4), n=4)
    items = list(stream.examples())
    assert [x["index"] for x in items] == [0, 1, 2, 3]
    assert items[0]["image"].shape == (32, 32, 3) and items[0]["target"].shape == (32, 32, 3)
    assert [x["index"] for x in stream.examples(worker=1, workers=2)] == [1, 3]
    loader = torch.utils.data.DataLoader(stream.as_torch_dataset(), batch_size=2, collate_fn=list)
    assert sum(len(batch) for batch in loader) == 4


def test_synth_cli_writes_npz_with_sidecars(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vb_perception.cli import main

    assert (
        main(
            [
                "synth",
                "--n",
                "3",
                "--res",
                "48",
                "--seed",
                "3",
                "--format",
                "npz",
                "--out",
                str(tmp_path),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    assert "samples/s" in capsys.readouterr().out
    arrays = load_sample(tmp_path / "000001.npz")
    assert arrays["rgb"].shape == (48, 48, 3) and arrays["rgb"].dtype == np.uint8
    assert arrays["depth_m"].dtype == np.float32 and arrays["normals"].shape == (48, 48, 3)
    assert arrays["instance_ids"].dtype == np.int32 and arrays["K"].shape == (3, 3)
    again = render_sample(SynthConfig(res_px=48, seed=3), 1)
    np.testing.assert_array_equal(arrays["rgb"], again.rgb)
    side = json.loads((tmp_path / "000001.json").read_text())
    ids = {inst["id"] for inst in side["instances"]}
    assert set(np.unique(arrays["instance_ids"])) - {0} == ids
    for p in side["prompts"]:
        assert parse_prompt(p["prompt"]).task == p["task"]
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SynthError, match="not a readable sample"):
        load_sample(tmp_path / "broken.npz")


def test_synth_preview_writes_a_contact_sheet(tmp_path: Path) -> None:
    from vb_perception.cli import main
    from vb_perception.imageio import read_rgb

    out = tmp_path / "sheet.png"
    assert main(["synth-preview", "--n", "2", "--res", "48", "--out", str(out)]) == 0
    img = read_rgb(out)
    assert img.shape[0] > 300 and img.std() > 20


def test_torch_backend_on_cpu_is_the_fallback_without_open3d() -> None:
    assert make_raycaster("torch").name == "torch"
    assert make_raycaster("auto").name == "open3d"
    with pytest.raises(ValueError, match="unknown ray-casting backend"):
        make_raycaster("embree")


def test_open3d_cache_never_reuses_a_stale_scene() -> None:
    caster = Open3DRaycaster()
    for seed in range(6):  # new Scene objects may land at a freed one's address: the cache must not care
        scene = generate_scene(np.random.default_rng(seed), (48, 36))
        reused = render_scene(scene, caster, sensor=None)
        fresh = render_scene(scene, Open3DRaycaster(), sensor=None)
        np.testing.assert_array_equal(reused.instance_ids, fresh.instance_ids)
        del scene


def test_every_referring_expression_the_engine_writes_has_a_kind() -> None:
    from vb_perception.offline.synth.attributes import EXPRESSION_KINDS, _expressions, expression_kind

    def member(i: int, color: str, cx: float, depth: float, size: float) -> dict[str, object]:
        return {"id": i, "class": "traffic sign", "color": color, "cx": cx, "depth": depth, "size": size}

    group = [member(1, "red", 0.1, 2.0, 1.0), member(2, "orange", 0.5, 4.0, 1.1), member(3, "red", 0.9, 8.0, 3.0)]
    written = [e for exprs in _expressions(group).values() for e in exprs]
    written += [e for exprs in _expressions([member(4, "orange", 0.5, 3.0, 1.0)]).values() for e in exprs]
    kinds = {e: expression_kind(e) for e in written}
    assert set(kinds.values()) == set(EXPRESSION_KINDS)  # every kind occurs, nothing is "other"
    assert kinds["orange traffic sign"] == "colour" and kinds["traffic sign"] == "class"
    assert kinds["second traffic sign from the left"] == "ordinal" and kinds["biggest traffic sign"] == "biggest"
    assert expression_kind("orange") == "class" and expression_kind("") == "other"
