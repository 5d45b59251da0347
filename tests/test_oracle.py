"""benchmarks.oracle on a few samples: independent libraries (torchattacks,
pyautoattack) break no sample that the committed leaderboard counts as robust."""

import pytest

from benchmarks.oracle import oracle, robust_models
from tests.conftest import REPO_ROOT

pytest.importorskip("torchattacks", reason="the oracle needs torchattacks: pip install -e .[test]")


def test_the_robust_digits_models_are_the_oracles_models():
    assert {"at-digits", "trades-digits"} <= set(robust_models("digits", REPO_ROOT / "leaderboards"))
    assert "nominal-digits" not in robust_models("digits", REPO_ROOT / "leaderboards")


def test_independent_libraries_break_no_sample_robbench_counts_as_robust(one_thread):
    result = oracle("mat-bibo-digits", 24, ("torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack"),
                    "cpu", None, REPO_ROOT / "runs", REPO_ROOT / "leaderboards")
    assert result["missed"] == []
    assert result["library_worst_case_acc"] >= result["robbench_worst_case_acc"]
    assert set(result["library"]) == {"torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack"}
