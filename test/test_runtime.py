"""Runtimes: the export descriptor, the unrolled sampler, ONNX export + ONNX Runtime parity with torch on the
bundled model, the TensorRT graph check and engine cache key (TensorRT itself: scripts/gpu_check.py on a GPU)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("diffusers", reason="needs diffusers")
onnx = pytest.importorskip("onnx", reason="export needs onnx")
pytest.importorskip("onnxruntime", reason="needs onnxruntime")

from vb_perception.cli import main
from vb_perception.imageio import sample_frame
from vb_perception.pipeline import DepthResult, NormalsResult, Perception, SegmentationResult
from vb_perception.prompts import parse_prompt
from vb_perception.runtime import BackendError, SpecError, backend_for, load_backend
from vb_perception.runtime.spec import generator_spec
from vb_perception.runtime.tensorrt_backend import check_onnx_for_tensorrt, engine_key

MODEL = Path(__file__).resolve().parents[1] / "models" / "vb-mini"
PROMPTS = [
    "Generate a metric depth map of this image.",
    "Estimate the surface normals.",
    "Segment the floor in red and the wall in blue.",
    "Each chair is colored differently.",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model exported the way users do it: `vb-perception export --backend onnx` into the cache (with
    the int8 copy, calibrated on the default 16 frames)."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("VB_PERCEPTION_CACHE", str(cache))
    assert main(["export", "--backend", "onnx", "--int8"]) == 0
    yield cache
    mp.undo()


def test_spec_shapes_and_checks() -> None:
    spec = generator_spec(("text_emb", "colors", "roles", "task", "mask"), 384, 8, (64, 88))
    lo, opt, hi = (spec.shapes(i) for i in range(3))
    assert opt["image"] == (3, 3, 64, 88) and opt["mask"] == (3, 4) and opt["text_emb"] == (3, 3, 384)
    assert lo["image"] == (1, 3, 32, 40) and hi["image"] == (8, 3, 128, 176) and hi["mask"] == (8, 35)
    good = {t: np.zeros(s, np.int64 if t in ("roles", "task", "mask") else np.float32) for t, s in opt.items()}
    spec.check(good)
    with pytest.raises(SpecError, match=r"missing inputs \['noise'\]"):
        spec.check({k: v for k, v in good.items() if k != "noise"})
    with pytest.raises(SpecError, match="input roles must be int64"):
        spec.check(good | {"roles": good["roles"].astype(np.int32)})
    with pytest.raises(SpecError, match=r"outside the exported range 32\.\.128; export again with a larger range"):
        spec.check(good | {"image": np.zeros((3, 3, 256, 88), np.float32)})
    assert type(spec).from_json(spec.to_json()) == spec


def test_backend_chosen_by_suffix_and_fallbacks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert backend_for(tmp_path) == "torch"
    assert backend_for("m.onnx") == "onnxruntime" and backend_for("m.engine") == "tensorrt"
    with pytest.raises(BackendError, match="cannot tell the backend"):
        backend_for("m.pt")
    with pytest.raises(BackendError, match="unknown backend 'tflite'"):
        load_backend("m.onnx", "tflite")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with caplog.at_level(logging.WARNING), pytest.raises(BackendError, match="not a readable ONNX file"):
            load_backend(broken, "tensorrt")  # falls back to ONNX Runtime, which reports the broken file
        assert "TensorRT is not installed; running" in caplog.text
        with pytest.raises(BackendError, match="needs the TensorRT Python package"):
            load_backend(tmp_path / "m.engine")


@pytest.mark.parametrize("steps", [1, 3])
def test_unrolled_sampler_equals_the_scheduler_loop(steps: int) -> None:
    from vb_perception.model.conditioning import tokens_for
    from vb_perception.model.loading import load_generator
    from vb_perception.model.text import TextEncoder
    from vb_perception.pipeline import default_model_dir
    from vb_perception.prompts import parse_prompt
    from vb_perception.runtime.unrolled import UnrolledSampler

    model = load_generator(default_model_dir())
    cond = model.conditioning([tokens_for(p, parse_prompt(p)) for p in PROMPTS[:3]], TextEncoder())
    image = torch.rand(3, 3, 64, 88) * 2 - 1
    ref = model.sample(image, cond, steps=steps, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = UnrolledSampler(model, steps)(image, noise, *cond)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_export_carries_its_descriptor_and_passes_the_tensorrt_check(exported: Path) -> None:
    (path,) = (exported / "export").glob("*-1step.onnx")
    version = json.loads((MODEL / "config.json").read_text())["model_version"]
    assert path.name == version.replace("@", "-") + "-1step.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model_version"] == version and meta["steps"] == "1"
    backend = load_backend(path)
    assert backend.name == "onnxruntime" and backend.metadata["resolution_px"] == 64
    camera = ["camera"] if json.loads((MODEL / "config.json").read_text()).get("focal_conditioning") else []
    assert [t.name for t in backend.inputs] == [
        "image",
        "noise",
        "text_emb",
        "colors",
        "roles",
        "task",
        "mask",
        *camera,
    ]
    assert check_onnx_for_tensorrt(path) == []


def _assert_matches(ref: list, out: list) -> None:
    """ONNX Runtime's results against torch's: depth, normals, then the masks."""
    d_ref, d_out = ref[0], out[0]
    assert isinstance(d_ref, DepthResult) and isinstance(d_out, DepthResult)
    valid = np.isfinite(d_ref.depth_m) & np.isfinite(d_out.depth_m)
    assert np.mean(np.abs(d_out.depth_m[valid] - d_ref.depth_m[valid]) / d_ref.depth_m[valid]) <= 0.005
    n_ref, n_out = ref[1], out[1]
    assert isinstance(n_ref, NormalsResult) and isinstance(n_out, NormalsResult)
    ok_ref, ok_out = np.isfinite(n_ref.normals).all(-1), np.isfinite(n_out.normals).all(-1)
    assert np.mean(ok_ref == ok_out) >= 0.995  # the same pixels decode as invalid (mid-grey)
    both = ok_ref & ok_out
    cos = np.clip(np.sum(n_ref.normals[both] * n_out.normals[both], -1), -1, 1)
    assert np.degrees(np.arccos(cos)).mean() <= 0.5
    for r, o in zip(ref[2:], out[2:]):
        assert np.mean(r.labels == o.labels) >= 0.995
    assert isinstance(out[2], SegmentationResult)


def test_onnxruntime_matches_torch_on_the_bundled_model(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VB_PERCEPTION_CACHE", str(exported))
    image = sample_frame()[0]
    _assert_matches(Perception()(image, PROMPTS, seed=3), Perception(backend="onnxruntime")(image, PROMPTS, seed=3))
    # flip_average: the mirrored depth and normals rows ride in the same batch through the exported graph too
    flip = Perception(flip_average=True)(image, PROMPTS, seed=3)
    _assert_matches(flip, Perception(backend="onnxruntime", flip_average=True)(image, PROMPTS, seed=3))


def test_int8_copy_runs_like_the_fp32_export_and_stays_close(exported: Path, tmp_path: Path) -> None:
    """`export --int8`: QDQ int8 graph, same interface and metadata, outputs near fp32's (measured on 100 held-out
    samples in the README: the metrics move by about as much as between seeds)."""
    from vb_perception.errors import VbPerceptionError
    from vb_perception.offline.quantize import int8_path, quantize_int8

    (fp32,) = (exported / "export").glob("*-1step.onnx")
    q = int8_path(fp32)  # written by the fixture's `export --int8`
    model = onnx.load(str(q))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 50 and "DequantizeLinear" in ops
    meta = {p.key: p.value for p in model.metadata_props}
    note = json.loads(meta["quantization"])
    assert note["calibration_frames"] == 16
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    kept = set(note["fp32_nodes"])
    assert {convs[0], convs[-1]} <= kept  # image in, RGB out
    by_name = {n.name: n for n in model.graph.node}
    assert sum(by_name[k].op_type == "MatMul" for k in kept) >= 10  # the prompt path: token MLPs, keys, values
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    for name in kept:  # fp32 inputs and weights (the image reaches the first convolution unquantized)
        assert all(producers.get(i) != "DequantizeLinear" for i in by_name[name].input), name
    assert meta["model_version"] == json.loads((MODEL / "config.json").read_text())["model_version"]
    assert q.stat().st_size < fp32.stat().st_size / 2.5  # int8 weights (vb-mini2@16600: 27.7 of 82.1 MB)
    image = sample_frame()[0]
    # vb-mini2@16600 on the TUM frame: 1.0 % without the focal length, 3.9 % with it (before the first and last
    # convolutions stayed fp32: 9 % and 29 %)
    for fx_px in (525.0, None):
        ref = Perception(backend="onnxruntime", engine=fp32)(image, PROMPTS, seed=3, fx_px=fx_px)
        out = Perception(backend="onnxruntime", engine=q)(image, PROMPTS, seed=3, fx_px=fx_px)
        d_ref, d_out = ref[0], out[0]
        assert isinstance(d_ref, DepthResult) and isinstance(d_out, DepthResult)
        valid = np.isfinite(d_ref.depth_m) & np.isfinite(d_out.depth_m)
        rel = np.abs(d_out.depth_m[valid] - d_ref.depth_m[valid]) / d_ref.depth_m[valid]
        assert np.mean(rel) <= 0.05, fx_px
    n_ref, n_out = ref[1], out[1]
    assert isinstance(n_ref, NormalsResult) and isinstance(n_out, NormalsResult)
    both = np.isfinite(n_ref.normals).all(-1) & np.isfinite(n_out.normals).all(-1)
    cos = np.clip(np.sum(n_ref.normals[both] * n_out.normals[both], -1), -1, 1)
    assert np.degrees(np.arccos(cos)).mean() <= 3.5  # vb-mini2@16600: 1.7 deg
    assert isinstance(ref[2], SegmentationResult) and isinstance(out[2], SegmentationResult)
    assert np.mean(ref[2].labels == out[2].labels) >= 0.9  # vb-mini2@16600: 98.5 %
    # eval runs it like any export: the real fixture through the int8 graph
    args = ["eval", "--data", "vb_perception/data/tum_rgbd", "--depth-scale-m", "0.0002", "--out", str(tmp_path)]
    assert main(args + ["--backend", "onnxruntime", "--engine", str(q)]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["backend"] == "onnxruntime" and report["engine"] == str(q)
    assert 0.0 < report["depth"]["abs_rel"] < 1.0

    from vb_perception.runtime.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendError, match="int8 copy for ONNX Runtime"):
        TensorRTBackend(q)  # refused before it looks for TensorRT or a GPU
    with pytest.raises(VbPerceptionError, match="already quantized"):
        quantize_int8(q, tmp_path / "again.onnx", frames=1, progress=False)
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph([], "g", [], [])
    onnx.save(onnx.helper.make_model(graph), str(plain))
    with pytest.raises(VbPerceptionError, match="not a vb_perception export"):
        quantize_int8(plain, frames=1, progress=False)


def test_predict_with_onnxruntime_writes_the_same_files(exported: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VB_PERCEPTION_CACHE", str(exported))
    color = Path("vb_perception/data/tum_rgbd/color.png")
    assert main(["predict", str(color), "--backend", "onnxruntime", "--task", "depth", "--out", str(tmp_path)]) == 0
    depth = np.load(tmp_path / "color" / "depth_m.npy")
    assert depth.shape == (480, 640) and depth.dtype == np.float32


def test_a_missing_export_is_a_clear_error(tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VB_PERCEPTION_CACHE", str(tmp_path))
    color = "vb_perception/data/tum_rgbd/color.png"
    assert main(["predict", color, "--backend", "onnxruntime", "--out", str(tmp_path / "o")]) == 2
    assert "run `vb-perception export --backend onnx` first" in capsys.readouterr().err


def test_tensorrt_check_finds_problems(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from vb_perception.runtime.onnx_backend import SPEC_KEY
    from vb_perception.runtime.spec import ExportSpec, TensorSpec

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    nodes = [helper.make_node("NonZero", ["x"], ["z"]), helper.make_node("Unique", ["z"], ["y"])]
    nodes.append(helper.make_node("FusedGemm", ["x"], ["w"], domain="com.microsoft"))
    graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    spec = ExportSpec("g", (TensorSpec("x", "float32", (4,)),), (TensorSpec("y", "int64", ("k",)),), {})
    model.metadata_props.add(key=SPEC_KEY, value=spec.to_json())
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    problems = "\n".join(check_onnx_for_tensorrt(path))
    assert "opset 22 outside TensorRT's 9..20" in problems
    assert "Unique is not supported" in problems and "FusedGemm from domain 'com.microsoft'" in problems
    assert "dynamic in the graph but fixed (4) declared" in problems


def test_engine_key_changes_with_graph_tensorrt_and_gpu() -> None:
    base = ("ab" * 32, "10.3.0", "NVIDIA H100", (9, 0), True)
    keys = {engine_key(*base)}
    for i, other in enumerate(("cd" * 32, "10.4.0", "NVIDIA L4", (8, 9), False)):
        keys.add(engine_key(*base[:i], other, *base[i + 1 :]))
    assert len(keys) == 6 and engine_key(*base) == engine_key(*base)


def test_gpu_check_script_says_what_to_do_without_a_gpu() -> None:
    import subprocess
    import sys

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run scripts/gpu_check.py itself")
    run = subprocess.run([sys.executable, "scripts/gpu_check.py"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no CUDA GPU here" in run.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT needs a CUDA GPU (users run scripts/gpu_check.py)")
def test_tensorrt_engine_matches_torch(exported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    monkeypatch.setenv("VB_PERCEPTION_CACHE", str(exported))
    (onnx_path,) = (exported / "export").glob("*-1step.onnx")
    image = sample_frame()[0]
    ref = Perception()(image, PROMPTS[:2], seed=3)
    out = Perception(backend="tensorrt", engine=onnx_path)(image, PROMPTS[:2], seed=3)
    d_ref, d_out = ref[0].depth_m, out[0].depth_m  # type: ignore[union-attr]
    valid = np.isfinite(d_ref) & np.isfinite(d_out)
    assert np.mean(np.abs(d_out[valid] - d_ref[valid]) / d_ref[valid]) <= 0.005
    assert len(list((exported / "export" / "engines").glob("*.engine"))) == 1  # built once, cached


def test_the_depth_path_head_exports_and_matches_torch(tmp_path: Path) -> None:
    """A tiny model with the depth path head (randomly initialised, so its correction is in use) through ONNX
    export and ONNX Runtime."""
    from tiny_models import save_tiny

    from vb_perception.offline.export import export_onnx

    folder = save_tiny(tmp_path / "m", palette_head_dim=8, depth_head=True, model_version="tiny-depth-head")
    onnx_path = export_onnx(folder, steps=1, height=32, width=32, out=tmp_path / "tiny.onnx")
    image = sample_frame()[0]
    prompts = PROMPTS[:2]
    ref = Perception(folder)(image, prompts, seed=1)
    out = Perception(folder, backend="onnxruntime", engine=onnx_path)(image, prompts, seed=1)
    assert isinstance(ref[0], DepthResult) and isinstance(out[0], DepthResult)
    ok_ref, ok_out = np.isfinite(ref[0].depth_m), np.isfinite(out[0].depth_m)
    assert np.mean(ok_ref == ok_out) >= 0.995 and ok_ref.mean() > 0.5  # the random head clips some pixels to white
    valid = ok_ref & ok_out
    assert np.mean(np.abs(out[0].depth_m[valid] - ref[0].depth_m[valid]) / ref[0].depth_m[valid]) <= 0.005


def test_focal_conditioning_exports_with_a_camera_input_and_matches_torch(tmp_path: Path) -> None:
    """A tiny focal-conditioned model (random projection, so the focal length matters) through ONNX export and ONNX
    Runtime, with a known and an unknown camera."""
    from tiny_models import save_tiny

    from vb_perception.offline.export import export_onnx

    folder = save_tiny(tmp_path / "m", focal_conditioning=True, model_version="tiny-focal")
    onnx_path = export_onnx(folder, steps=1, height=32, width=32, out=tmp_path / "tiny.onnx")
    ort = Perception(folder, backend="onnxruntime", engine=onnx_path)
    assert ort.uses_focal and [t.name for t in ort.backend.inputs][-1] == "camera"  # type: ignore[union-attr]
    image = sample_frame()[0]
    ref = Perception(folder)
    for fx_px in (None, 300.0, 900.0):
        a = ref.generate(image, [parse_prompt(PROMPTS[0])], PROMPTS[:1], seed=1, fx_px=fx_px)
        b = ort.generate(image, [parse_prompt(PROMPTS[0])], PROMPTS[:1], seed=1, fx_px=fx_px)
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2, fx_px
    wide = ref.generate(image, [parse_prompt(PROMPTS[0])], PROMPTS[:1], seed=1, fx_px=300.0)
    tele = ref.generate(image, [parse_prompt(PROMPTS[0])], PROMPTS[:1], seed=1, fx_px=900.0)
    assert np.abs(wide.astype(int) - tele.astype(int)).max() > 2  # the camera input is live in both runtimes


def test_the_full_resolution_refinement_exports_matches_torch_and_stays_fp32_in_int8(tmp_path: Path) -> None:
    """A tiny space-to-depth model with the refinement (its last layer random, so it is in use) through ONNX export
    and ONNX Runtime; the int8 copy keeps the UNet's output convolution and the refinement in fp32."""
    from dataclasses import replace

    from tiny_models import TINY

    from vb_perception.model.generator import VBGenerator
    from vb_perception.offline.export import export_onnx
    from vb_perception.offline.quantize import fp32_nodes

    torch.manual_seed(0)
    model = VBGenerator(replace(TINY, space_to_depth=2, refine_channels=8, model_version="tiny-refine"))
    torch.nn.init.normal_(model.refine[-1].weight, std=0.05)
    folder = model.save_pretrained(tmp_path / "m")
    onnx_path = export_onnx(folder, steps=1, height=32, width=32, out=tmp_path / "tiny.onnx")
    image = sample_frame()[0]
    spec = [parse_prompt(PROMPTS[0])]
    a = Perception(folder).generate(image, spec, PROMPTS[:1], seed=1)
    b = Perception(folder, backend="onnxruntime", engine=onnx_path).generate(image, spec, PROMPTS[:1], seed=1)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    graph = onnx.load(str(onnx_path))
    nodes = list(graph.graph.node)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    kept = set(fp32_nodes(graph, ("image", "noise")))
    shuffle = next(i for i, n in enumerate(nodes) if n.op_type == "DepthToSpace")
    after = [n.name for n in nodes[shuffle:] if n.op_type == "Conv"]
    assert len(after) == 3 and set(after) <= kept  # the refinement
    assert convs[0] in kept and convs[-4] in kept  # the image's first convolution, the UNet's output convolution
    assert not set(convs[1:-4]) & kept  # the UNet's other convolutions are quantized
