"""What a row cost: forward and backward passes per point, seconds and device, from
the records of the attacks behind its worst case (robbench.evaluation.scoring.cost)."""

import json

from robbench.cli import run
from robbench.evaluation.scoring import run_row
from robbench.leaderboard.builder import build
from robbench.leaderboard.render.page import page_columns
from robbench.store.table import read_table
from tests.stores import VERSIONS, new_run, write_attack, write_clean


def two_attack_run(runs):
    store = new_run(runs, "nominal-digits")
    write_clean(store, [0, 0, 0, 0], [0, 0, 0, 1])  # the last point is misclassified
    write_attack(store, "fgsm", [True, False, False, True], passes=([2, 2, 2, 0], [1, 1, 1, 0]),
                 seconds=1.5)
    write_attack(store, "pgd20", [True, True, False, True], passes=([3, 21, 21, 0], [2, 20, 20, 0]),
                 seconds=4.0)
    return store


def test_a_rows_passes_per_point_sum_its_attacks_records_over_its_points(tmp_path):
    row = run_row(two_attack_run(tmp_path / "runs"))
    assert row["forward_per_point"] == (6 + 45) / 4
    assert row["backward_per_point"] == (3 + 42) / 4


def test_a_rows_seconds_are_its_records_seconds(tmp_path):
    assert run_row(two_attack_run(tmp_path / "runs"))["seconds"] == 5.5


def test_a_rows_device_names_every_device_its_records_ran_on(tmp_path):
    store = new_run(tmp_path / "runs", "nominal-digits")
    write_clean(store, [0, 0], [0, 0])
    write_attack(store, "fgsm", [True, False], versions={**VERSIONS, "device": "cuda (H100)"})
    write_attack(store, "pgd20", [True, False], versions={**VERSIONS, "device": "cpu"})
    assert run_row(store)["device"] == "cpu, cuda (H100)"


def test_eval_json_reports_the_passes_its_records_hold(workdir, capsys):
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm,pgd20", "--n-examples", "10",
                "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    records = summary["attacks"].values()
    assert summary["cost"]["forward_per_point"] == round(sum(a["n_forward"] for a in records) / 10, 2)
    assert summary["cost"]["backward_per_point"] == round(sum(a["n_backward"] for a in records) / 10, 2)
    assert summary["cost"]["forward_per_point"] > 0


def test_the_leaderboard_csv_has_the_cost_columns(tmp_path):
    two_attack_run(tmp_path / "runs")
    build(out=tmp_path / "lb", runs_dir=tmp_path / "runs")
    table = read_table(tmp_path / "lb" / "digits-Linf.csv")
    assert table.loc[0, "forward_per_point"] == 12.75
    assert {"backward_per_point", "seconds", "device"} <= set(table.columns)


def test_the_page_shows_the_passes_per_point_by_default(tmp_path):
    two_attack_run(tmp_path / "runs")
    build(out=tmp_path / "lb", runs_dir=tmp_path / "runs")
    shown = [c for c, provenance in page_columns(read_table(tmp_path / "lb" / "digits-Linf.csv"))
             if not provenance]
    assert {"forward_per_point", "backward_per_point"} <= set(shown)


def test_eval_prints_what_its_worst_case_cost(workdir, capsys):
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "10"]) == 0
    assert "backward passes per point" in capsys.readouterr().out
