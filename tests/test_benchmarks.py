"""Benchmark helpers: results files keep the rows a run did not touch; a timing re-run
prices the reference and reports where its outcomes differ; bad input is one error line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchmarks.l2_suite import priced, rerun_outcomes
from benchmarks.results_file import merged


def test_a_run_on_some_models_replaces_their_rows_and_keeps_the_others(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps([{"model": "a", "missed": 1}, {"model": "b", "missed": 2}]))
    rows = merged(out, [{"model": "b", "missed": 0}, {"model": "c", "missed": 5}])
    assert rows == [{"model": "a", "missed": 1}, {"model": "b", "missed": 0}, {"model": "c", "missed": 5}]


def test_in_a_file_of_rows_per_model_and_norm_a_run_replaces_only_its_norms_row(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps([{"model": "a", "norm": "Linf", "cost": 1}, {"model": "a", "norm": "L2", "cost": 2}]))
    rows = merged(out, [{"model": "a", "norm": "L2", "cost": 3}])
    assert rows == [{"model": "a", "norm": "Linf", "cost": 1}, {"model": "a", "norm": "L2", "cost": 3}]


def test_without_a_results_file_the_run_s_rows_are_the_file(tmp_path):
    assert merged(tmp_path / "none.json", [{"model": "a"}]) == [{"model": "a"}]


def test_a_timing_rerun_prices_the_committed_passes_at_its_seconds_per_pass():
    committed = {"cw": pd.DataFrame({"n_forward": [700, 700], "n_backward": [600, 600]}),
                 "ddn": pd.DataFrame({"n_forward": [101, 101], "n_backward": [99, 99]})}
    rerun = {"cw": pd.DataFrame({"n_forward": [500], "n_backward": [500]}),   # 1000 passes in 2 s
             "ddn": pd.DataFrame({"n_forward": [100], "n_backward": [100]})}  # 200 passes in 1 s
    records = {"cw": (rerun["cw"], {"seconds": 2.0}), "ddn": (rerun["ddn"], {"seconds": 1.0})}
    seconds = priced(committed, records, rerun)
    # cw: 2 ms a pass x 2 x 1300 committed passes = 5.2 s; ddn: 5 ms x 2 x 200 = 2.0 s
    assert seconds == pytest.approx(7.2)


def test_a_timing_rerun_reports_the_breaks_the_suite_left_robust_on_the_samples_it_reran():
    params = {"cw": {"id": "cw"}, "ddn": {"id": "ddn"}}
    committed = {a: (None, {"params": p}) for a, p in params.items()}
    rerun_frames = {"cw": pd.DataFrame({"success": [False, True, False]}),  # samples 0..2 of 4
                    "ddn": pd.DataFrame({"success": [True, False, False]})}
    rerun = ({a: (f, {"params": params[a]}) for a, f in rerun_frames.items()}, rerun_frames)
    ref_success = np.array([True, False, False, True])
    suite_success = np.array([True, False, False, True])
    out = rerun_outcomes("m", committed, rerun, ref_success, suite_success)
    assert out == {"rerun_n": 3, "rerun_disagrees": 1, "rerun_breaks_left_robust": [1]}


def test_a_timing_rerun_with_other_attack_parameters_is_refused():
    frames = {a: pd.DataFrame({"success": [False]}) for a in ("cw", "ddn")}
    committed = {a: (None, {"params": {"steps": 1000}}) for a in frames}
    rerun = ({a: (f, {"params": {"steps": 100 if a == "cw" else 1000}}) for a, f in frames.items()}, frames)
    with pytest.raises(SystemExit, match="cw parameters differ"):
        rerun_outcomes("m", committed, rerun, np.zeros(1, bool), np.zeros(1, bool))


def test_the_l2_suite_benchmark_judges_the_suite_against_every_source_on_record(tmp_path):
    """compare() runs end to end (it once raised TypeError) on a committed digits run with
    a tiny suite; its full reference adds the suite's companions in standard-l2 and, given
    the oracle's file, the libraries' breaks to cw + ddn. With an oracle that broke every
    sample, each sample the suite and its companions leave robust is a miss. The samples cover one that the row counts
    robust against everything, so at least one such miss exists on any CPU."""
    from dataclasses import replace

    from benchmarks.l2_suite import COMPANIONS, compare
    from benchmarks.oracle import robbench_robust
    from robbench.attacks import ATTACKS
    from tests.conftest import REPO_ROOT

    runs = REPO_ROOT / "runs"
    n = int(robbench_robust("mat-digits", 60, runs, "L2").nonzero()[0]) + 1
    tiny = replace(ATTACKS.get("l2-suite"), stages=("apgd-ce",), apgd_steps=2)
    plain = compare("mat-digits", tiny, n, "cpu", 64, None, runs)
    assert COMPANIONS == ("square-l2", "square-l2-long", "fab-t-l2", "apgd-t-l2", "square-l2-long2",
                          "square-l2-restarts", "apgd-t-l2-restarts", "smoothed-relu-l2")
    assert plain["full_reference"] == ["cw", "ddn", *COMPANIONS] and plain["n"] == n
    oracle = tmp_path / "oracle.json"
    oracle.write_text(json.dumps([{"model": "mat-digits", "n": n, "library_broken_samples": list(range(n))}]))
    judged = compare("mat-digits", tiny, n, "cpu", 64, None, runs, oracle_file=oracle)
    assert judged["full_reference"] == ["cw", "ddn", *COMPANIONS, "oracle"]
    assert judged["full_reference_worst_case_acc"] == 0.0
    left_robust = round(judged["worst_case_acc_with_companions"] * n / 100)
    assert judged["missed_full"] == left_robust >= 1


def standard_store(tmp_path, skip: str | None = None):
    from robbench.config import STANDARD_ATTACKS
    from tests.stores import new_run, write_attack, write_clean

    store = new_run(tmp_path / "runs", "nominal-digits")
    write_clean(store, [0, 0, 0, 0], [0, 0, 0, 1])
    for i, attack_id in enumerate(a for a in STANDARD_ATTACKS["standard"] if a != skip):
        # pgd100 breaks sample 0, aa sample 1; sample 3 is misclassified (success, not "broken")
        write_attack(store, attack_id, [attack_id == "pgd100", attack_id == "aa", False, True],
                     passes=([i, i, i, 0], [0, 0, 0, 0]))
    return store


def test_the_standard_sets_breaks_are_the_union_of_its_records_on_clean_correct_samples(tmp_path):
    from benchmarks.fast import standard_broken

    broken, passes, worst = standard_broken(standard_store(tmp_path), 4, "Linf")
    assert broken.tolist() == [True, True, False, False]
    assert passes == sum(3 * i for i in range(7)) / 4
    assert worst == 25.0


def test_a_committed_run_without_every_standard_attack_is_refused(tmp_path):
    from benchmarks.fast import standard_broken

    with pytest.raises(SystemExit, match="lacks square"):
        standard_broken(standard_store(tmp_path, skip="square"), 4, "Linf")


def test_after_the_standard_set_grew_only_an_entry_whose_worst_case_held_is_re_derived(tmp_path):
    from benchmarks.fast import restandard

    standard_store(tmp_path)  # worst case 25.0
    row = {"model": "nominal-digits", "norm": "Linf", "n": 4, "worst_standard": 25.0,
           "passes_standard": 1.0, "missed_vs_standard": 0}
    assert restandard(row, tmp_path / "runs")["passes_standard"] == round(sum(3 * i for i in range(7)) / 4, 1)
    assert restandard({**row, "worst_standard": 50.0}, tmp_path / "runs") is None


def test_fast_misses_the_samples_a_source_broke_that_it_counts_robust():
    from benchmarks.fast import left_robust

    fast_robust = np.array([True, False, True, True])
    assert left_robust(fast_robust, [0, 1, 3]) == [0, 3]
    assert left_robust(fast_robust, []) == []


def test_a_standard_run_at_another_seed_reports_what_each_seed_breaks_alone_and_fast_s_stable_misses():
    from benchmarks.standard_seed import compare

    committed = np.array([True, True, True, False, False])
    at_seed = np.array([True, False, True, True, False])
    # fast left samples 1 and 2 robust: 1 the other seed misses too, 2 it breaks
    found = compare(committed, at_seed, fast_missed=[1, 2])
    assert found["committed_breaks"] == 3
    assert (found["missed_by_seed"], found["missed_by_seed_samples"]) == (1, [1])
    assert (found["new_breaks"], found["new_breaks_samples"]) == (1, [3])
    assert (found["fast_missed_stable"], found["fast_missed_stable_samples"]) == (1, [2])


def test_the_seed_benchmark_refuses_the_committed_run_s_own_seed(tmp_path):
    from benchmarks.standard_seed import main

    with pytest.raises(SystemExit, match=r"^error: --seed 0 is the committed run's seed"):
        main(["--models", "at-digits", "--seed", "0", "--out", str(tmp_path / "out.json")])
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("flag", ["--table", "--standard-only"])
def test_reading_a_missing_fast_results_file_is_a_one_line_error(tmp_path, flag):
    from benchmarks.fast import main

    with pytest.raises(SystemExit, match=r"^error: .*missing\.json: no results file to read$"):
        main([flag, "--out", str(tmp_path / "missing.json")])
    assert not (tmp_path / "missing.json").exists()


def test_a_benchmark_s_bad_input_ends_as_one_error_line_not_a_traceback():
    from benchmarks import run_main
    from robbench.errors import RobbenchError

    def main():
        raise RobbenchError("dataset 'mnist-t10k' not found at /nowhere")

    with pytest.raises(SystemExit, match=r"^error: dataset 'mnist-t10k' not found at /nowhere$") as exit:
        run_main(main)
    assert exit.value.__cause__ is None and exit.value.__suppress_context__


def test_a_benchmark_s_missing_dataset_error_suggests_no_download_flag_it_lacks(tmp_path):
    from benchmarks import run_main
    from robbench.datasets import load_split

    with pytest.raises(SystemExit) as exit:
        run_main(lambda: load_split("mnist-t10k", "test", tmp_path))
    assert str(exit.value).startswith("error: dataset 'mnist-t10k' not found at ")
    assert "--data-root" in str(exit.value) and "--download" not in str(exit.value)


def test_every_benchmark_runs_its_main_through_run_main():
    from pathlib import Path

    benchmarks = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = [p for p in benchmarks.glob("*.py") if "__main__" in p.read_text()]
    assert len(scripts) >= 10
    assert [p.name for p in scripts if not p.read_text().rstrip().endswith("run_main(main)")] == []
