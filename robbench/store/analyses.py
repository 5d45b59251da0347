"""Analysis results kept in the results store, for the analyses whose numbers the
leaderboards' findings quote (robbench.leaderboard.findings).

One self-hashing JSON record per (model, checkpoint, analysis, seed), beside the
model's runs: runs/<model>/<sha256[:12]>/analyses/<analysis>-seed<seed>.json. A record
with fewer test samples never replaces one with more, so a quick look with
--n-examples leaves the published figure alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robbench.store.locks import locked
from robbench.store.runs import ANALYSES_DIR
from robbench.store.records import (RecordError, is_date, is_dict, is_int, is_positive, is_sha256, is_str,
                              read_json_record, write_json_record)

FIELDS = {"analysis": is_str, "model": is_str, "dataset": is_str, "checkpoint_sha256": is_sha256,
          "seed": is_int, "n_examples": lambda v: is_int(v) and is_positive(v), "params": is_dict,
          "results": is_dict, "versions": is_dict, "date": is_date}


def record_path(runs_dir: Path, model_id: str, sha256: str, analysis: str, seed: int) -> Path:
    return Path(runs_dir) / model_id / sha256[:12] / ANALYSES_DIR / f"{analysis}-seed{seed}.json"


def load_record(path: Path) -> dict[str, Any]:
    """The validated record; it must describe the path it is stored at."""
    record = read_json_record(path, FIELDS)
    runs_dir = Path(path).parents[3]
    expected = record_path(runs_dir, record["model"], record["checkpoint_sha256"], record["analysis"],
                           record["seed"])
    if expected != Path(path):
        raise RecordError(f"{path}: the record describes {expected}")
    return record


def save_record(runs_dir: Path, record: dict[str, Any]) -> tuple[Path, bool]:
    """Writes the record unless one with more samples is there. (path, written)"""
    path = record_path(runs_dir, record["model"], record["checkpoint_sha256"], record["analysis"],
                       record["seed"])
    with locked(path.parent / ".lock"):
        if path.is_file() and load_record(path)["n_examples"] > record["n_examples"]:
            return path, False
        write_json_record(path, record)
    return path, True


def analysis_records(runs_dir: Path, analysis: str) -> list[tuple[Path, dict[str, Any]]]:
    """Every stored record of one analysis, validated (a damaged one raises)."""
    pattern = f"*/*/{ANALYSES_DIR}/{analysis}-seed*.json"
    return [(path, load_record(path)) for path in sorted(Path(runs_dir).glob(pattern))]


def all_record_paths(runs_dir: Path) -> list[Path]:
    return sorted(p for p in Path(runs_dir).glob(f"*/*/{ANALYSES_DIR}/*") if p.is_file())
