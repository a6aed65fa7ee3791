"""The codec demo: a real RGB-D frame through the RGB interface and back, with a picture and the numbers.

Depth -> RGB (the paper's encoding) -> optional JPEG -> decoded metres, compared with the input; normals computed
from the depth and K -> RGB -> decoded; a PNG panel and a JSON report.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vb_perception.codecs import decode_depth, decode_normals, encode_depth, encode_normals
from vb_perception.codecs.normals import camera_to_optical, optical_to_camera
from vb_perception.geometry import normals_from_depth
from vb_perception.imageio import Intrinsics

__all__ = ["CodecDemoResult", "RangeError", "run_codec_demo"]

_RANGES_M = ((0.5, 1.0), (1.0, 10.0), (10.0, 30.0))


@dataclass(frozen=True)
class RangeError:
    """Round-trip error of the valid pixels whose true depth lies in ``[lo_m, hi_m)``."""

    lo_m: float
    hi_m: float
    pixels: int
    abs_rel: float
    max_rel: float


@dataclass(frozen=True)
class CodecDemoResult:
    """Numbers of one demo run (relative errors are fractions, angles degrees)."""

    png_abs_rel: float
    png_max_rel: float
    jpeg_quality: int
    jpeg_abs_rel: float
    invalid_kept_invalid: bool
    normals_mean_angle_deg: float
    per_range: tuple[RangeError, ...]
    panel_path: str
    report_path: str


def _jpeg(rgb: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _rel(pred: NDArray[np.float32], gt: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.abs(pred - gt) / gt


def _panel(
    path: Path,
    color: NDArray[np.uint8],
    depth_rgb: NDArray[np.uint8],
    decoded: NDArray[np.float32],
    rel_err: NDArray[np.float32],
    jpeg_rel_err: NDArray[np.float32],
    normals_rgb: NDArray[np.uint8],
    result: dict[str, float],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.2), constrained_layout=True)
    axes[0, 0].imshow(color)
    axes[0, 0].set_title("input colour (TUM RGB-D)")
    axes[0, 1].imshow(depth_rgb)
    axes[0, 1].set_title("depth as RGB (paper encoding, black = invalid)")
    im = axes[0, 2].imshow(decoded, cmap="turbo")
    axes[0, 2].set_title("decoded depth [m] (NaN = white)")
    fig.colorbar(im, ax=axes[0, 2], shrink=0.8)
    im = axes[1, 0].imshow(rel_err * 100.0, cmap="magma", vmin=0.0, vmax=0.3)
    axes[1, 0].set_title(f"8-bit PNG round trip, |error|/depth [%]\nAbsRel {result['png_abs_rel'] * 100:.3f} %")
    fig.colorbar(im, ax=axes[1, 0], shrink=0.8)
    im = axes[1, 1].imshow(jpeg_rel_err * 100.0, cmap="magma", vmin=0.0, vmax=3.0)
    axes[1, 1].set_title(
        f"after JPEG q{result['jpeg_quality']}, |error|/depth [%]\nAbsRel {result['jpeg_abs_rel'] * 100:.2f} %"
    )
    fig.colorbar(im, ax=axes[1, 1], shrink=0.8)
    axes[1, 2].imshow(normals_rgb)
    axes[1, 2].set_title(
        f"normals from depth + K as RGB\nround trip {result['normals_mean_angle_deg']:.2f} deg mean angle"
    )
    for ax in axes.ravel():
        ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_codec_demo(
    color: NDArray[np.uint8],
    depth_m: NDArray[np.float32],
    intrinsics: Intrinsics,
    out_dir: Path,
    jpeg_quality: int = 90,
) -> CodecDemoResult:
    """Run the round trips on one frame and write ``codec_panel.png`` and ``codec_report.json`` to ``out_dir``."""
    valid = np.isfinite(depth_m) & (depth_m > 0)
    depth_rgb = encode_depth(depth_m, invalid="min")
    decoded = decode_depth(depth_rgb)
    rel = np.where(valid, _rel(decoded, depth_m), np.nan)
    jpeg_decoded = decode_depth(_jpeg(depth_rgb, jpeg_quality))
    jpeg_rel = np.where(valid & np.isfinite(jpeg_decoded), _rel(jpeg_decoded, depth_m), np.nan)

    normals_opt = normals_from_depth(depth_m, intrinsics.matrix())
    normals_rgb = encode_normals(optical_to_camera(normals_opt))
    normals_back = camera_to_optical(decode_normals(normals_rgb))
    ok = np.isfinite(normals_opt[..., 0]) & np.isfinite(normals_back[..., 0])
    cos = np.clip(np.sum(normals_opt[ok] * normals_back[ok], axis=-1), -1.0, 1.0)

    per_range = []
    truth = depth_m[valid]
    for lo, hi in _RANGES_M:
        sel = (truth >= lo) & (truth < hi)
        r = rel[valid][sel]
        per_range.append(
            RangeError(lo, hi, int(sel.sum()), float(r.mean()) if r.size else 0.0, float(r.max()) if r.size else 0.0)
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    panel_path, report_path = out_dir / "codec_panel.png", out_dir / "codec_report.json"
    numbers = {
        "png_abs_rel": float(np.nanmean(rel)),
        "png_max_rel": float(np.nanmax(rel)),
        "jpeg_quality": jpeg_quality,
        "jpeg_abs_rel": float(np.nanmean(jpeg_rel)),
        "invalid_kept_invalid": bool(np.all(np.isnan(decoded[~valid]))),
        "normals_mean_angle_deg": float(np.degrees(np.arccos(cos)).mean()) if cos.size else 0.0,
    }
    _panel(panel_path, color, depth_rgb, decoded, rel, jpeg_rel, normals_rgb, numbers)
    result = CodecDemoResult(
        **numbers, per_range=tuple(per_range), panel_path=str(panel_path), report_path=str(report_path)
    )
    report_path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return result
