"""`robbench verify`: checks the whole results store and the leaderboards built from
it, and lists every problem found (one line each) instead of stopping at the first.

For each run directory: every record's hash and schema, that meta.json's identity
matches the directory it is in, that every record it names exists and nothing else
is there (a stray file is a record nobody can attribute, a `.tmp` one a killed write),
and that the records agree with each other. For the leaderboards: a fresh build from
the store into a scratch directory must give the same rows, cell for cell, and the same
Markdown, plots and page."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from robbench.analysis.records import all_record_paths, load_record
from robbench.errors import RobbenchError
from robbench.leaderboard import IDENTITY, is_missing, read_table
from robbench.leaderboard_build import build
from robbench.leaderboard_papers import PAPER_RESULTS
from robbench.leaderboard_render import leaderboard_files
from robbench.records import RecordError
from robbench.results import ATTACKS_DIR, CLEAN, DIAGNOSTICS, LOCK, META, RunStore, run_dir, run_roots

RENDERED = ("*.md", "*.svg", "index.html")  # findings.md among the Markdown


@dataclass
class VerifyReport:
    runs: int = 0
    records: int = 0
    leaderboards: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # harmless: the next eval of the run removes them


def verify(runs_dir: Path, leaderboards: Path | None) -> VerifyReport:
    report = VerifyReport()
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RobbenchError(f"--runs-dir {runs_dir} is not a directory")
    for path in run_roots(runs_dir):  # a dir without files: a first write killed, nothing to attribute
        report.runs += 1
        report.problems += verify_run(path, runs_dir, report)
    report.problems += verify_analyses(runs_dir, report)
    for stray in sorted(runs_dir.rglob("*.tmp")):
        report.notes.append(f"{stray}: a temporary file left by a killed write (not a record; "
                            f"the next eval of its run removes it)")
    if leaderboards is not None and not report.problems:
        report.problems += verify_leaderboards(Path(leaderboards), runs_dir, report)
    elif leaderboards is not None:
        report.problems.append(f"{leaderboards}: not compared with the store, which has problems")
    return report


def verify_run(root: Path, runs_dir: Path, report: VerifyReport) -> list[str]:
    store = RunStore(root)
    if not (root / META).is_file():
        return [f"{root}: {META} is missing"]
    try:
        meta = store.load_meta()
        report.records += 1
    except RecordError as exc:
        return [str(exc)]
    problems = []
    expected = run_dir(runs_dir, meta["model"], meta["checkpoint_sha256"], meta["threat_model"],
                       meta["eps"], meta["seed"])
    if expected.resolve() != root.resolve():
        problems.append(f"{root}: {META} describes the run at {expected}")
    known = {root / META, root / CLEAN, root / DIAGNOSTICS, root / LOCK}
    known |= {store.attack_path(a) for a in meta["attacks"]}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p not in known
                       and p.suffix != ".tmp"):
        problems.append(f"{path}: not a record {META} names")
    loaders = [("clean", store.load_clean), ("model checks", store.load_model_checks)]
    loaders += [(a, lambda a=a: store.load_attack(a)) for a in meta["attacks"]]
    loaded = {}
    for name, load in loaders:
        try:
            loaded[name] = load()
            report.records += 1
        except RecordError as exc:
            problems.append(str(exc))
    if not problems:
        problems += consistency(root, loaded, meta["attacks"])
    return problems


def verify_analyses(runs_dir: Path, report: VerifyReport) -> list[str]:
    """Analysis records (robbench.analysis.records): hash, schema, and stored where
    their content says; anything else in an analyses/ folder is a stray file."""
    problems = []
    for path in all_record_paths(runs_dir):
        if path.suffix == ".tmp" or path.name == LOCK:
            continue
        if path.suffix != ".json":
            problems.append(f"{path}: not an analysis record")
            continue
        try:
            load_record(path)
            report.records += 1
        except RecordError as exc:
            problems.append(str(exc))
    return problems


def consistency(root: Path, loaded: dict, attack_ids: list[str]) -> list[str]:
    """Across records: attacks only on samples with a clean prediction; a sample the
    model already misclassifies counts as an attack success (its clean input is the
    adversarial)."""
    clean = loaded["clean"]
    if clean is None:
        return [f"{root}: {CLEAN} is missing"] if attack_ids else []
    correct = dict(zip(clean["index"], clean["correct"]))
    problems = []
    for attack_id in attack_ids:
        rows = loaded[attack_id][0]
        unknown = sorted(set(rows["index"]) - set(correct))
        if unknown:
            problems.append(f"{root / ATTACKS_DIR / attack_id}.csv: samples without a clean "
                            f"prediction, e.g. {unknown[0]}")
        wrong = rows[~rows["index"].map(correct).fillna(True).astype(bool) & ~rows["success"]]
        if len(wrong):
            problems.append(f"{root / ATTACKS_DIR / attack_id}.csv: sample {wrong['index'].iloc[0]} "
                            f"is misclassified when clean but not counted as a success")
    return problems


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
