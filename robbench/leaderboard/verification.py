"""`robbench verify`: checks the whole results store (robbench.store.verification) and
the leaderboards built from it, and lists every problem found (one line each) instead of
stopping at the first. For the leaderboards: a fresh build from the store into a scratch
directory must give the same rows, cell for cell, and the same Markdown, plots and page."""

from __future__ import annotations

import tempfile
from pathlib import Path

from robbench.errors import RobbenchError
from robbench.leaderboard.builder import build
from robbench.leaderboard.papers import PAPER_RESULTS
from robbench.leaderboard.render.outputs import leaderboard_files
from robbench.store.table import IDENTITY, is_missing, read_table
from robbench.store.verification import VerifyReport, verify_store

RENDERED = ("*.md", "*.svg", "index.html")  # findings.md among the Markdown


def verify(runs_dir: Path, leaderboards: Path | None) -> VerifyReport:
    report = VerifyReport()
    runs_dir = Path(runs_dir)
    verify_store(runs_dir, report)
    if leaderboards is not None and not report.problems:
        report.problems += verify_leaderboards(Path(leaderboards), runs_dir, report)
    elif leaderboards is not None:
        report.problems.append(f"{leaderboards}: not compared with the store, which has problems")
    return report


def verify_leaderboards(leaderboards: Path, runs_dir: Path, report: VerifyReport) -> list[str]:
    """The committed leaderboards against a fresh build from the store."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="robbench-verify-") as tmp:
        fresh = Path(tmp)
        papers = leaderboards / PAPER_RESULTS
        try:
            build(out=fresh, runs_dir=runs_dir, paper_results=papers if papers.is_file() else None)
        except RobbenchError as exc:
            return [f"rebuilding the leaderboards failed: {exc}"]
        mine = {p.name for p in leaderboard_files(leaderboards)}
        theirs = {p.name for p in leaderboard_files(fresh)}
        for name in sorted(mine - theirs):
            problems.append(f"{leaderboards / name}: no run or paper row supports it")
        for name in sorted(theirs - mine):
            problems.append(f"{leaderboards / name}: missing; the store has rows for it")
        for name in sorted(mine & theirs):
            report.leaderboards += 1
            problems += compare_tables(leaderboards / name, fresh / name)
        for pattern in RENDERED:
            for path in sorted(fresh.glob(pattern)):
                mine_path = leaderboards / path.name
                if not mine_path.is_file() or mine_path.read_bytes() != path.read_bytes():
                    problems.append(f"{mine_path}: differs from a fresh render of the leaderboards")
    return problems


def compare_tables(committed: Path, fresh: Path) -> list[str]:
    try:
        mine = read_table(committed)
    except RobbenchError as exc:
        return [str(exc)]
    theirs = read_table(fresh)
    if committed.read_bytes() == fresh.read_bytes():
        return []
    key = lambda t: t[IDENTITY].astype(str).agg("|".join, axis=1)  # noqa: E731
    mine.index, theirs.index = key(mine), key(theirs)
    problems = []
    for row in mine.index.difference(theirs.index):
        problems.append(f"{committed}: row {mine.loc[row, 'model']} (seed {mine.loc[row, 'seed']}) "
                        f"has no run in the store")
    for row in theirs.index.difference(mine.index):
        problems.append(f"{committed}: no row for {theirs.loc[row, 'model']}, which the store has")
    for row in mine.index.intersection(theirs.index):
        for column in sorted(set(mine.columns) | set(theirs.columns)):
            a = mine.loc[row, column] if column in mine.columns else None
            b = theirs.loc[row, column] if column in theirs.columns else None
            if not same_cell(a, b):
                problems.append(f"{committed}: {mine.loc[row, 'model']}: {column} is {shown(a)}, "
                                f"the store gives {shown(b)}")
    if not problems:
        problems.append(f"{committed}: differs from a fresh build in row order or formatting")
    return problems


def shown(value: object) -> str:
    return "empty" if is_missing(value) else repr(value.item() if hasattr(value, "item") else value)


def same_cell(a: object, b: object) -> bool:
    if is_missing(a) or is_missing(b):
        return is_missing(a) and is_missing(b)
    return a == b
