"""Leaderboard CSVs: one row per (model id, checkpoint sha256, threat model, ε, seed),
validated on every read, upserted under a lock and replaced atomically."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from robbench.errors import RobbenchError
from robbench.store.atomic import write_text_if_changed
from robbench.store.locks import locked

LEADING = ["model", "defense", "dataset", "threat_model", "eps", "architecture", "clean_acc"]
TRAILING = ["worst_case_acc", "n_examples", "forward_per_point", "backward_per_point", "seconds",
            "device", "seed", "checkpoint_sha256", "robbench_version",
            "torch_version", "date", "source", "unreliable", "reference"]
INTEGER_COLUMNS = ["n_examples", "seed"]
TEXT_COLUMNS = ["checkpoint_sha256", "robbench_version", "torch_version", "date", "unreliable",
                "reference", "device"]
# `<dataset>-<norm>.csv` or `<dataset>-<norm>-eps<ε>.csv` (see default_path)
NAME_PATTERN = re.compile(r"^(?P<dataset>.+)-(?P<norm>Linf|L2)(?:-eps(?P<eps>[0-9.e+-]+))?$")


def default_path(root: Path, dataset: str, norm: str, eps: float, protocol_eps: float) -> Path:
    """`<dataset>-<norm>.csv` at the protocol ε; any other ε gets its own file so a
    custom run is never mixed into a protocol table. (Rows carry their exact ε, and it
    is part of their identity, so budgets that round alike here still keep apart.)"""
    if eps == protocol_eps:
        return root / f"{dataset}-{norm}.csv"
    shown = f"{eps:.6g}"
    if float(shown) == protocol_eps:  # a budget a hair off the protocol's is not the protocol's
        shown = repr(float(eps))
    return root / f"{dataset}-{norm}-eps{shown}.csv"


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


IDENTITY = ["model", "checkpoint_sha256", "threat_model", "eps", "seed"]
NUMBER_COLUMNS = ["eps", "clean_acc", "worst_case_acc"]
REQUIRED = ["model", "threat_model", "eps", "worst_case_acc", "source"]


def read_text_table(path: Path, required: list[str], what: str) -> pd.DataFrame:
    """A CSV as text cells (nothing guessed), with these columns; else one error line."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RobbenchError(f"{path}: not a readable {what} CSV ({type(exc).__name__})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise RobbenchError(f"{path}: not a {what} (no {', '.join(missing)} column)")
    return table


def read_table(path: Path) -> pd.DataFrame:
    """A leaderboard, checked cell by cell: a non-numeric accuracy, a fractional n or a
    second row with the same identity is one error naming the file, row and column."""
    path = Path(path)
    table = read_text_table(path, REQUIRED, "leaderboard")
    for column in table.columns:
        kind = ("int" if column in INTEGER_COLUMNS else "text" if column in TEXT_COLUMNS
                or column in LEADING and column not in NUMBER_COLUMNS or column == "source"
                else "number")
        if kind == "text":
            table[column] = table[column].replace("", pd.NA) if column != "model" else table[column]
            continue
        values = [_number(path, i, column, v, kind) for i, v in enumerate(table[column])]
        table[column] = pd.array(values, dtype="Int64" if kind == "int" else "float64")
    if (table["model"] == "").any():
        raise RobbenchError(f"{path}: row {int((table['model'] == '').to_numpy().argmax()) + 2} "
                            f"has no model id")
    ids = table[IDENTITY].astype(str) if set(IDENTITY) <= set(table.columns) else table[["model"]]
    dup = ids.duplicated()
    if dup.any():
        raise RobbenchError(f"{path}: two rows for {table['model'][dup].iloc[0]!r} with the same "
                            f"checkpoint, threat model, eps and seed")
    return table


def _number(path: Path, i: int, column: str, text: str, kind: str) -> float | int | None:
    if text == "":
        return None if kind == "int" else math.nan
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or (kind == "int" and not value.is_integer()):
        what = "an integer" if kind == "int" else "a finite number"
        raise RobbenchError(f"{path}: row {i + 2}, column {column}: {text!r} is not {what}")
    return int(value) if kind == "int" else value


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


def format_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    table = sort_table(frame)
    return table, table.to_csv(index=False, lineterminator="\n")


def write_table(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Writes atomically, and not at all when the bytes would not change."""
    table, text = format_table(frame)
    write_text_if_changed(path, text)
    return table


def same_identity(table: pd.DataFrame, row: dict[str, Any]) -> pd.Series:
    """Rows of `table` with `row`'s identity (model id, checkpoint, threat model, ε, seed)."""
    match = pd.Series(True, index=table.index)
    for column in IDENTITY:
        value = row.get(column)
        if column not in table.columns:
            match &= is_missing(value)
        elif column in ("eps", "seed"):
            match &= pd.to_numeric(table[column]).astype(float) == float(value)
        else:
            match &= table[column].astype(str) == str(value)
    return match


def not_covered(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why `new` may not replace `old` (a row with the same identity), or None. A
    published row is replaced only by a row covering at least its samples and every
    attack column it has, so a quick look (or a scratch store) never shrinks it."""
    old_n, new_n = old.get("n_examples"), new.get("n_examples")
    if not is_missing(old_n) and (is_missing(new_n) or int(new_n) < int(old_n)):
        return f"the row on record covers n={int(old_n)}, this run n={new_n}"
    lacking = sorted(c for c in attack_columns(list(old)) if not is_missing(old[c])
                     and is_missing(new.get(c)))
    if lacking:
        return f"the row on record has attack column(s) {', '.join(lacking)}, which this run lacks"
    return None


@dataclass(frozen=True)
class Upsert:
    """What an upsert left in the leaderboard: the row now there for this identity, and
    why the new row was not written (None when it was)."""

    row: dict[str, Any]
    kept_because: str | None = None


def upsert_row(path: Path, make_row: Callable[[], dict[str, Any]]) -> Upsert:
    """Replaces the row with the new row's identity (or adds it) unless the row on
    record covers more (not_covered); sorted by worst-case accuracy. The row is made
    while the leaderboard's lock is held, so of several processes the last to write
    also read the store last: concurrent evals keep every row and every finished attack."""
    path = Path(path)
    with locked(path.with_name(f".{path.name}.lock")):
        row = make_row()
        new = pd.DataFrame([row])
        if path.exists():
            old = read_table(path)
            same = same_identity(old, row)
            if same.any():
                kept = {k: v for k, v in old[same].iloc[0].to_dict().items()}
                reason = not_covered(kept, row)
                if reason is not None:
                    return Upsert(kept, reason)
            new = pd.concat([old[~same], new], ignore_index=True)
        write_table(path, new)
        return Upsert(row)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA \
        or (isinstance(value, str) and value == "")
