"""The checks that flag an unreliable evaluation (METHODS §5): each one fires on a model,
attack or run record built to trigger it, and none fires on a sound model."""

from dataclasses import dataclass

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robbench.evaluation import diagnostics as dg
from robbench.attacks import ATTACKS
from robbench.attacks.pgd import PGD
from robbench.evaluation.evaluator import EvalRequest, evaluate
from robbench.store.table import read_table
from robbench.store.runs import RunStore
from tests.stores import new_store, write_attack, write_clean


@pytest.fixture(scope="module")
def batch(digits_test):
    return digits_test.x[:16], digits_test.y[:16]


class HardNearestCentroid(nn.Module):
    """Argmin over pixel-space centroids as one-hot logits: no gradient anywhere."""

    def __init__(self, centroids: torch.Tensor) -> None:
        super().__init__()
        self.centroids = centroids

    def forward(self, x):
        d = torch.cdist(x.flatten(1), self.centroids)
        return 10.0 * F.one_hot(d.argmin(dim=1), len(self.centroids)).float() + 0.0 * x.sum()


class NaNGradient(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) + torch.sqrt((x - x).flatten(1).sum(1, keepdim=True))  # d sqrt(0): inf·0


class Noisy(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) + 0.5 * torch.randn(len(x), 10)


