"""A folder of pre-rendered synthetic samples (``vb-perception synth`` output) read back as :class:`Sample` objects.

CPU training reads samples from such a cache instead of rendering them, so both cores go to the model; a cache is
deterministic by (seed, index), so any machine can regenerate it.
"""

from __future__ import annotations

import json
from pathlib import Path

from vb_perception.offline.synth.attributes import InstanceInfo
from vb_perception.offline.synth.dataset import SynthConfig, SynthError, load_sample, write_dataset
from vb_perception.offline.synth.render import Sample

__all__ = ["SampleCache", "ensure_cache"]


def _instance(d: dict[str, object]) -> InstanceInfo:
    cx, cy = d["centroid_xy"]  # type: ignore[misc]
    depth = d["median_depth_m"]
    return InstanceInfo(
        id=int(d["id"]),  # type: ignore[call-overload]
        class_name=str(d["class"]),
        color_name=str(d["color"]),
        size_m=float(d["size_m"]),  # type: ignore[arg-type]
        is_object=bool(d["is_object"]),
        area_px=int(d["area_px"]),  # type: ignore[call-overload]
        centroid_x=float(cx),
        centroid_y=float(cy),
        median_depth_m=float("nan") if depth is None else float(depth),  # type: ignore[arg-type]
        position=str(d["position"]),
        expressions=tuple(d["expressions"]),  # type: ignore[arg-type]
    )


class SampleCache:
    """Random access to ``<index>.npz`` + ``<index>.json`` pairs in ``folder`` (only indices below ``limit`` when
    given)."""

    def __init__(self, folder: str | Path, limit: int | None = None) -> None:
        self.folder = Path(folder)
        self.indices = sorted(
            int(p.stem)
            for p in self.folder.glob("*.json")
            if p.stem.isdigit() and (limit is None or int(p.stem) < limit) and p.with_suffix(".npz").is_file()
        )
        if not self.indices:
            raise SynthError(f"{self.folder}: no samples; create them with vb-perception synth --out {self.folder}")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        index = self.indices[i]
        arrays = load_sample(self.folder / f"{index:06d}.npz")
        side = json.loads((self.folder / f"{index:06d}.json").read_text())
        return Sample(
            rgb=arrays["rgb"],
            depth_m=arrays["depth_m"],
            normals=arrays["normals"],
            instance_ids=arrays["instance_ids"],
            k=arrays["K"],
            instances=tuple(_instance(d) for d in side["instances"]),
            family=str(side["family"]),
            seed=int(side["index"]),
        )


def ensure_cache(folder: str | Path, cfg: SynthConfig, n: int, workers: int | None = None) -> SampleCache:
    """Render whatever of samples 0..n-1 is missing in ``folder`` (all of them when the config changed); a larger
    ``n`` than before renders only the new samples. The cache reads samples 0..n-1."""
    root = Path(folder)
    meta = root / "config.json"
    same = meta.is_file() and {k: v for k, v in json.loads(meta.read_text()).items() if k not in ("n", "format")} == {
        k: list(map(list, v)) if k == "mix" else v for k, v in cfg.__dict__.items()
    }
    have = {int(p.stem) for p in root.glob("*.json") if p.stem.isdigit()} if same else set()
    if len(have & set(range(n))) < n:
        write_dataset(cfg, n, root, fmt="npz", workers=workers, skip=have)
    return SampleCache(root, limit=n)
