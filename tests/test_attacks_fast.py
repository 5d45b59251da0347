"""`fast` and `fast-l2` (robbench.attacks.fast): cascades that hold the defense's own
or a cheap loss, targeted APGD, restarts where a sample came close (CloseRestarts)
and a gradient-free stage."""

from dataclasses import replace

import pytest
import torch

from robbench.attacks import ATTACKS
from robbench.attacks.autoattack import AutoAttackRun
from robbench.attacks.base import perturbation_norm
from robbench.attacks.cascade import Cascade
from robbench.attacks.smoothed_relu import SmoothedReLUPGD
from robbench.cli import run
from robbench.zoo.lookup import load_model

EPS = 0.3


@pytest.fixture(scope="module")
def at_digits():
    return load_model("at-digits").model.eval()


@pytest.fixture(scope="module")
def points(digits_test):
    return digits_test.x[:24], digits_test.y[:24]


@pytest.mark.parametrize("attack_id,norm", [("fast", "Linf"), ("fast-l2", "L2")])
def test_fast_is_a_cascade_of_its_norm_with_a_gradient_free_stage(attack_id, norm):
    fast = ATTACKS.get(attack_id)
    assert isinstance(fast, Cascade) and fast.norm == norm
    assert {ATTACKS.get(a).norm for a in fast.attacks} == {norm}
    assert any(ATTACKS.get(a).gradient_free for a in fast.attacks)


def test_fast_l2_smooths_the_first_relu_before_any_autoattack_stage():
    # on the thresholding AT and MAT heads every exact-gradient stage stalls (benchmarks/README.md)
    stages = [ATTACKS.get(a) for a in ATTACKS.get("fast-l2").attacks]
    first_autoattack = next(i for i, s in enumerate(stages) if isinstance(s, AutoAttackRun))
    assert any(isinstance(s, SmoothedReLUPGD) for s in stages[:first_autoattack])


def test_robbench_attacks_lists_both_fast_forms(capsys):
    assert run(["attacks"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"fast", "fast-l2"} <= listed


def close_stage(closeness: float):
    return replace(ATTACKS.get("fast-close"), closeness=closeness, probe_steps=5)


def test_no_sample_close_costs_each_sample_only_the_probe(at_digits, points):
    x, y = points
    result = close_stage(float("inf")).run(at_digits, x, y, eps=EPS, sample_ids=torch.arange(len(y)), seed=0)
    assert result.n_forward.tolist() == [6] * len(y)
    assert result.n_backward.tolist() == [5] * len(y)


def test_every_sample_the_probe_leaves_gets_the_restarts_when_all_count_as_close(at_digits, points):
    x, y = points
    probe = close_stage(float("inf")).run(at_digits, x, y, eps=EPS, sample_ids=torch.arange(len(y)), seed=0)
    result = close_stage(float("-inf")).run(at_digits, x, y, eps=EPS, sample_ids=torch.arange(len(y)),
                                            seed=0)
    left = ~probe.success
    assert left.any()
    assert (result.n_forward[left] > 6).all()
    assert (result.n_forward[~left] == 6).all()


def test_a_success_of_the_restarts_is_a_point_within_eps_the_model_misclassifies(at_digits, points):
    x, y = points
    ids = torch.arange(len(y))
    probe = close_stage(float("inf")).run(at_digits, x, y, eps=EPS, sample_ids=ids, seed=0)
    result = close_stage(float("-inf")).run(at_digits, x, y, eps=EPS, sample_ids=ids, seed=0)
    by_restarts = result.success & ~probe.success
    assert by_restarts.any()
    assert (perturbation_norm(result.x_adv[by_restarts] - x[by_restarts], "Linf") <= EPS + 1e-6).all()
    with torch.no_grad():  # re-checked in another batch: only a tie within rounding may part
        logits = at_digits(result.x_adv[by_restarts])
    labels = y[by_restarts]
    true = logits.gather(1, labels[:, None]).squeeze(1)
    other = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    assert (other - true > -1e-4).all()


def test_fast_l2_runs_seven_l2_suite_stages_and_the_further_smoothed_restarts_before_square():
    stages = list(ATTACKS.get("fast-l2").attacks)
    assert stages[-3:] == ["fast-suite-l2", "fast-smoothed-relu-restarts-l2", "fast-square-l2"]
    assert ATTACKS.get("fast-suite-l2").stages == ("ddn", "ddn-margin", "fab-t", "apgd-t", "ddn-walks",
                                                   "apgd-warm", "ddn-restarts")
