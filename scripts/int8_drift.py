#!/usr/bin/env python3
"""Where a model's int8 ONNX copy drifts from its fp32 export in depth, pixel by pixel, on the TUM frame.

Usage:
    python scripts/int8_drift.py MODEL_DIR [--out out/int8-drift] [--engines DIR]

``scripts/bundle.py`` refuses a model whose int8 copy's decoded depth differs from the fp32 export's by more than
3.5 % (mean relative) on the TUM frame. This script says why a model does: both graphs get the depth path head's
nearest-edge choice (its ``ArgMin`` over the 7 edges of the walk) and the squared distances behind it as extra
outputs, run on the same inputs (the same prompts, noise and conditioning as the bundle's check), and every pixel of
the depth output at the processing size is sorted into

- **edge flips**: int8 projects the free RGB onto another edge of the walk than fp32 does, and
- **on the same edge**: the free RGB or the correction moved along it,

with the share of the drift each group carries, the fp32 margin of the flipped pixels (how much nearer the edge
fp32 chose was than the one int8 chose), the edge pairs, and a PNG (depth fp32 / int8, relative difference, flips).
``--engines DIR`` keeps (or reuses) the two exports there. Needs a model with the depth path head (``depth_head``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle import INT8_PROMPTS, TUM_FX_PX

CASES = (("focal length given", TUM_FX_PX), ("no focal length", None))


@dataclass(frozen=True)
class Drift:
    """One case's drift at the processing size. ``drift``: mean relative depth difference over valid pixels;
    ``flip_share`` / ``flip_drift_share``: the flipped pixels' share of the pixels and of the drift's sum;
    ``flip_margin_median``: the median fp32 distance gap between int8's edge and fp32's (squared RGB distance);
    ``pairs``: the commonest (fp32 edge, int8 edge) flips with their counts."""

    case: str
    pixels: int
    drift: float
    flip_share: float
    flip_drift_share: float
    same_edge_drift: float
    flip_margin_median: float
    pairs: list[tuple[str, int]]


def probe_graph(path: Path, out: Path) -> tuple[str, str]:
    """Copy the ONNX graph at ``path`` to ``out`` with the depth path head's ArgMin (nearest edge) and its input (the
    squared distances to the 7 edges) as extra outputs; returns their names."""
    import onnx

    model = onnx.load(str(path))
    argmins = [n for n in model.graph.node if n.op_type == "ArgMin"]
    if len(argmins) != 1:
        raise SystemExit(f"{path}: expected one ArgMin (the depth path head, 1 step), found {len(argmins)}")
    node = argmins[0]
    edge, dist = node.output[0], node.input[0]
    model.graph.output.extend(
        [
            onnx.helper.make_tensor_value_info(edge, onnx.TensorProto.INT64, None),
            onnx.helper.make_tensor_value_info(dist, onnx.TensorProto.FLOAT, None),
        ]
    )
    onnx.save(model, str(out))
    return edge, dist


def _edge_name(k: int) -> str:
    names = ("black", "red", "yellow", "green", "cyan", "blue", "magenta", "white")
    return f"{names[k]}-{names[k + 1]}"


def analyse(
    depth32: np.ndarray, depth8: np.ndarray, edge32: np.ndarray, edge8: np.ndarray, dist32: np.ndarray, case: str
) -> Drift:
    """The drift of one depth map (HxW, metres) and where it comes from; ``edge*`` HxW edge indices, ``dist32``
    7xHxW fp32 squared distances."""
    ok = np.isfinite(depth32) & np.isfinite(depth8) & (depth32 > 0)
    rel = np.where(ok, np.abs(depth8 - depth32) / np.where(ok, depth32, 1.0), 0.0)
    flips = ok & (edge32 != edge8)
    total = float(rel[ok].sum())
    rows, cols = np.nonzero(flips)
    margin = dist32[edge8[rows, cols], rows, cols] - dist32[edge32[rows, cols], rows, cols]
    pairs = Counter((_edge_name(int(a)), _edge_name(int(b))) for a, b in zip(edge32[flips], edge8[flips]))
    n = int(ok.sum())
    return Drift(
        case=case,
        pixels=n,
        drift=total / max(n, 1),
        flip_share=float(flips.sum()) / max(n, 1),
        flip_drift_share=float(rel[flips].sum()) / total if total else 0.0,
        same_edge_drift=float(rel[ok & ~flips].sum()) / max(n, 1),
        flip_margin_median=float(np.median(margin)) if margin.size else float("nan"),
        pairs=[(f"{a} -> {b}", c) for (a, b), c in pairs.most_common(5)],
    )


def run(model: Path, engines: Path, out: Path) -> list[Drift]:
    import onnxruntime as ort

    from vb_perception.codecs import decode_depth
    from vb_perception.imageio import sample_frame
    from vb_perception.offline.export import export_onnx
    from vb_perception.offline.quantize import quantize_int8
    from vb_perception.pipeline import Perception, generated_uint8

    engines.mkdir(parents=True, exist_ok=True)
    fp32, int8 = engines / "model.onnx", engines / "model-int8.onnx"
    if not fp32.is_file():
        export_onnx(model, out=fp32)
    if not int8.is_file():
        quantize_int8(fp32, out=int8)
    image = sample_frame()[0]
    pipe = Perception(model, backend="onnxruntime", engine=fp32)
    captured: list[dict[str, np.ndarray]] = []
    infer = pipe.backend.infer  # type: ignore[union-attr]

    def capture(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        captured.append(feeds)
        return infer(feeds)

    pipe.backend.infer = capture  # type: ignore[union-attr,method-assign]
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in (("fp32", fp32), ("int8", int8)):
            probe = Path(tmp) / f"{name}.onnx"
            edge, dist = probe_graph(path, probe)
            sessions[name] = (ort.InferenceSession(str(probe), providers=["CPUExecutionProvider"]), edge, dist)
        results, maps = [], []
        for case, fx_px in CASES:
            captured.clear()
            pipe(image, INT8_PROMPTS, seed=3, fx_px=fx_px)
            feeds = captured[0]
            got = {}
            for name, (sess, edge, dist) in sessions.items():
                rgb, e, d = sess.run(["rgb", edge, dist], feeds)
                # row 0: the depth prompt
                got[name] = (decode_depth(generated_uint8(rgb)[0]), e.reshape(e.shape[-3:])[0], d[:, 0])
            (d32, e32, dist32), (d8, e8, _) = got["fp32"], got["int8"]
            results.append(analyse(d32, d8, e32, e8, dist32, case))
            maps.append((case, d32, d8, e32 != e8))
    _panel(maps, out / "int8_drift.png")
    return results


def _panel(maps: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(maps), 4, figsize=(13, 2.8 * len(maps)), squeeze=False)
    for row, (case, d32, d8, flips) in zip(axes, maps):
        vmax = float(np.nanpercentile(d32, 99))
        rel = np.abs(d8 - d32) / d32
        for ax, img, title, kw in (
            (row[0], d32, f"fp32 depth [m] ({case})", {"vmin": 0, "vmax": vmax, "cmap": "turbo"}),
            (row[1], d8, "int8 depth [m]", {"vmin": 0, "vmax": vmax, "cmap": "turbo"}),
            (row[2], rel, f"relative difference (mean {np.nanmean(rel):.1%})", {"vmax": 0.2, "cmap": "magma"}),
            (row[3], flips, f"edge flips ({flips.mean():.2%} of pixels)", {"cmap": "gray"}),
        ):
            im = ax.imshow(img, **kw)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
            if ax is not row[3]:
                fig.colorbar(im, ax=ax, fraction=0.035)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(results: list[Drift]) -> str:
    lines = [
        "| case | pixels | drift | flipped pixels | their share of the drift | drift on the same edge "
        "| flip margin (median) | commonest flips (fp32 -> int8) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        pairs = ", ".join(f"{p} ({c})" for p, c in r.pairs[:3]) or "none"
        lines.append(
            f"| {r.case} | {r.pixels} | {r.drift:.2%} | {r.flip_share:.2%} | {r.flip_drift_share:.0%} "
            f"| {r.same_edge_drift:.2%} | {r.flip_margin_median:.4f} | {pairs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path, help="a model folder with the depth path head")
    parser.add_argument("--out", type=Path, default=Path("out/int8-drift"), help="folder for the JSON and PNG")
    parser.add_argument("--engines", type=Path, default=None, help="keep / reuse the fp32 and int8 exports here")
    args = parser.parse_args(argv)
    config = json.loads((args.model / "config.json").read_text())
    if not config.get("model", config).get("depth_head", False):
        raise SystemExit(f"{args.model}: no depth path head (model.depth_head); nothing to probe")
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.model, args.engines or Path(tmp), args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_drift.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(_table(results))
    print(f"wrote {args.out / 'int8_drift.json'} and {args.out / 'int8_drift.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
