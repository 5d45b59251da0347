"""The store format (store_version in meta.json) and robbench.store.migration, on a copy
of a committed run put back at format 2 (meta.json without store_version)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from robbench.cli import run
from robbench.store.records import read_json_record, write_json_record
from robbench.store.runs import META, STORE_VERSION, VERSION_KEY, RunStore, StoreVersionError
from robbench.zoo.lookup import MODELS

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = Path("nominal-digits") / MODELS.get("nominal-digits").checkpoint_sha256[:12] / "Linf-eps0.2-seed0"


def set_version(root: Path, version: int | None) -> None:
    """Rewrites meta.json (re-hashed) with this store_version; None removes it."""
    meta = read_json_record(root / META, {})
    meta.pop(VERSION_KEY, None)
    write_json_record(root / META, meta if version is None else {**meta, VERSION_KEY: version})


def snapshot(runs: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(runs)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(runs.rglob("*")) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def old_store(tmp_path) -> Path:
    """runs/ holding a copy of the committed nominal-digits run, at store format 2."""
    runs = tmp_path / "runs"
    shutil.copytree(REPO_ROOT / "runs" / RUN, runs / RUN, ignore=shutil.ignore_patterns(".*"))
    set_version(runs / RUN, None)
    return runs


def test_a_run_without_store_version_is_refused_in_one_line_naming_migrate(old_store, capsys):
    with pytest.raises(StoreVersionError, match=f"upgrade the store with `robbench migrate "
                                                f"--runs-dir {old_store}`"):
        RunStore(old_store / RUN).load_meta()
    assert run(["verify", "--runs-dir", str(old_store), "--no-leaderboards"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "store format 2 or older (no store_version)" in err[0]
    assert f"`robbench migrate --runs-dir {old_store}`" in err[0]


def test_a_migrated_run_verifies_and_loads_the_same_records(old_store, capsys):
    before = snapshot(old_store)
    meta_before = read_json_record(old_store / RUN / META, {})
    assert run(["migrate", "--runs-dir", str(old_store)]) == 0
    assert f"{old_store / RUN}: store format 2 -> {STORE_VERSION}" in capsys.readouterr().out
    after = snapshot(old_store)
    changed = {k for k in before if before[k][0] != after[k][0]}
    assert changed == {str(RUN / META)} and set(after) == set(before)
    store = RunStore(old_store / RUN)
    assert store.load_meta() == {**meta_before, VERSION_KEY: STORE_VERSION}
    assert store.size() > 0 and store.load_model_checks() and store.attack_ids()
    assert run(["verify", "--runs-dir", str(old_store), "--no-leaderboards"]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_migration_is_idempotent(old_store, capsys):
    assert run(["migrate", "--runs-dir", str(old_store)]) == 0
    first = snapshot(old_store)
    capsys.readouterr()
    assert run(["migrate", "--runs-dir", str(old_store)]) == 0
    assert snapshot(old_store) == first
    assert capsys.readouterr().out == (f"0 run(s) upgraded to store format {STORE_VERSION}, "
                                       f"1 already at it: {old_store}\n")


def test_a_newer_store_version_is_refused_and_nothing_is_migrated(old_store, capsys):
    other = old_store / "nominal-digits" / RUN.parts[1] / "Linf-eps0.1-seed0"
    shutil.copytree(REPO_ROOT / "runs" / other.relative_to(old_store), other,
                    ignore=shutil.ignore_patterns(".*"))
    set_version(other, None)
    set_version(old_store / RUN, STORE_VERSION + 1)
    with pytest.raises(StoreVersionError, match="written by a later robbench"):
        RunStore(old_store / RUN).load_meta()
    before = snapshot(old_store)
    assert run(["migrate", "--runs-dir", str(old_store)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "upgrade robbench" in err[0]
    assert snapshot(old_store) == before  # the format-2 run beside it was not touched either


def test_a_format_1_run_is_refused_naming_the_old_tool(old_store, capsys):
    (old_store / RUN / "success_check.csv").write_text("# sha256 0\n")
    assert run(["migrate", "--runs-dir", str(old_store)]) == 1
    assert "f9a05a9" in capsys.readouterr().err
    assert VERSION_KEY not in json.loads((old_store / RUN / META).read_text())


def test_a_new_eval_writes_store_version(workdir):
    runs = workdir / "runs"
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "4",
                "--runs-dir", str(runs), "--leaderboard", str(workdir / "l.csv")]) == 0
    (meta_path,) = runs.glob(f"*/*/*/{META}")
    assert json.loads(meta_path.read_text())[VERSION_KEY] == STORE_VERSION
    assert RunStore(meta_path.parent).load_meta()[VERSION_KEY] == STORE_VERSION  # hash covers it


def test_a_truncated_record_stops_the_migration_in_one_line(old_store, capsys):
    (attack_csv,) = list((old_store / RUN / "attacks").glob("*.csv"))[:1]
    attack_csv.write_text("# sha256 abc")  # no newline: not even a metadata line
    assert run(["migrate", "--runs-dir", str(old_store)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(attack_csv) in err[0]
    assert VERSION_KEY not in json.loads((old_store / RUN / META).read_text())


def test_without_the_attack_registry_a_record_is_refused_not_read_with_a_weaker_check(old_store):
    """The store sits below the attacks: a script that imports only the store must not
    read an attack record with the check meant for attacks that are not minimum-norm."""
    assert run(["migrate", "--runs-dir", str(old_store)]) == 0
    code = ("import sys; from robbench.store.runs import RunStore; "
            f"RunStore(sys.argv[1]).load_attack({run_attack(old_store)!r})")
    done = subprocess.run([sys.executable, "-c", code, str(old_store / RUN)], capture_output=True,
                          text=True, cwd=REPO_ROOT)
    assert done.returncode != 0 and "attack registry is not loaded" in done.stderr


def run_attack(runs: Path) -> str:
    return sorted(p.stem for p in (runs / RUN / "attacks").glob("*.csv"))[0]
