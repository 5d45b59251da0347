"""The store half of `robbench verify` (the leaderboard half, and `verify` itself, are
robbench.leaderboard.verification): every problem found, one line each, instead of
stopping at the first.

For each run directory: every record's hash and schema, that meta.json's identity
matches the directory it is in, that every record it names exists and nothing else
is there (a stray file is a record nobody can attribute, a `.tmp` one a killed write),
and that the records agree with each other. Every analysis record: its hash, schema
and place. A store with runs in another store format is refused as a whole, in one
line naming the command that upgrades it (robbench.store.migration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robbench.store.analyses import all_record_paths, load_record
from robbench.errors import RobbenchError
from robbench.store.records import RecordError, read_json_record
from robbench.store.runs import (ATTACKS_DIR, CLEAN, DIAGNOSTICS, LOCK, META, VERSION_KEY, RunStore,
                                 StoreVersionError, run_dir, run_roots, version_problem)


@dataclass
class VerifyReport:
    runs: int = 0
    records: int = 0
    leaderboards: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # harmless: the next eval of the run removes them


def verify_store(runs_dir: Path, report: VerifyReport) -> None:
    """Every run's and every analysis' records, into `report` (problems and notes)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RobbenchError(f"--runs-dir {runs_dir} is not a directory")
    check_store_versions(runs_dir)
    for path in run_roots(runs_dir):  # a dir without files: a first write killed, nothing to attribute
        report.runs += 1
        report.problems += verify_run(path, runs_dir, report)
    report.problems += verify_analyses(runs_dir, report)
    for stray in sorted(runs_dir.rglob("*.tmp")):
        report.notes.append(f"{stray}: a temporary file left by a killed write (not a record; "
                            f"the next eval of its run removes it)")


def check_store_versions(runs_dir: Path) -> None:
    """StoreVersionError, one line, if any run is in another store format than this
    robbench reads (a missing or damaged meta.json is left to verify_run)."""
    roots = run_roots(runs_dir)
    problems = []
    for root in roots:
        try:
            meta = read_json_record(root / META, {})
        except RecordError:
            continue
        problem = version_problem(root / META, meta.get(VERSION_KEY))
        if problem:
            problems.append(problem)
    if problems:
        more = f" ({len(problems)} of {len(roots)} runs are not at this format)" if len(problems) > 1 else ""
        raise StoreVersionError(problems[0] + more)


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
    """Analysis records (robbench.store.analyses): hash, schema, and stored where
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
