"""Every `python -m benchmarks.X` runs: its --help, and a tiny real run (2-5 samples, tiny
budgets) through the module's own `__main__` entry point. Nothing is written into the
repository: outputs go to tmp, and the committed runs/ and leaderboards/ are only read.
(benchmarks.l2_suite and benchmarks.oracle have their own tests; benchmarks.cifar_path's
tiny run is in test_cifar_path.py, which trains the checkpoint it needs;
benchmarks.standard_seed has no tiny run, as the whole standard set takes tens of
seconds even on three points: its comparison is tested in test_benchmarks.py.)"""

from __future__ import annotations

import json
import runpy
import sys
import warnings

import pytest

from tests.conftest import REPO_ROOT

MODULES = ["attacks", "cascade", "cifar_path", "cw_budget", "fake_cifar", "l2_suite", "oracle", "square_draws",
           "standard_seed", "suite_table", "zoo_table"]


def run_module(monkeypatch, name: str, *argv: str) -> None:
    """`python -m benchmarks.NAME ARGV...`, in this process."""
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{name}.py", *argv])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module is already imported
        runpy.run_module(f"benchmarks.{name}", run_name="__main__", alter_sys=False)


@pytest.mark.parametrize("name", MODULES)
def test_every_benchmark_answers_help(name, monkeypatch, capsys):
    with pytest.raises(SystemExit) as stop:
        run_module(monkeypatch, name, "--help")
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")


def test_attack_speed_reports_strength_from_own_starts_and_the_replay_as_a_consistency_check(
        monkeypatch, capsys):
    run_module(monkeypatch, "attacks", "--models", "nominal-digits", "--n", "3", "--repeats", "1",
               "--min-seconds", "0", "--borderline-seeds", "1", "--no-aa", "--device", "cpu", "--json")
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    keys = list(row)
    assert keys.index("found") < keys.index("borderline") < keys.index("consistency_same_starts")
    methods = {"robbench", "foolbox", "torchattacks"}
    assert set(row["found"]) == set(row["found_per_seed"]) == methods
    assert all(0 <= row["found"][m] <= 3 and row["found_per_seed"][m] == [row["found"][m]] for m in methods)
    assert set(row["borderline"]["found"]) == methods
    consistency = row["consistency_same_starts"]
    assert "not evidence of strength" in consistency["note"]
    assert set(consistency["peer_only"]) == {"foolbox", "torchattacks"}
    assert row["seconds"]["robbench"] > 0 and row["forward_passes"] > 0
    assert "found per seed (own starts)" in captured.err and "consistency (same starts" in captured.err


def test_cascade_benchmark_compares_both_ways_on_a_few_samples(tmp_path, monkeypatch, capsys):
    out = tmp_path / "cascade.json"
    run_module(monkeypatch, "cascade", "--models", "nominal-digits", "--n-examples", "3",
               "--json", "--out", str(out))
    (row,) = json.loads(out.read_text())
    assert row["model"] == "nominal-digits" and row["n"] == 3
    assert set(row["worst_case_acc"]) == {"every_attack", "cascade"}
    assert row["passes"]["every_attack"] >= row["passes"]["cascade"] > 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_cw_budget_compares_a_tiny_budget_with_the_committed_run(monkeypatch, capsys):
    monkeypatch.chdir(REPO_ROOT)  # reads the committed cw run under runs/
    run_module(monkeypatch, "cw_budget", "--model", "nominal-digits", "--budgets", "1x3")
    out = capsys.readouterr().out
    assert out.startswith("nominal-digits, n=")
    assert "9x1000 (registered, committed)" in out and "| 1x3 " in out


def test_fake_cifar_writes_the_cifar10_layout(tmp_path, monkeypatch):
    run_module(monkeypatch, "fake_cifar", str(tmp_path), "--source", "digits", "--n-train", "20",
               "--n-test", "10")
    folder = tmp_path / "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])


def test_suite_table_joins_the_committed_linf_and_l2_leaderboards(monkeypatch, capsys):
    run_module(monkeypatch, "suite_table", "--dataset", "digits",
               "--leaderboards", str(REPO_ROOT / "leaderboards"))
    lines = capsys.readouterr().out.splitlines()
    assert "worst L∞ (ε=0.2)" in lines[0] and "worst L2" in lines[0]
    assert any(line.startswith("| nominal-digits ") for line in lines)


def test_zoo_table_evaluates_the_models_it_is_given(workdir, monkeypatch, capsys):
    run_module(monkeypatch, "zoo_table", "--models", "nominal-digits", "--attacks", "fgsm",
               "--n-examples", "3")
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("| model ") and "fgsm" in line for line in lines)
    assert any(line.startswith("| nominal-digits ") and " 3 " in line for line in lines)
    assert (workdir / "leaderboards" / "digits-Linf.csv").exists()  # written in tmp, as eval does


def test_square_draws_report_how_the_union_of_their_breaks_grows(monkeypatch, tmp_path):
    out = tmp_path / "draws.json"
    run_module(monkeypatch, "square_draws", "--model", "mat-digits", "--draws", "2", "--queries", "20",
               "--n-examples", "24", "--runs-dir", str(REPO_ROOT / "runs"), "--out", str(out))
    row, = json.loads(out.read_text())
    first, second = row["draws"]
    assert row["row_robust"] >= 1 and first["new"] == first["broke"] == first["union"]
    assert second["union"] == first["union"] + second["new"] == len(row["union_broken_samples"])