class Softmaxed(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(dim=1)


class Constant(nn.Module):
    """Ignores its input: always class 0."""

    def forward(self, x):
        return torch.eye(10)[torch.zeros(len(x), dtype=torch.int64)] + 0.0 * x.flatten(1).sum(1, keepdim=True)


@dataclass(frozen=True)
class ForgetfulPGD(PGD):
    """Returns the adversarial points it found but reports every sample as a failure."""

    def run(self, model, x, y, **kw):
        result = super().run(model, x, y, **kw)
        result.success = torch.zeros_like(result.success)
        return result


@dataclass(frozen=True)
class DroppingPGD(PGD):
    """Reports its successes but drops the points: returns the clean inputs."""

    def run(self, model, x, y, **kw):
        result = super().run(model, x, y, **kw)
        result.x_adv = x.clone()
        return result


# --- (a) gradients ----------------------------------------------------------------------
def test_hard_argmin_classifier_has_zero_gradients_and_is_flagged(batch):
    x, y = batch
    centroids = torch.stack([x[y == c].flatten(1).mean(0) if (y == c).any() else torch.zeros(64)
                             for c in range(10)])
    zero, nan = dg.gradient_status(HardNearestCentroid(centroids), x, y)
    result = dg.check_gradients(zero, nan)
    assert zero.all() and result.reasons and "zero CE input gradient" in result.reasons[0]


def test_nan_gradients_are_flagged(nominal_digits, batch):
    zero, nan = dg.gradient_status(NaNGradient(nominal_digits), *batch)
    assert nan.all() and any("NaN" in r for r in dg.check_gradients(zero, nan).reasons)


# --- (b) randomised, (c) probabilities ---------------------------------------------------------
def test_randomised_outputs_are_flagged(nominal_digits, batch):
    assert dg.check_randomised(Noisy(nominal_digits), batch[0]).reasons


def test_probability_outputs_are_flagged(nominal_digits, batch):
    assert dg.check_probabilities(Softmaxed(nominal_digits), batch[0]).reasons


# --- (e) large ε ----------------------------------------------------------------------------
def test_model_whose_accuracy_never_falls_to_chance_is_flagged(batch):
    x, y = batch
    keep = y == 0  # the constant model's clean-correct points
    result = dg.check_large_eps(Constant(), x[keep], y[keep], "Linf", 10, torch.nonzero(keep).squeeze(1), 0)
    assert result.details["accuracy"] == 1.0 and result.reasons


# --- record checks on a fake run store --------------------------------------------------------
def fake_store(tmp_path, successes: dict[str, list[bool]], params: dict[str, dict] | None = None) -> RunStore:
    """All n samples clean-correct; attack a fools the samples marked True."""
    n = len(next(iter(successes.values())))
    store = new_store(tmp_path)
    write_clean(store, [0] * n, [0] * n)
    for attack_id, success in successes.items():
        write_attack(store, attack_id, success, params=(params or {}).get(attack_id))
    return store


@pytest.mark.parametrize("black_box", ["square", "transfer", "square-l2-restarts", "fast-square"])
def test_black_box_beating_white_box_is_flagged(tmp_path, black_box):
    store = fake_store(tmp_path, {"pgd20": [True] * 5 + [False] * 15,
                                  black_box: [True] * 8 + [False] * 12})
    result = dg.check_black_box(store, 20, ["pgd20", black_box])
    assert result.reasons and black_box in result.reasons[0] and "15.0 points" in result.reasons[0]


def test_an_attack_with_a_square_stage_does_not_count_as_white_box(tmp_path):
    # aa breaks what square breaks; as a white-box attack it would hide the 15 points
    store = fake_store(tmp_path, {"pgd20": [True] * 5 + [False] * 15,
                                  "aa": [True] * 8 + [False] * 12,
                                  "square": [True] * 8 + [False] * 12})
    result = dg.check_black_box(store, 20, ["aa", "pgd20", "square"])
    assert result.details["white_box"] == ["pgd20"]
    assert result.reasons and "15.0 points" in result.reasons[0]


def test_black_box_check_needs_both_kinds_on_record(tmp_path):
    store = fake_store(tmp_path, {"square": [True] * 4})
    result = dg.check_black_box(store, 4, ["square"])
    assert result.skipped and not result.reasons


def test_more_steps_raising_accuracy_is_flagged(tmp_path):
    base = {"norm": "Linf", "restarts": 10, "step_fraction": 0.25, "random_init": True, "loss": "ce"}
    store = fake_store(tmp_path, {"pgd20": [True] * 10 + [False] * 10, "pgd100": [True] * 6 + [False] * 14},
                       params={"pgd20": {"id": "pgd20", "steps": 20, **base},
                               "pgd100": {"id": "pgd100", "steps": 100, **base}})
    result = dg.check_more_compute(store, 20, ["pgd100", "pgd20"])
    assert result.reasons == ["pgd100 leaves 4 more samples robust than pgd20"]


def test_attacks_differing_in_more_than_compute_are_not_compared(tmp_path):
    store = fake_store(tmp_path, {"fgsm": [True] * 10, "pgd20": [False] * 10},
                       params={"fgsm": {"id": "fgsm", "steps": 1, "restarts": 1, "step_fraction": 1.0},
                               "pgd20": {"id": "pgd20", "steps": 20, "restarts": 10, "step_fraction": 0.25}})
    assert not dg.check_more_compute(store, 10, ["fgsm", "pgd20"]).reasons


# --- (g) silent success ---------------------------------------------------------------------------
def test_unreported_adversarial_points_are_mismatches(nominal_digits, batch):
    x, y = batch
    attack = ForgetfulPGD(id="forgetful", norm="Linf", restarts=1)
    result = attack.run(nominal_digits, x, y, eps=0.2, sample_ids=torch.arange(16), seed=0)
    fooled = nominal_digits(result.x_adv).argmax(1) != y
    assert fooled.any()
    assert torch.equal(dg.success_mismatch(nominal_digits, x, y, result, 0.2, "Linf"), fooled)


def test_honest_pgd_has_no_mismatch(nominal_digits, batch):
    x, y = batch
    result = PGD(id="p", norm="Linf", restarts=1).run(nominal_digits, x, y, eps=0.2,
                                                      sample_ids=torch.arange(16), seed=0)
    assert not dg.success_mismatch(nominal_digits, x, y, result, 0.2, "Linf").any()


def run_eval(tmp_path, attacks: list[str], n: int = 16) -> dict:
    return evaluate(EvalRequest(model_id="nominal-digits", attacks=attacks, n_examples=n,
                                runs_dir=tmp_path / "runs", leaderboard=tmp_path / "board.csv",
                                progress=False))


def test_attack_dropping_its_points_is_flagged_by_eval(tmp_path, monkeypatch):
    monkeypatch.setitem(ATTACKS._entries, "pgd-drop", DroppingPGD(id="pgd-drop", norm="Linf", restarts=1))
    summary = run_eval(tmp_path, ["pgd-drop"])
    flags = [f for f in summary["unreliable"] if f["check"] == "silent-success"]
    assert flags and "pgd-drop" in flags[0]["reason"]
    rows = RunStore(tmp_path / summary["run_dir"]).load_attack("pgd-drop")[0]
    flagged = int(rows["mismatch"].fillna(False).astype(bool).sum())
    assert flagged == summary["attacks"]["pgd-drop"]["successes"]
    row = read_table(tmp_path / "board.csv").set_index("model").loc["nominal-digits"]
    assert "pgd-drop" in row["unreliable"]


# --- a sound model ------------------------------------------------------------------------------------
def test_sound_model_triggers_no_check(tmp_path):
    summary = run_eval(tmp_path, ["pgd20", "square"])
    assert summary["unreliable"] == []
    record, = RunStore(tmp_path / summary["run_dir"]).load_model_checks().values()
    assert not any(check["flagged"] for check in record["checks"].values())
    assert record["checks"]["large-eps"]["accuracy"] <= 0.1 + 0.1
    assert record["checks"]["gradients"]["n"] == 16 and record["zero_grad"] == []
    assert pd.isna(read_table(tmp_path / "board.csv").set_index("model").loc["nominal-digits", "unreliable"])


def test_flags_from_the_store_equal_the_evals_own(tmp_path, monkeypatch):
    monkeypatch.setitem(ATTACKS._entries, "pgd-drop", DroppingPGD(id="pgd-drop", norm="Linf", restarts=1))
    summary = run_eval(tmp_path, ["pgd-drop"], n=8)
    store = RunStore(tmp_path / summary["run_dir"])
    assert dg.unreliable_flags(store, 8, ["pgd-drop"]) == summary["unreliable"] != []


def test_model_checks_missing_for_the_samples_are_a_flag_not_silence(tmp_path):
    summary = run_eval(tmp_path, ["pgd20"], n=8)
    store = RunStore(tmp_path / summary["run_dir"])
    assert dg.unreliable_flags(store, 8, ["pgd20"]) == [dg.NO_GRADIENT_FREE]
    assert dg.unreliable_flags(store, 7, ["pgd20"]) == [dg.MISSING_MODEL_CHECKS, dg.NO_GRADIENT_FREE]


@pytest.mark.parametrize("attacks", [["pgd100", "apgd-ce", "transfer"], ["cw", "ddn", "l2-suite", "fab-t-l2"], ["aa-rand"],
                                     ["not-registered"]])
def test_a_row_with_no_gradient_free_attack_on_record_is_flagged(attacks):
    assert dg.check_gradient_free(attacks).flags() == [dg.NO_GRADIENT_FREE]


@pytest.mark.parametrize("attacks", [["pgd20", "square"], ["cw", "square-l2"], ["cw", "square-l2-long"], ["aa"], ["aa-l2"],
                                     ["standard-cascade"]])
def test_square_alone_or_inside_autoattack_or_a_cascade_counts_as_gradient_free(attacks):
    assert dg.check_gradient_free(attacks).flags() == []


def test_an_eval_with_gradient_attacks_only_flags_its_leaderboard_row(tmp_path):
    summary = run_eval(tmp_path, ["fgsm"], n=4)
    assert dg.NO_GRADIENT_FREE in summary["unreliable"]
    row = read_table(tmp_path / "board.csv").set_index("model").loc["nominal-digits"]
    assert dg.NO_GRADIENT_FREE["reason"] in row["unreliable"]


def test_the_gate_treats_a_missing_gradient_free_attack_as_a_new_flag():
    from robbench.evaluation.gate import new_flags

    assert new_flags([dg.NO_GRADIENT_FREE], []) == [dg.NO_GRADIENT_FREE]
    assert new_flags([dg.NO_GRADIENT_FREE], [dg.NO_GRADIENT_FREE["reason"]]) == []
