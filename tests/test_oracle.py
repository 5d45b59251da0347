"""benchmarks.oracle on a few samples: independent libraries break no sample that the
committed leaderboard counts as robust, in either threat model, and a library's point
counts only after robbench's own re-check."""

import pytest
import torch
from torch import nn

from benchmarks import oracle as oracle_module
from benchmarks.oracle import broken, oracle, robust_models
from tests.conftest import REPO_ROOT

pytest.importorskip("torchattacks", reason="the oracle needs torchattacks: pip install -e .[test]")


def test_the_robust_digits_models_are_the_oracles_models():
    assert {"at-digits", "trades-digits"} <= set(robust_models("digits", REPO_ROOT / "leaderboards"))
    assert "nominal-digits" not in robust_models("digits", REPO_ROOT / "leaderboards")


def test_independent_libraries_break_no_linf_sample_robbench_counts_as_robust(one_thread):
    result = oracle("mat-bibo-digits", 24, ("torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack"),
                    "cpu", None, REPO_ROOT / "runs", REPO_ROOT / "leaderboards")
    assert set(result["library"]) == {"torchattacks-apgd-dlr", "torchattacks-pgd", "pyautoattack"}
    assert result["missed"] == 0 and result["missed_samples"] == []


def test_independent_l2_sources_break_no_sample_robbench_counts_as_robust(one_thread, monkeypatch):
    """The L2 sources (AutoAttack's gradient, minimum-norm and Square stages; FMN), FMN
    with a small budget, on the samples the row counts robust: the committed row's worst
    case holds against each, and no sample the row breaks is attacked again."""
    monkeypatch.setattr(oracle_module, "FMN_STEPS", 50)
    result = oracle("mat-digits", 24, oracle_module.LIBRARY_ATTACKS["L2"], "cpu", None,
                    REPO_ROOT / "runs", REPO_ROOT / "leaderboards", "L2", robust_only=True)
    assert set(result["library"]) == {"pyautoattack", "foolbox-fmn"}
    assert result["norm"] == "L2" and result["missed"] == 0
    assert result["library_worst"] == result["robbench_worst"] > 0


class Constant(nn.Module):
    """Predicts class 1 for every input."""

    def forward(self, x):
        return torch.tensor([[0.0, 1.0]]).repeat(len(x), 1)


@pytest.mark.parametrize("norm,eps", [("Linf", 0.1), ("L2", 1.0)])
def test_a_library_point_counts_only_inside_the_box_and_the_ball_and_misclassified(norm, eps):
    x = torch.full((4, 1, 2, 2), 0.5)
    x[2] = 0.98
    y = torch.tensor([0, 0, 0, 1])
    step = eps / 2 if norm == "Linf" else eps / 4  # an L2 norm of 2·step = eps/2 over 4 pixels
    x_adv = x.clone()
    x_adv[0] += step          # inside, misclassified (class 1 ≠ 0): broken
    x_adv[1] += 3 * step      # outside the ball (1.5 ε)
    x_adv[2] += step          # inside the ball, outside [0, 1]
    x_adv[3] += step          # inside, but classified correctly
    assert broken(Constant(), x, x_adv, y, eps, norm).tolist() == [True, False, False, False]
