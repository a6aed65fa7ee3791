"""scripts/compare_evals.py: eval reports side by side, the best of each metric in bold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from scripts_loader import load_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "compare_evals.py"
compare = load_script("compare_evals")


def _report(folder: Path, version: str, **parts: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "eval.json").write_text(json.dumps({"model_version": version, **parts}))
    return folder


def test_rows_columns_and_the_best_in_bold(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", "m@1", depth={"delta1": 0.8, "abs_rel": 0.2, "rmse_m": 3.0}, semantic={"miou": 0.5})
    b = _report(tmp_path / "b", "m@2", depth={"delta1": 0.7, "abs_rel": 0.1, "rmse_m": float("nan")})
    rows = compare.table([a, b / "eval.json"]).splitlines()
    assert rows[0].split("|")[1:-1] == [" report ", " δ1 ", " AbsRel ", " RMSE (m) ", " mIoU "]  # no empty columns
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in rows[2:]}
    assert cells["m@1"] == ["**0.800**", "0.200", "3.00", "0.500"]  # higher δ1 wins; a single mIoU is not bold
    assert cells["m@2"] == ["0.700", "**0.100**", "", ""]  # lower AbsRel wins; NaN and missing are blank


def test_repeated_versions_name_their_reports_and_a_missing_one_says_what_to_do(tmp_path: Path) -> None:
    a = _report(tmp_path / "a", "m@1", depth={"delta1": 0.8})
    b = _report(tmp_path / "b", "m@1", depth={"delta1": 0.8})
    names = [r.split("|")[1].strip() for r in compare.table([a, b]).splitlines()[2:]]
    assert names == [f"m@1 ({a})", f"m@1 ({b})"]
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none")], capture_output=True, text=True)
    assert done.returncode != 0 and "vb-perception eval" in done.stderr
