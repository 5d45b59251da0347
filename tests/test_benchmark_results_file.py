"""benchmarks.l2_suite's results file: a run on some models does not drop the others."""

from __future__ import annotations

import json

from benchmarks.l2_suite import merged


def test_a_run_on_some_models_replaces_their_rows_and_keeps_the_others(tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps([{"model": "a", "missed": 1}, {"model": "b", "missed": 2}]))
    rows = merged(out, [{"model": "b", "missed": 0}, {"model": "c", "missed": 5}])
    assert rows == [{"model": "a", "missed": 1}, {"model": "b", "missed": 0}, {"model": "c", "missed": 5}]


def test_without_a_results_file_the_run_s_rows_are_the_file(tmp_path):
    assert merged(tmp_path / "none.json", [{"model": "a"}]) == [{"model": "a"}]
