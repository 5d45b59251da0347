"""One table per dataset joining its L∞ and L2 leaderboards at the protocol ε:
`python -m benchmarks.suite_table --dataset digits`. It reads leaderboards/ only (run
`robbench leaderboard build` first); a blank cell is an attack not yet on record.
Worst case is per sample within each threat model, never across them."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmarks import run_main
from robbench.config import LEADERBOARD_DIR

LINF_COLUMNS = ["pgd100", "aa", "square", "transfer", "adaptive"]
L2_COLUMNS = ["cw", "ddn"]


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("model") if path.exists() else pd.DataFrame()


def cell(frame: pd.DataFrame, model: str, column: str, fmt: str = ".2f") -> str:
    if model not in frame.index or column not in frame.columns:
        return ""
    value = frame.at[model, column]
    return "" if isinstance(value, float) and math.isnan(value) else format(float(value), fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--leaderboards", default=LEADERBOARD_DIR)
    args = parser.parse_args()
    linf = read(Path(args.leaderboards) / f"{args.dataset}-Linf.csv")
    l2 = read(Path(args.leaderboards) / f"{args.dataset}-L2.csv")
    rows = []
    for model in linf.index:
        rows.append([model, cell(linf, model, "clean_acc")]
                    + [cell(linf, model, c) for c in LINF_COLUMNS]
                    + [cell(linf, model, "worst_case_acc"), cell(linf, model, "n_examples", ".0f")]
                    + [cell(l2, model, c) for c in L2_COLUMNS]
                    + [cell(l2, model, "worst_case_acc"), cell(l2, model, "n_examples", ".0f")])
    eps = {norm: frame["eps"].iloc[0] for norm, frame in (("Linf", linf), ("L2", l2)) if len(frame)}
    print(tabulate(rows, tablefmt="github", disable_numparse=True, headers=[
        "model", "clean", *LINF_COLUMNS, f"worst L∞ (ε={eps.get('Linf', '?')})", "n",
        *L2_COLUMNS, f"worst L2 (ε={eps.get('L2', '?')})", "n L2"]))


if __name__ == "__main__":
    run_main(main)
