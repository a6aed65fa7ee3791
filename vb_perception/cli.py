"""``vb-perception``: the command line. One subcommand per job; ``vb-perception COMMAND --help`` for each.

Exit codes: 0 success, 2 bad input (the message says what to fix), 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vb_perception.errors import VbPerceptionError

__all__ = ["main"]


def _cmd_encode_depth(args: argparse.Namespace) -> int:
    from vb_perception.codecs import encode_depth
    from vb_perception.imageio import read_depth, write_rgb

    depth = read_depth(args.depth, scale_m=args.depth_scale_m)
    rgb = encode_depth(depth, colormap=args.colormap, invalid=args.invalid)
    path = write_rgb(args.out, rgb)
    valid = np.isfinite(depth)
    print(
        f"wrote {path} ({rgb.shape[1]}x{rgb.shape[0]}, {int(valid.sum())} valid pixels, "
        f"{float(np.nanmin(depth)) if valid.any() else 0:.3f}-{float(np.nanmax(depth)) if valid.any() else 0:.3f} m)"
    )
    return 0


def _cmd_decode_depth(args: argparse.Namespace) -> int:
    from vb_perception.codecs import decode_depth
    from vb_perception.imageio import read_rgb, write_depth

    depth = decode_depth(
        read_rgb(args.image), colormap=args.colormap, min_depth_m=args.min_depth_m, max_depth_m=args.max_depth_m
    )
    path = write_depth(args.out, depth)
    valid = np.isfinite(depth)
    print(
        f"wrote {path} ({int(valid.sum())} valid pixels"
        + (f", {float(np.nanmin(depth)):.3f}-{float(np.nanmax(depth)):.3f} m)" if valid.any() else ")")
    )
    return 0


def _cmd_encode_normals(args: argparse.Namespace) -> int:
    from vb_perception.codecs import encode_normals, optical_to_camera
    from vb_perception.imageio import read_normals, write_rgb

    normals = read_normals(args.normals)
    if args.frame == "optical":
        normals = optical_to_camera(normals)
    print(f"wrote {write_rgb(args.out, encode_normals(normals))}")
    return 0


def _cmd_decode_normals(args: argparse.Namespace) -> int:
    from vb_perception.codecs import camera_to_optical, decode_normals
    from vb_perception.imageio import read_rgb, write_normals

    normals = decode_normals(read_rgb(args.image))
    if args.frame == "optical":
        normals = camera_to_optical(normals)
    print(f"wrote {write_normals(args.out, normals)} ({args.frame} frame)")
    return 0


def _cmd_parse_prompt(args: argparse.Namespace) -> int:
    from vb_perception.prompts import parse_prompt, spec_to_dict

    print(json.dumps(spec_to_dict(parse_prompt(args.text, kind=args.kind)), indent=None if args.compact else 2))
    return 0


def _cmd_render_prompt(args: argparse.Namespace) -> int:
    from vb_perception.prompts import parse_prompt, render_prompt

    spec = parse_prompt(args.text, kind=args.kind)
    rng = random.Random(args.seed)
    for _ in range(args.n):
        print(render_prompt(spec, args.style, color_style=args.color_style, rng=rng))
    return 0


def _cmd_main_demo(args: argparse.Namespace) -> int:
    from vb_perception.offline.demo import run_demo

    run_demo(args.out, n=args.frames, model_dir=args.model)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vb_perception.imageio import Intrinsics, read_depth, read_rgb, sample_frame
    from vb_perception.offline.codec_demo import run_codec_demo

    if args.color:
        if not (args.depth and args.fx_px):
            raise VbPerceptionError("--color needs --depth and --fx-px/--fy-px/--cx-px/--cy-px as well")
        color = read_rgb(args.color)
        depth = read_depth(args.depth, scale_m=args.depth_scale_m)
        k = Intrinsics(args.fx_px, args.fy_px or args.fx_px, args.cx_px, args.cy_px, color.shape[1], color.shape[0])
    else:
        color, depth, k = sample_frame()
    r = run_codec_demo(color, depth, k, Path(args.out), jpeg_quality=args.jpeg_quality)
    print("Codec round trip on one RGB-D frame (8-bit PNG unless noted)")
    print(f"{'depth range':>14} | {'pixels':>7} | {'AbsRel %':>9} | {'max rel %':>9}")
    for e in r.per_range:
        if e.pixels:
            print(
                f"{f'{e.lo_m:g}-{e.hi_m:g} m':>14} | {e.pixels:>7} | {e.abs_rel * 100:>9.4f} | {e.max_rel * 100:>9.4f}"
            )
    print(f"{'all':>14} | {'':>7} | {r.png_abs_rel * 100:>9.4f} | {r.png_max_rel * 100:>9.4f}")
    print(f"after JPEG q{r.jpeg_quality}: AbsRel {r.jpeg_abs_rel * 100:.3f} %")
    print(f"invalid depth stays invalid: {r.invalid_kept_invalid}")
    print(f"normals round trip: mean angle {r.normals_mean_angle_deg:.3f} deg")
    print(f"panel:  {r.panel_path}\nreport: {r.report_path}")
    return 0


def _synth_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from vb_perception.offline.synth.dataset import SynthConfig
    from vb_perception.offline.synth.generate import FAMILIES

    mix = tuple(SynthConfig().mix)
    if getattr(args, "heldout", False):
        from vb_perception.offline.evaluate import HELDOUT

        if args.family or args.seed:
            raise VbPerceptionError("--heldout fixes the seed and scene mix; drop --seed/--family")
        return SynthConfig(
            res_px=args.res, seed=int(HELDOUT["seed"]), mix=HELDOUT["mix"], backend=args.backend, device=args.device
        )  # type: ignore[arg-type]
    if args.family:
        if args.family not in FAMILIES:
            raise VbPerceptionError(f"unknown scene family {args.family!r}; use one of {', '.join(FAMILIES)}")
        mix = ((args.family, 1.0),)
    if args.res < 16 or args.res > 2048:
        raise VbPerceptionError(f"--res {args.res} is out of range; use 16-2048 pixels")
    return SynthConfig(res_px=args.res, seed=args.seed, mix=mix, backend=args.backend, device=args.device)


def _cmd_synth(args: argparse.Namespace) -> int:
    from vb_perception.offline.synth.dataset import write_dataset

    if args.n < 1:
        raise VbPerceptionError("--n must be at least 1")
    rate = write_dataset(_synth_config(args), args.n, Path(args.out), fmt=args.format, workers=args.workers)
    print(f"wrote {args.n} samples to {args.out} ({rate:.1f} samples/s)")
    return 0


def _cmd_synth_preview(args: argparse.Namespace) -> int:
    from vb_perception.offline.synth.preview import write_preview

    print(f"wrote {write_preview(_synth_config(args), args.n, Path(args.out))}")
    return 0


def _overrides(items: list[str] | None) -> dict[str, object]:
    import yaml

    overrides = {}
    for item in items or []:
        if "=" not in item:
            raise VbPerceptionError(f"--set {item!r}: write it as key=value, e.g. train.max_steps=100")
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def _cmd_tune(args: argparse.Namespace) -> int:
    from vb_perception.offline.tune import load_tune_config, run_tune

    cfg = load_tune_config(args.config, _overrides(args.set))
    print(f"model written to {run_tune(cfg)}")
    return 0


def _cmd_distill(args: argparse.Namespace) -> int:
    from vb_perception.offline.distill import load_distill_config, run_distill

    cfg = load_distill_config(args.config, _overrides(args.set))
    print(f"student written to {run_distill(cfg)}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from vb_perception.offline.predict import predict_files, prompts_for

    prompts = prompts_for(args.task or (["depth", "normals"] if not args.prompt else []), args.prompt or [])
    folders = predict_files(
        args.images,
        prompts,
        Path(args.out),
        args.model,
        args.steps,
        args.device,
        args.backend,
        args.engine,
        args.fx_px,
        flip_average=args.flip_average,
    )
    for folder in folders:
        print(f"wrote {folder}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from vb_perception.offline.replay import replay

    r = replay(
        args.bags,
        args.out,
        prompts=args.prompt or [],
        instances_class=args.instances_class or "",
        image_topic=args.image_topic,
        info_topic=args.camera_info_topic,
        depth_gt_topic=args.depth_gt_topic,
        model_dir=args.model,
        backend=args.backend,
        engine=args.engine,
        steps=args.steps,
        flip_average=args.flip_average,
    )
    print(f"{len(r.frames)} frames replayed ({r.fps:.2f} frames/s), {len(r.failed)} failed (listed in the report)")
    for cam, metrics in r.overall.items():
        print(
            f"{cam}: depth δ1 {metrics['delta1']:.3f}, AbsRel {metrics['abs_rel']:.3f}, RMSE {metrics['rmse_m']:.3f} m "
            f"(metric, {metrics['frames']:.0f} frames); median-scaled δ1 {metrics['delta1_aligned']:.3f}"
        )
    print(f"bag: {r.bag}\nreport: {Path(args.out) / 'report.json'}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from vb_perception.offline.export import export_onnx, export_tensorrt
    from vb_perception.runtime.tensorrt_backend import check_onnx_for_tensorrt

    onnx_out = args.out if args.backend == "onnx" else None
    path = export_onnx(args.model, args.steps, args.height, args.width, onnx_out, max_batch=args.max_batch)
    problems = check_onnx_for_tensorrt(path)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print("TensorRT check: " + ("ok" if not problems else "; ".join(problems)))
    if args.int8:
        from vb_perception.offline.quantize import quantize_int8

        q = quantize_int8(path, frames=args.calibration_frames)
        print(f"wrote {q} ({q.stat().st_size / 2**20:.1f} MiB, int8; run it with --engine {q})")
    if args.backend == "tensorrt":
        print(f"wrote {export_tensorrt(path, args.out, fp16=args.fp16)}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from vb_perception.offline.evaluate import evaluate, format_report

    report = evaluate(
        args.data,
        args.out,
        args.model,
        args.steps,
        args.n,
        args.depth_scale_m,
        args.device,
        args.backend,
        args.engine,
        fx_px=args.fx_px,
        intrinsics=not args.no_intrinsics,
        flip_average=args.flip_average,
    )
    print(format_report(report))
    print(f"\nreport: {Path(args.out) / 'eval.json'}")
    return 0


FLIP_HELP = "average depth and normals with their generation from the mirrored image (2x their compute)"


def _add_synth_args(s: argparse.ArgumentParser, n_default: int) -> None:
    s.add_argument("--n", type=int, default=n_default, help="number of samples")
    s.add_argument("--res", type=int, default=128, help="image size in pixels (square)")
    s.add_argument("--seed", type=int, default=0, help="seed: sample i is the same for the same (seed, i)")
    s.add_argument("--family", default=None, help="only this scene family (indoor, tabletop, street); default: a mix")
    s.add_argument(
        "--backend",
        choices=("auto", "open3d", "torch"),
        default="auto",
        help="ray caster: open3d (CPU, fast) or torch (analytic, any device); auto picks open3d on CPU",
    )
    s.add_argument("--device", default="cpu", help="torch device for the torch backend (cpu, cuda)")


def _parser() -> argparse.ArgumentParser:
    from vb_perception import __version__
    from vb_perception.codecs.depth import COLORMAPS
    from vb_perception.colors import COLOR_STYLES

    p = argparse.ArgumentParser(
        prog="vb-perception",
        description="Metric depth, surface normals and prompted segmentation through one RGB interface.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "encode-depth",
        help="metric depth file -> RGB depth image (paper encoding)",
        description="Encode a depth map (.npy/.tif metres or 16-bit PNG) as an RGB image. "
        "Example: vb-perception encode-depth depth.png --depth-scale-m 0.0002 --out depth_rgb.png",
    )
    s.add_argument("depth", help="depth file: .npy or .tif (float metres) or 16-bit .png (integer units)")
    s.add_argument("--out", required=True, help="output image (.png: lossless)")
    s.add_argument(
        "--depth-scale-m", type=float, default=None, help="metres per unit of an integer PNG (default 0.001)"
    )
    s.add_argument(
        "--colormap", choices=COLORMAPS, default="hilbert", help="colour path (default: hilbert, the paper's)"
    )
    s.add_argument(
        "--invalid",
        choices=("min", "max", "raise"),
        default="min",
        help="where invalid depth goes: min = black (0 m), max = white (infinitely far), raise = error",
    )
    s.set_defaults(func=_cmd_encode_depth)

    s = sub.add_parser(
        "decode-depth",
        help="RGB depth image -> metric depth file",
        description="Decode an RGB depth image to metres (NaN invalid). "
        "Example: vb-perception decode-depth depth_rgb.png --out depth.npy",
    )
    s.add_argument("image", help="RGB depth image")
    s.add_argument(
        "--out", required=True, help=".npy or .tif (float metres, NaN invalid) or .png (16-bit mm, 0 invalid)"
    )
    s.add_argument("--colormap", choices=COLORMAPS, default="hilbert", help="colour path the image uses")
    s.add_argument("--min-depth-m", type=float, default=0.0, help="depths below this become NaN")
    s.add_argument("--max-depth-m", type=float, default=float("inf"), help="depths above this become NaN")
    s.set_defaults(func=_cmd_decode_depth)

    s = sub.add_parser(
        "encode-normals",
        help="normals .npy -> RGB normal image",
        description="Encode unit normals (HxWx3 .npy) as RGB, rgb = (n + 1) / 2 in the paper's camera "
        "frame. Example: vb-perception encode-normals normals.npy --frame optical --out normals.png",
    )
    s.add_argument("normals", help="HxWx3 float .npy")
    s.add_argument("--out", required=True, help="output image (.png)")
    s.add_argument(
        "--frame",
        choices=("camera", "optical"),
        default="camera",
        help="frame of the input: camera (x right, y up, z to viewer) or optical (ROS: x right, y down, z forward)",
    )
    s.set_defaults(func=_cmd_encode_normals)

    s = sub.add_parser(
        "decode-normals",
        help="RGB normal image -> normals .npy",
        description="Decode an RGB normal image to unit normals (NaN invalid). "
        "Example: vb-perception decode-normals normals.png --frame optical --out normals.npy",
    )
    s.add_argument("image", help="RGB normal image")
    s.add_argument("--out", required=True, help="output .npy (float32 HxWx3)")
    s.add_argument("--frame", choices=("camera", "optical"), default="camera", help="frame of the output")
    s.set_defaults(func=_cmd_decode_normals)

    s = sub.add_parser(
        "parse-prompt",
        help="prompt text -> task spec as JSON",
        description="Parse an instruction prompt and print its task spec as JSON. Example: "
        "vb-perception parse-prompt 'Segment the cat in red and the dog in <0, 0, 255>'",
    )
    s.add_argument("text", help="the prompt")
    s.add_argument(
        "--kind",
        choices=("auto", "semantic", "referring"),
        default="auto",
        help="force semantic or referring for colour-assigning prompts",
    )
    s.add_argument("--compact", action="store_true", help="one line of JSON")
    s.set_defaults(func=_cmd_parse_prompt)

    s = sub.add_parser(
        "render-prompt",
        help="prompt text -> other phrasings of the same task",
        description="Parse a prompt, then write N phrasings of the same spec (as training does). "
        "Example: vb-perception render-prompt 'Segment the cat in red' --n 5",
    )
    s.add_argument("text", help="the prompt")
    s.add_argument("--n", type=int, default=5, help="how many phrasings")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--style", default=None, help="one phrasing style (default: random)")
    s.add_argument("--color-style", choices=COLOR_STYLES, default=None, help="one colour notation (default: random)")
    s.add_argument("--kind", choices=("auto", "semantic", "referring"), default="auto", help="as for parse-prompt")
    s.set_defaults(func=_cmd_render_prompt)

    s = sub.add_parser(
        "synth",
        help="render synthetic training samples (npz + JSON sidecar)",
        description="Render procedural scenes with metric depth, normals, instances and referring attributes. "
        "Example: vb-perception synth --n 64 --res 128 --seed 3 --format npz --out OUT",
    )
    _add_synth_args(s, 64)
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument(
        "--format",
        choices=("npz", "npy"),
        default="npz",
        help="npz: one compressed file per sample; npy: a PNG and .npy arrays per sample",
    )
    s.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    s.add_argument("--heldout", action="store_true", help="the held-out evaluation split (its own seed and scene mix)")
    s.set_defaults(func=_cmd_synth)

    s = sub.add_parser(
        "synth-preview",
        help="contact sheet PNG of synthetic samples",
        description="Render a few samples and write RGB | depth | normals | instances | target | prompt. "
        "Example: vb-perception synth-preview --n 6 --out synth_preview.png",
    )
    _add_synth_args(s, 6)
    s.add_argument("--out", default="out/synth_preview.png", help="output PNG")
    s.set_defaults(func=_cmd_synth_preview)

    s = sub.add_parser(
        "predict",
        help="run the generator on images: depth_m.npy, normals.npy, segmentation.npz, PNGs",
        description="Decode metric depth, normals and prompted masks for each image (the model loads once). "
        "Example: vb-perception predict color.png --task depth --out OUT",
    )
    s.add_argument("images", nargs="+", help="image files")
    s.add_argument(
        "--task",
        action="append",
        choices=("depth", "normals", "segment"),
        help="repeatable; default: depth and normals",
    )
    s.add_argument("--prompt", action="append", help="a prompt in the prompt grammar (repeatable)")
    s.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    s.add_argument("--model", default=None, help="model folder (default: the bundled models/vb-mini)")
    s.add_argument("--device", default="cpu", help="torch device")
    s.add_argument(
        "--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"), help="runtime (default: torch)"
    )
    s.add_argument("--engine", default=None, help="the .onnx / .engine to run (default: `vb-perception export`'s)")
    s.add_argument(
        "--fx-px",
        type=float,
        default=None,
        help="the images' focal length in pixels (camera_info K[0]); sharpens the metric scale of models that use it",
    )
    s.add_argument("--out", required=True, help="output folder; one subfolder per image")
    s.add_argument("--flip-average", action="store_true", help=FLIP_HELP)
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser(
        "replay",
        help="run the pipeline on recorded bags: an MCAP with every output, depth metrics vs a ground-truth topic",
        description="Reads rosbag2 (sqlite3, MCAP) and ROS 1 bags; finds camera image / camera_info pairs itself. "
        "Example: vb-perception replay run1/ --depth-gt-topic /cam/depth/image_rect_raw --out out/replay",
    )
    s.add_argument("bags", nargs="+", help="bag folders or files")
    s.add_argument("--out", required=True, help="output folder: replay/ (MCAP) and report.json")
    s.add_argument("--image-topic", default=None, help="camera image topic (default: every camera in the bag)")
    s.add_argument("--camera-info-topic", default=None, help="camera_info topic (default: found per camera)")
    s.add_argument("--depth-gt-topic", default=None, help="ground-truth depth (16UC1 mm or 32FC1 m)")
    s.add_argument("--prompt", action="append", help="segmentation prompt (repeatable)")
    s.add_argument("--instances-class", default=None, help="a class to segment instance by instance")
    s.add_argument("--model", default=None, help="model folder (default: the bundled models/vb-mini)")
    s.add_argument("--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"))
    s.add_argument("--engine", default=None, help="the .onnx / .engine for onnxruntime / tensorrt")
    s.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    s.add_argument("--flip-average", action="store_true", help=FLIP_HELP)
    s.set_defaults(func=_cmd_replay)

    s = sub.add_parser(
        "export",
        help="export the generator with its sampler unrolled: ONNX, or a TensorRT engine",
        description="One graph per step count: image + noise + prompt tokens -> final RGB, every prompt of a frame "
        "in one batch. The ONNX graph is checked for TensorRT here. Example: vb-perception export --backend onnx",
    )
    s.add_argument("--backend", default="onnx", choices=("onnx", "tensorrt"), help="what to build (default: onnx)")
    s.add_argument("--model", default=None, help="model folder (default: the bundled models/vb-mini)")
    s.add_argument("--steps", type=int, default=None, help="unrolled sampling steps (default: the model's)")
    s.add_argument("--height", type=int, default=None, help="optimal processing height (default: 480p's)")
    s.add_argument("--width", type=int, default=None, help="optimal processing width (default: 640's)")
    s.add_argument("--max-batch", type=int, default=8, help="most prompts per frame (default 8)")
    s.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="TensorRT fp16 (default on)")
    s.add_argument(
        "--int8", action="store_true", help="also write an int8 copy of the ONNX graph (<name>-int8.onnx), for CPUs"
    )
    s.add_argument(
        "--calibration-frames", type=int, default=16, help="synthetic frames that calibrate --int8 (default 16)"
    )
    s.add_argument("--out", default=None, help="output file (default: ~/.cache/vb_perception/export/...)")
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser(
        "eval",
        help="metrics of a model on synth samples or a folder of color.png + depth.png",
        description="Depth (metric and scale-aligned), normals, semantic mIoU, referring cIoU/gIoU, instance F1; "
        "JSON + PNG panels. Example: vb-perception eval --data out/heldout --out out/eval",
    )
    s.add_argument("--data", required=True, help="folder of synth .npz samples, or with color.png + depth.png")
    s.add_argument("--out", default="out/eval", help="output folder")
    s.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    s.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    s.add_argument("--n", type=int, default=None, help="evaluate only the first N samples")
    s.add_argument("--depth-scale-m", type=float, default=None, help="metres per unit of an integer depth.png")
    s.add_argument(
        "--fx-px", type=float, default=None, help="a real folder's focal length [px], for models that use it"
    )
    s.add_argument(
        "--no-intrinsics",
        action="store_true",
        help="withhold the focal length from focal-conditioned models (the unknown-camera case)",
    )
    s.add_argument("--device", default="cpu", help="torch device")
    s.add_argument(
        "--backend", default="torch", choices=("torch", "onnxruntime", "tensorrt"), help="runtime (default: torch)"
    )
    s.add_argument("--engine", default=None, help="the .onnx / .engine to evaluate (default: `vb-perception export`'s)")
    s.add_argument("--flip-average", action="store_true", help=FLIP_HELP)
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser(
        "tune",
        help="instruction-tune the generator on synthetic data (resumes a run)",
        description="Train the generator from a YAML config; running it again resumes from the run's checkpoint. "
        "Example: vb-perception tune --config config/tune/vb-mini.yaml --set train.max_steps=2000",
    )
    s.add_argument("--config", required=True, help="YAML config (see config/tune/)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    s.set_defaults(func=_cmd_tune)

    s = sub.add_parser(
        "distill",
        help="distil a model into a 1-4 step student (resumes a run)",
        description="Few-step distillation / fine-tuning from a YAML config; running it again resumes. "
        "Example: vb-perception distill --config config/distill/vb-mini-1step.yaml --set train.max_steps=500",
    )
    s.add_argument("--config", required=True, help="YAML config (see config/distill/)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    s.set_defaults(func=_cmd_distill)

    s = sub.add_parser(
        "demo",
        help="the main job: a synthetic camera bag replayed with the bundled model (MCAP, report, PLY)",
        description="Renders a small rosbag2 of held-out synthetic frames with ground-truth depth (once), replays "
        "it with the bundled model and writes the output MCAP, report.html and a PLY point cloud. "
        "Example: vb-perception demo --out out/demo",
    )
    s.add_argument("--out", default="out/demo", help="output folder")
    s.add_argument("--frames", type=int, default=24, help="frames in the sample bag")
    s.add_argument("--model", default=None, help="model folder (default: the bundled models/vb-mini)")
    s.set_defaults(func=_cmd_main_demo)

    s = sub.add_parser(
        "codec-demo",
        help="codec demo on a real RGB-D frame: PNG panel + round-trip errors",
        description="Encode a real depth map, decode it (also after JPEG), write a PNG panel and a "
        "JSON report. Default frame: the shipped TUM RGB-D sample. Example: vb-perception codec-demo --out out/codec",
    )
    s.add_argument("--out", default="out/codec-demo", help="output folder")
    s.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality of the compression test")
    s.add_argument("--color", help="your colour image (needs --depth and intrinsics)")
    s.add_argument("--depth", help="your depth map")
    s.add_argument("--depth-scale-m", type=float, default=None, help="metres per unit of an integer depth PNG")
    s.add_argument("--fx-px", type=float, help="focal length x [px]")
    s.add_argument("--fy-px", type=float, help="focal length y [px] (default fx)")
    s.add_argument("--cx-px", type=float, help="principal point x [px]")
    s.add_argument("--cy-px", type=float, help="principal point y [px]")
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``vb-perception``."""
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except VbPerceptionError as exc:
        print(f"vb-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
