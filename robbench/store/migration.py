"""Upgrades a results store to the store format this robbench reads (STORE_VERSION in
robbench.store.runs), one ordered step per format:

    robbench migrate --runs-dir runs

(the command, not this module, is the entry point: checking each record's meaning needs
the attack registry, which sits above the store).

- 2 -> 3: meta.json gains `store_version`; it is rewritten through the record writer,
  so its record_sha256 is recomputed. No other record changes.

Format 1 (records that did not name their run; silent-success checks in
success_check.csv) has no step here: it existed only between commits cb277d7 and
f9a05a9 (both 2026-11-26), whose tools/migrate_store_v2.py converted the committed
store, and no format-1 store is known anywhere; nor has the format before records
(tools/migrate_store_v1.py, which needed the git history of the committed files). A
run at such a format is refused, naming that commit's tool.

All or nothing: every run is read and checked before anything is written, and a run
this module cannot upgrade (damaged, too old, or from a later robbench) stops it with
one line. Each run is upgraded under its lock (robbench.store.locks), as every writer
of the store does, by atomic renames, so a reader never sees half a file. Running it
again changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from robbench.errors import RobbenchError
from robbench.store.records import (RecordError, check_fields, is_int, read_csv_header, read_json_record,
                                    write_json_record)
from robbench.store.runs import (CLEAN, DIAGNOSTICS, META, META_FIELDS, STORE_VERSION, VERSION_KEY, RunStore,
                                 StoreVersionError, run_roots, version_problem)

OLD_TOOLS = "tools/migrate_store_v2.py of commit f9a05a9 (git show f9a05a9:tools/migrate_store_v2.py)"


def _csv_run(path: Path) -> Any:
    """The `run` a CSV record's metadata line names (None if it names none)."""
    return read_csv_header(path)[0].get("run")


def detect_version(root: Path) -> int:
    """The store format of the run at `root`: its store_version, else 2 if its records
    name their run, else 1."""
    path = root / META
    if not path.is_file():
        raise RecordError(f"{path}: missing; the run's records cannot be attributed")
    meta = read_json_record(path, {})
    if VERSION_KEY in meta:
        version = meta[VERSION_KEY]
        if not is_int(version):
            raise RecordError(f"{path}: field {VERSION_KEY!r} has an invalid value {version!r}")
        return version
    records = [root / CLEAN, *(root / "attacks" / f"{a}.csv" for a in meta.get("attacks", []))]
    unnamed = [p for p in records if p.is_file() and _csv_run(p) is None]
    if (root / DIAGNOSTICS).is_file() and "run" not in read_json_record(root / DIAGNOSTICS, {}):
        unnamed.append(root / DIAGNOSTICS)
    return 1 if unnamed or (root / "success_check.csv").exists() else 2


class _Format2Run(RunStore):
    """A format-2 run read as it will be after 2 -> 3 (meta.json with store_version), so
    that every record can be checked with the store's own readers before it is written."""

    def load_meta(self) -> dict[str, Any] | None:
        path = self.root / META
        if not path.exists():
            return None
        meta = read_json_record(path, {})
        if VERSION_KEY in meta:
            raise StoreVersionError(f"{path}: already has a {VERSION_KEY}, not format 2")
        check_fields(path, meta, {k: v for k, v in META_FIELDS.items() if k != VERSION_KEY})
        return {**meta, VERSION_KEY: 3}

    def check(self) -> None:
        self.load_clean()
        self.load_model_checks()
        for attack_id in self.attack_ids():
            self.load_attack(attack_id)


def check_2(root: Path) -> None:
    _Format2Run(root).check()


def step_2_to_3(root: Path) -> None:
    write_json_record(root / META, _Format2Run(root).load_meta())


# format -> (check that a run at that format is readable, the step to the next format)
STEPS: dict[int, tuple[Callable[[Path], None], Callable[[Path], None]]] = {2: (check_2, step_2_to_3)}


def _refusal(root: Path, version: int) -> str | None:
    """Why this module cannot upgrade a run at `version`, or None."""
    if version > STORE_VERSION:
        return version_problem(root / META, version)
    if version < STORE_VERSION and version not in STEPS:
        return (f"{root / META}: store format {version}, older than this migration reads "
                f"(format {min(STEPS)}); upgrade it to format {min(STEPS)} first with {OLD_TOOLS}")
    return None


def migrate_run(root: Path) -> int:
    """Upgrades one run, under its lock; its format before."""
    root = Path(root)
    with RunStore(root).lock():
        start = version = detect_version(root)
        problem = _refusal(root, version)
        if problem:
            raise StoreVersionError(problem)
        while version < STORE_VERSION:
            check, step = STEPS[version]
            check(root)
            step(root)
            version = detect_version(root)
        RunStore(root).load_meta()
    return start


def migrate_store(runs_dir: Path) -> list[str]:
    """Upgrades every run under `runs_dir`; one line per run upgraded, then a summary.
    Every run is checked before any is written."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise RobbenchError(f"{runs_dir}: not a directory (the results store to upgrade)")
    roots = run_roots(runs_dir)
    versions = {}
    for root in roots:
        version = versions[root] = detect_version(root)
        problem = _refusal(root, version)
        if problem:
            raise StoreVersionError(problem)
        if version < STORE_VERSION:
            STEPS[version][0](root)
    lines = []
    for root in roots:
        if versions[root] < STORE_VERSION:
            before = migrate_run(root)
            if before < STORE_VERSION:
                lines.append(f"{root}: store format {before} -> {STORE_VERSION}")
    lines.append(f"{len(lines)} run(s) upgraded to store format {STORE_VERSION}, "
                 f"{len(roots) - len(lines)} already at it: {runs_dir}")
    return lines
