"""Benchmark helpers: results files keep the rows a run did not touch; a timing re-run prices the reference."""

from __future__ import annotations

import json

from benchmarks.results_file import merged


def test_a_run_on_some_models_replaces_their_rows_and_keeps_the_others(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps([{"model": "a", "missed": 1}, {"model": "b", "missed": 2}]))
    rows = merged(out, [{"model": "b", "missed": 0}, {"model": "c", "missed": 5}])
    assert rows == [{"model": "a", "missed": 1}, {"model": "b", "missed": 0}, {"model": "c", "missed": 5}]


def test_without_a_results_file_the_run_s_rows_are_the_file(tmp_path):
    assert merged(tmp_path / "none.json", [{"model": "a"}]) == [{"model": "a"}]


def test_a_timing_rerun_prices_the_committed_passes_at_its_seconds_per_pass():
    import pandas as pd

    from benchmarks.l2_suite import priced_by_rerun

    committed = {"cw": pd.DataFrame({"n_forward": [700, 700], "n_backward": [600, 600]}),
                 "ddn": pd.DataFrame({"n_forward": [101, 101], "n_backward": [99, 99]})}
    rerun = {"cw": pd.DataFrame({"n_forward": [500], "n_backward": [500]}),   # 1000 passes in 2 s
             "ddn": pd.DataFrame({"n_forward": [100], "n_backward": [100]})}  # 200 passes in 1 s
    seconds = priced_by_rerun(committed, {"cw": 2.0, "ddn": 1.0}, rerun)
    assert seconds == 2.0 / 1000 * 2600 + 1.0 / 200 * 400
