#!/usr/bin/env python3
"""Average the weights of models of one architecture (a model soup) into a model folder, to evaluate or bundle.

Usage:
    python scripts/soup.py OUT MODEL=WEIGHT [MODEL=WEIGHT ...]
    python scripts/soup.py out/snaps/soup models/vb-mini=0.5 out/snaps/a=0.25 out/runs/b=0.25
    python scripts/soup.py out/snaps/b-raw out/runs/b=1          # a run's raw weights as a model folder

A MODEL is a model folder, or a run folder (``tune``'s ``run_dir``): then its raw weights at its last checkpoint,
not the EMA its ``model/`` holds (a run that ends on a learning-rate cool-down is best taken raw).

Runs that continue one model (here: CPU runs from the bundle) stay in one basin, so their average is a model too,
and often better than each (Wortsman et al. 2022, "Model soups"). The weights must sum to 1; the average is taken
in fp32 and written in fp32 (bundling stores fp16). ``OUT/config.json`` is the first model's, its notes naming the
members and adding no training of their own (``step`` 0): bundle the members' runs as segments first
(``scripts/bundle.py OUT --segment NAME --also RUN=MODEL ...``). A soup of one keeps its member's notes (steps,
examples, wall time), so a run's raw weights bundle as that run's segment.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

#: config keys that may differ between members (everything else is the architecture)
_FREE = ("model_version", "notes", "default_steps")


class SoupError(ValueError):
    pass


def _files(member: Path) -> tuple[Path, Path]:
    """(config.json, weights) of a model folder, or of a run folder: its raw weights at its last checkpoint."""
    if (member / "checkpoint" / "model.safetensors").is_file() and (member / "model" / "config.json").is_file():
        return member / "model" / "config.json", member / "checkpoint" / "model.safetensors"
    if not (member / "config.json").is_file() or not (member / "model.safetensors").is_file():
        raise SoupError(f"{member} is neither a model folder (config.json, model.safetensors) nor a tune run folder")
    return member / "config.json", member / "model.safetensors"


def _with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a model folder's config.json) with every ``GeneratorConfig`` field it lacks at its default."""
    from dataclasses import MISSING, fields

    from vb_perception.model.generator import GeneratorConfig

    defaults = {f.name: f.default for f in fields(GeneratorConfig) if f.default is not MISSING}
    return {**{k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}, **config}


def soup(out: Path, members: list[tuple[Path, float]]) -> Path:
    """Write the weighted average of ``members`` ((model or run folder, weight), weights summing to 1) to ``out``."""
    if not members:
        raise SoupError("give one model or more: MODEL=WEIGHT ...")
    total = sum(w for _, w in members)
    if abs(total - 1.0) > 1e-6 or any(w < 0 for _, w in members):
        raise SoupError(f"the weights must be non-negative and sum to 1, not {total:g}")
    files = [_files(m) for m, _ in members]
    configs = [json.loads(c.read_text()) for c, _ in files]
    # a field a config lacks (written before the field existed) has its default, as loading it gives
    arch = [{k: v for k, v in _with_defaults(c).items() if k not in _FREE} for c in configs]
    for (m, _), a in zip(members[1:], arch[1:]):
        if a != arch[0]:
            diff = sorted(k for k in set(a) | set(arch[0]) if a.get(k) != arch[0].get(k))
            raise SoupError(f"{m} is another architecture than {members[0][0]} (config differs in {diff})")
    average: dict = {}
    for (m, w), (_, weights) in zip(members, files):
        state = load_file(weights)
        if average and state.keys() != average.keys():
            raise SoupError(f"{m}: its weights do not match {members[0][0]}'s")
        for k, v in state.items():
            average[k] = average.get(k, 0.0) + v.float() * w
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in average.items()}, out / "model.safetensors")
    parts = [
        {"model": str(m), "model_version": c.get("model_version"), "weight": w, "raw": wt.parent.name == "checkpoint"}
        for (m, w), c, (_, wt) in zip(members, configs, files)
    ]
    notes = {"run": "soup", "step": 0, "samples_seen": 0, "train_wall_s": 0, "soup": parts}
    if len(members) == 1:  # a copy (a run's raw weights): its training is its own, to bundle as a segment
        notes = configs[0].get("notes", {}) | {"soup": parts}
    (out / "config.json").write_text(json.dumps(configs[0] | {"notes": notes}, indent=2) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the soup's model folder")
    ap.add_argument("members", nargs="+", metavar="MODEL=WEIGHT")
    args = ap.parse_args()
    members = []
    for item in args.members:
        path, _, weight = item.rpartition("=")
        try:
            members.append((Path(path), float(weight)))
        except ValueError:
            ap.error(f"{item!r}: write MODEL=WEIGHT, e.g. models/vb-mini=0.5")
        if not path:
            ap.error(f"{item!r}: write MODEL=WEIGHT, e.g. models/vb-mini=0.5")
    try:
        print(f"wrote {soup(args.out, members)}")
    except SoupError as exc:
        raise SystemExit(f"soup: {exc}") from exc


if __name__ == "__main__":
    main()
