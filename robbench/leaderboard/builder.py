"""`robbench leaderboard build`: every leaderboard CSV regenerated from the results
store under runs/ (and from the papers' reported numbers), then rendered
(robbench.leaderboard.render.outputs).

One row per run directory, i.e. per (model id, checkpoint, threat model, ε, seed):
the row `robbench eval` writes for it (robbench.evaluation.scoring.run_row). Every record read
is validated first and nothing is written until every table is computed, so a damaged
record stops the build with one line naming it and leaves the leaderboards as they
were. Building twice gives byte-identical files."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from robbench.zoo.lookup import MODELS
from robbench.config import LEADERBOARD_DIR, RUNS_DIR, THREAT_DEFAULTS
from robbench.errors import RobbenchError
from robbench.leaderboard.findings import collect_findings
from robbench.evaluation.evaluator import EvalRequest, evaluate, resolve_attacks
from robbench.store.table import IDENTITY, default_path, format_table, parse_name, read_table
from robbench.store.atomic import write_text_if_changed
from robbench.leaderboard.papers import PAPER_RESULTS, paper_tables
from robbench.leaderboard.render.outputs import leaderboard_files, render_all
from robbench.store.records import RecordError
from robbench.store.runs import META, RunStore, run_roots
from robbench.evaluation.scoring import run_row

DEFAULT_EVAL_ATTACKS = ["pgd100"]


@dataclass
class BuildReport:
    written: list[Path] = field(default_factory=list)  # CSVs regenerated
    rendered: list[Path] = field(default_factory=list)  # Markdown, plots, the page
    rows: dict[str, int] = field(default_factory=dict)  # CSV name -> rows
    stale: list[Path] = field(default_factory=list)  # CSVs in scope with no rows now
    removed: list[Path] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    without_results: list[str] = field(default_factory=list)  # zoo models with a checkpoint
    warnings: list[str] = field(default_factory=list)


# --- measured rows from the store ---------------------------------------------------

def run_dirs(runs_dir: Path) -> list[Path]:
    """Every run directory holding a file (robbench.store.runs.run_roots). One without
    meta.json is a damaged run, not an empty one."""
    found = run_roots(runs_dir)
    for path in found:
        if not (path / META).is_file():
            raise RecordError(f"{path}: {META} is missing; its records cannot be attributed")
    return found


def current_runs(runs_dir: Path, dataset: str | None, warn: Callable[[str], None]) -> list[RunStore]:
    """Every run of a zoo model: each gets its row (robbench.evaluation.scoring.row_model_id names
    the rows of checkpoints other than the manifest's `<id>@<sha256[:12]>`)."""
    chosen = []
    for path in run_dirs(runs_dir):
        store = RunStore(path)
        meta = store.load_meta()
        if dataset is not None and meta["dataset"] != dataset:
            continue
        if meta["model"] not in MODELS:
            warn(f"{path}: {meta['model']!r} is not a zoo model, skipped")
            continue
        chosen.append(store)
    return chosen


def measured_tables(runs: list[RunStore], out: Path,
                    warn: Callable[[str], None]) -> dict[Path, list[dict[str, Any]]]:
    tables: dict[Path, list[dict[str, Any]]] = defaultdict(list)
    for store in runs:
        meta = store.load_meta()
        row = run_row(store)
        if row is None:
            warn(f"{store.root}: no attack covers any of its samples yet, skipped")
            continue
        path = default_path(out, meta["dataset"], meta["threat_model"], meta["eps"],
                            meta["protocol_eps"])
        tables[path].append(row)
    return tables


def evaluate_missing(runs: list[RunStore], dataset: str | None, attacks: list[str],
                     runs_dir: Path, n_examples: int | None, device: str,
                     data_root: str | None, report: BuildReport,
                     log: Callable[[str], None]) -> None:
    """Evaluates every zoo model with a committed checkpoint that has no run of it at
    the protocol ε of `attacks`' threat model. Failures are reported, not fatal."""
    _, norm = resolve_attacks(attacks)
    have = set()
    for store in runs:
        meta = store.load_meta()
        if meta["threat_model"] == norm and meta["eps"] == meta["protocol_eps"]:
            have.add(meta["model"])
    for model_id, entry in MODELS.items():
        if entry.checkpoint_sha256 is None or (dataset is not None and entry.dataset != dataset):
            continue
        if model_id in have:
            continue
        log(f"evaluating {model_id} ({', '.join(attacks)})")
        with tempfile.TemporaryDirectory() as tmp:
            try:  # the leaderboards are rebuilt below; eval's own upsert goes to a scratch file
                evaluate(EvalRequest(model_id=model_id, attacks=attacks, n_examples=n_examples,
                                     device=device, data_root=data_root, runs_dir=runs_dir,
                                     leaderboard=Path(tmp) / "scratch.csv", progress=False))
            except RobbenchError as exc:
                report.warnings.append(f"{model_id}: not evaluated: {exc}")
                continue
        report.evaluated.append(model_id)


# --- the build ----------------------------------------------------------------------

def check_build_paths(out: Path, runs_dir: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RobbenchError(f"--out {out} is not a directory")
    if runs_dir.exists() and not runs_dir.is_dir():
        raise RobbenchError(f"--runs-dir {runs_dir} is not a directory")


def default_paper_results(out: Path) -> Path:
    """OUT's own paper_results.csv, else the one of the leaderboards directory, so a
    build into another folder gives the same tables as the committed ones."""
    own = out / PAPER_RESULTS
    return own if own.is_file() else Path(LEADERBOARD_DIR) / PAPER_RESULTS


def build(out: Path = Path(LEADERBOARD_DIR), runs_dir: Path = Path(RUNS_DIR),
          dataset: str | None = None, paper_results: Path | None = None,
          run_evaluations: bool = False, attacks: list[str] | None = None,
          n_examples: int | None = None, device: str = "cpu", data_root: str | None = None,
          prune: bool = False, log: Callable[[str], None] = lambda msg: None) -> BuildReport:
    out, runs_dir = Path(out), Path(runs_dir)
    check_build_paths(out, runs_dir)
    if dataset is not None and dataset not in THREAT_DEFAULTS:
        raise RobbenchError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(THREAT_DEFAULTS))})")
    if run_evaluations and attacks is not None and not attacks:
        raise RobbenchError("--attacks is empty; give the attacks to evaluate with (default pgd100)")
    report = BuildReport()
    paper_path = Path(paper_results) if paper_results is not None else default_paper_results(out)
    if paper_results is not None and not paper_path.is_file():
        raise RobbenchError(f"paper results {paper_path} does not exist")

    runs = current_runs(runs_dir, dataset, report.warnings.append)
    if run_evaluations:
        evaluate_missing(runs, dataset, attacks or DEFAULT_EVAL_ATTACKS, runs_dir, n_examples,
                         device, data_root, report, log)
        runs = current_runs(runs_dir, dataset, lambda msg: None)
    have = {store.load_meta()["model"] for store in runs}
    report.without_results = [m for m, e in MODELS.items() if e.checkpoint_sha256 is not None
                              and m not in have and (dataset is None or e.dataset == dataset)]

    tables = measured_tables(runs, out, report.warnings.append)
    if paper_path.is_file():
        for path, rows in paper_tables(paper_path, out, dataset).items():
            tables[path].extend(rows)
    else:
        report.warnings.append(f"no paper results at {paper_path}: no source=paper rows")

    texts = {path: table_text(path, rows) for path, rows in sorted(tables.items())}
    kept = [p for p in leaderboard_files(out) if p not in texts
            and (dataset is None or parse_name(p)[0] == dataset)]
    for path in leaderboard_files(out):
        if path not in texts and not (prune and path in kept):
            read_table(path)  # rendered as it is: it must be valid before anything is written

    out.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        write_text_if_changed(path, text)
        report.written.append(path)
        report.rows[path.name] = len(tables[path])
    for path in kept:
        if prune:
            path.unlink()
            report.removed.append(path)
        else:
            report.stale.append(path)
    report.rendered, removed = render_all(out, collect_findings(out, runs_dir, paper_path))
    report.removed += removed
    return report


def table_text(path: Path, rows: list[dict[str, Any]]) -> str:
    """The CSV text of one leaderboard; two rows with one identity are an error."""
    frame = pd.DataFrame(rows)
    ids = frame.reindex(columns=IDENTITY).astype(str)
    if ids.duplicated().any():
        raise RobbenchError(f"{path.name}: two rows for {frame['model'][ids.duplicated()].iloc[0]} "
                            f"with the same checkpoint, threat model, eps and seed")
    return format_table(frame)[1]
