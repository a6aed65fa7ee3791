"""The replay report: ``report.html`` (self-contained: PNGs inlined) and the PNG plots next to it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["depth_by_range_figure", "write_report"]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def depth_by_range_figure(panels: dict[str, list[dict[str, Any]]]) -> Any:
    """One panel per entry of ``panels`` (title -> :meth:`DepthByRange.rows`): bars of δ1 and AbsRel per ground-truth
    depth range, each range labelled with its share of the pixels and its scale bias (predicted / true)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 3.3), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items()):
        total = sum(r["pixels"] for r in rows) or 1
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [r["delta1"] for r in rows], 0.4, label="δ1 ↑")
        ax.bar(x + 0.2, [r["abs_rel"] for r in rows], 0.4, label="AbsRel ↓")
        labels = [f"{r['range']}\n{100 * r['pixels'] / total:.0f}% px, ×{r['scale']:.2f}" for r in rows]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_ylim(0, max([1.0] + [r["abs_rel"] for r in rows if np.isfinite(r["abs_rel"])]))
        ax.set_xlabel("ground-truth depth (×: geometric mean of predicted / true)", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _plots(result: Any, samples: list[dict[str, Any]], by_range: dict[str, list[dict[str, Any]]]) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    scored = [f for f in result.frames if "metrics" in f]
    if scored:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
        for cam in sorted({f["camera"] for f in scored}):
            rows = [f for f in scored if f["camera"] == cam]
            idx = [f["index"] for f in rows]
            for ax, key, title in zip(axes, ("delta1", "abs_rel", "rmse_m"), ("δ1 ↑", "AbsRel ↓", "RMSE [m] ↓")):
                ax.plot(idx, [f["metrics"][key] for f in rows], ".-", label=cam)
                ax.set_title(f"{title} per frame (metric)", fontsize=9)
                ax.set_xlabel("frame")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        out["metrics_per_frame.png"] = _png(fig)
        plt.close(fig)
    if by_range:
        fig = depth_by_range_figure({f"metric depth by range: {cam}": rows for cam, rows in by_range.items()})
        out["depth_by_range.png"] = _png(fig)
        plt.close(fig)
    lat = [f["latency_ms"] for f in result.frames if "latency_ms" in f]
    if lat:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(lat, bins=min(30, max(5, len(lat) // 3)))
        ax.set_xlabel("pipeline latency per frame [ms]")
        ax.set_ylabel("frames")
        ax.axvline(float(np.median(lat)), color="k", linestyle="--", label=f"median {np.median(lat):.0f} ms")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out["latency.png"] = _png(fig)
        plt.close(fig)
    if samples:
        cols = ["input", "depth [m]", "normals", "segmentation", "|error| / gt"]
        fig, axes = plt.subplots(len(samples), len(cols), figsize=(3 * len(cols), 2.4 * len(samples)), squeeze=False)
        for row, s in zip(axes, samples):
            row[0].imshow(s["rgb"])
            row[0].set_title(f"{s['camera']} #{s['index']}", fontsize=8)
            im = row[1].imshow(s["depth_m"], cmap="turbo")
            fig.colorbar(im, ax=row[1], shrink=0.7)
            row[2].imshow(s["normals_rgb"])
            row[3].imshow(s["segmentation"] if s.get("segmentation") is not None else s["rgb"])
            if s.get("error") is not None:
                im = row[4].imshow(s["error"], cmap="magma", vmin=0, vmax=0.5)
                fig.colorbar(im, ax=row[4], shrink=0.7)
            for ax, title in zip(row[1:], cols[1:]):
                ax.set_title(title, fontsize=8)
            for ax in row:
                ax.set_axis_off()
        fig.tight_layout()
        out["panels.png"] = _png(fig)
        plt.close(fig)
    return out


def write_report(out_dir: Path, report: dict[str, Any], result: Any, samples: list[dict[str, Any]]) -> Path:
    """Write the PNGs and ``report.html`` into ``out_dir``; returns the HTML path."""
    pngs = _plots(result, samples, report.get("depth_by_range", {}))
    for name, data in pngs.items():
        (out_dir / name).write_bytes(data)
    esc = html.escape
    overall_rows = "".join(
        f"<tr><td>{esc(cam)}</td><td>{m['frames']:.0f}</td><td>{m['delta1']:.3f}</td><td>{m['delta2']:.3f}</td>"
        f"<td>{m['delta3']:.3f}</td><td>{m['abs_rel']:.3f}</td><td>{m['rmse_m']:.3f}</td>"
        f"<td>{m['delta1_aligned']:.3f}</td><td>{m['abs_rel_aligned']:.3f}</td></tr>"
        for cam, m in report["overall"].items()
    )
    failed_rows = "".join(
        f"<tr><td>{esc(f['camera'])}</td><td>{f['index']}</td><td>{f['stamp_ns']}</td><td>{esc(f['reason'])}</td></tr>"
        for f in report["failed"]
    )
    images = "".join(
        f'<h2>{esc(name.removesuffix(".png").replace("_", " "))}</h2><img src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}" alt="{esc(name)}">'
        for name, data in pngs.items()
    )
    error = f'<p class="bad">Stopped early: {esc(report["error"])}</p>' if report["error"] else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vb_perception replay</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}img{{max-width:100%}}.bad{{color:#b00}}</style>
</head><body>
<h1>vb_perception replay</h1>
{error}
<p>Bags: {esc(", ".join(report["bags"]))}<br>Output bag: {esc(report["output_bag"])}<br>
Model {esc(report["model"])} on {esc(report["backend"])}, {report["steps"]} step(s); prompts:
{esc("; ".join(report["prompts"]))}<br>
{report["frames_ok"]} frames replayed at {report["fps"]:.2f} frames/s, {report["frames_failed"]} failed.</p>
<h2>Depth against the ground truth</h2>
<p>Metric: no scale alignment. The last two columns are median-scaled, for reference only.</p>
<table><tr><th>camera</th><th>frames</th><th>δ1</th><th>δ2</th><th>δ3</th><th>AbsRel</th><th>RMSE [m]</th>
<th>δ1 (scaled)</th><th>AbsRel (scaled)</th></tr>{overall_rows or '<tr><td colspan="9">no ground truth</td></tr>'}
</table>
<h2>Failed frames</h2>
<table><tr><th>camera</th><th>frame</th><th>stamp [ns]</th><th>reason</th></tr>
{failed_rows or '<tr><td colspan="4">none</td></tr>'}</table>
{images}
</body></html>
"""
    path = out_dir / "report.html"
    path.write_text(page)
    return path
