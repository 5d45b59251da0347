"""Leaderboard CSVs: one row per model and threat model, replaced atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from robbench.io import write_csv_atomic

LEADING = ["model", "defense", "dataset", "threat_model", "eps", "architecture", "clean_acc"]
TRAILING = ["worst_case_acc", "n_examples", "seed", "checkpoint_sha256", "robbench_version",
            "torch_version", "date", "source", "unreliable", "reference"]


def default_path(root: Path, dataset: str, norm: str, eps: float, protocol_eps: float) -> Path:
    """`<dataset>-<norm>.csv` at the protocol ε; any other ε gets its own file so a
    custom run never replaces a protocol row."""
    if abs(eps - protocol_eps) < 1e-12:
        return root / f"{dataset}-{norm}.csv"
    return root / f"{dataset}-{norm}-eps{eps:.6g}.csv"


def order_columns(columns: list[str]) -> list[str]:
    attacks = sorted(c for c in columns if c not in LEADING and c not in TRAILING)
    return LEADING + attacks + TRAILING


def upsert_row(path: Path, row: dict[str, Any]) -> pd.DataFrame:
    """Replaces `row["model"]`'s row (or adds it); sorted by worst-case accuracy."""
    new = pd.DataFrame([row])
    if path.exists():
        old = pd.read_csv(path, dtype={"checkpoint_sha256": str})
        new = pd.concat([old[old["model"] != row["model"]], new], ignore_index=True)
    columns = order_columns(list(new.columns))
    table = new.reindex(columns=columns)
    table = table.sort_values(["worst_case_acc", "model"], ascending=[False, True], kind="stable")
    write_csv_atomic(path, table)
    return table
