"""Benchmark results files (a JSON list of rows, one per model): written atomically, and
a run on some models replaces their rows and keeps the others'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robbench.store.atomic import write_text_atomic


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows; none where it does not exist yet."""
    return json.loads(path.read_text()) if path.exists() else []


def merged(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """rows in place of those models' rows in the file (of that norm, in files with one
    row per model and norm), the others kept, new ones last."""
    kept = read_rows(out)
    fresh = {key(r): r for r in rows}
    merged_rows = [fresh.pop(key(r), r) for r in kept]
    return merged_rows + list(fresh.values())


def key(row: dict[str, Any]) -> tuple[str, str | None]:
    return row["model"], row.get("norm")


def write_rows(out: Path, rows: list[dict[str, Any]], merge: bool) -> None:
    """The file becomes rows (merge False) or rows merged into it (merge True)."""
    write_text_atomic(out, json.dumps(merged(out, rows) if merge else rows, indent=2) + "\n")
