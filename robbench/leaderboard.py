"""Leaderboard CSVs: one row per model and threat model, replaced atomically."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from robbench.io import write_csv_atomic

LEADING = ["model", "defense", "dataset", "threat_model", "eps", "architecture", "clean_acc"]
TRAILING = ["worst_case_acc", "n_examples", "seed", "checkpoint_sha256", "robbench_version",
            "torch_version", "date", "source", "unreliable", "reference"]
INTEGER_COLUMNS = ["n_examples", "seed"]
TEXT_COLUMNS = ["checkpoint_sha256", "robbench_version", "torch_version", "date", "unreliable",
                "reference"]
# `<dataset>-<norm>.csv` or `<dataset>-<norm>-eps<ε>.csv` (see default_path)
NAME_PATTERN = re.compile(r"^(?P<dataset>.+)-(?P<norm>Linf|L2)(?:-eps(?P<eps>[0-9.e+-]+))?$")


def default_path(root: Path, dataset: str, norm: str, eps: float, protocol_eps: float) -> Path:
    """`<dataset>-<norm>.csv` at the protocol ε; any other ε gets its own file so a
    custom run never replaces a protocol row."""
    if abs(eps - protocol_eps) < 1e-12:
        return root / f"{dataset}-{norm}.csv"
    return root / f"{dataset}-{norm}-eps{eps:.6g}.csv"


def parse_name(path: Path) -> tuple[str, str, float | None] | None:
    """(dataset, norm, ε or None at the protocol ε) for a leaderboard file name, None
    for any other CSV (e.g. paper_results.csv)."""
    match = NAME_PATTERN.match(Path(path).stem)
    if match is None:
        return None
    eps = match["eps"]
    try:
        return match["dataset"], match["norm"], float(eps) if eps else None
    except ValueError:
        return None


def order_columns(columns: list[str]) -> list[str]:
    attacks = sorted(c for c in columns if c not in LEADING and c not in TRAILING)
    return LEADING + attacks + TRAILING


def attack_columns(columns: list[str]) -> list[str]:
    """The per-attack columns of a table: everything between LEADING and TRAILING."""
    return [c for c in order_columns(list(columns)) if c not in LEADING and c not in TRAILING]


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=True)


def sort_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed columns (order_columns), integer columns as integers even beside empty
    cells, rows by worst-case accuracy (best first, empty last), then model id."""
    table = frame.reindex(columns=order_columns(list(frame.columns)))
    for column in INTEGER_COLUMNS:
        values = pd.to_numeric(table[column], errors="coerce")
        finite = values.dropna()
        if len(finite) == (table[column].notna()).sum() and all(float(v).is_integer() for v in finite):
            table[column] = values.astype("Int64")
    table = table.sort_values(["worst_case_acc", "model"], ascending=[False, True],
                              kind="stable", na_position="last")
    return table.reset_index(drop=True)


def write_table(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    table = sort_table(frame)
    write_csv_atomic(path, table)
    return table


def upsert_row(path: Path, row: dict[str, Any]) -> pd.DataFrame:
    """Replaces `row["model"]`'s row (or adds it); sorted by worst-case accuracy."""
    new = pd.DataFrame([row])
    if path.exists():
        old = read_table(path)
        new = pd.concat([old[old["model"] != row["model"]], new], ignore_index=True)
    return write_table(path, new)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA \
        or (isinstance(value, str) and value == "")
