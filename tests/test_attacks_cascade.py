"""Attacks in a cascade (robbench.attacks.cascade): the worst case of running every
attack on every sample, with each attack spent only on the samples still robust."""

from dataclasses import replace

import pandas as pd
import pytest
import torch
from torch import nn

from robbench.zoo.lookup import load_model
from robbench.attacks import ATTACKS
from robbench.attacks.cascade import cascade_of, run_cascade
from robbench.config import STANDARD_ATTACKS
from robbench.errors import RobbenchError


@pytest.fixture(scope="module")
def at_digits():
    return load_model("at-digits").model


@pytest.fixture(scope="module")
def points(digits_test):
    return digits_test.x[:48], digits_test.y[:48]


def stages():
    return [ATTACKS.get("fgsm"), replace(ATTACKS.get("pgd20"), steps=8, restarts=2)]


def run_each(model, x, y, attack):
    return attack.run(model, x, y, eps=0.2, sample_ids=torch.arange(len(y)), seed=0)


class RowByRow(nn.Module):
    """The model called on one sample at a time: in the cascade a later attack gets only
    the survivors, a smaller batch, which a batched conv may round differently (deciding a
    boundary sample on some CPUs); row by row the arithmetic per sample is the same."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(row.unsqueeze(0)) for row in x])


def test_cascade_breaks_exactly_the_samples_some_attack_breaks_on_its_own(at_digits, points):
    x, y = points
    at_digits = RowByRow(at_digits)
    alone = torch.stack([run_each(at_digits, x, y, a).success for a in stages()]).any(dim=0)
    cascade = run_cascade(stages(), at_digits, x, y, eps=0.2, sample_ids=torch.arange(len(y)),
                          seed=0, label="cascade")
    assert 0 < int(alone.sum()) < len(y)  # a test that can tell the two apart
    assert torch.equal(cascade.success, alone)


def test_later_attacks_spend_nothing_on_samples_already_broken(at_digits, points):
    x, y = points
    first = run_each(at_digits, x, y, stages()[0])
    cascade = run_cascade(stages(), at_digits, x, y, eps=0.2, sample_ids=torch.arange(len(y)),
                          seed=0, label="cascade")
    broken = first.success
    assert torch.equal(cascade.n_backward[broken], first.n_backward[broken])
    assert (cascade.n_backward[~broken] > first.n_backward[~broken]).all()


def test_each_attack_counts_what_it_broke_in_the_flags(at_digits, points):
    x, y = points
    cascade = run_cascade(stages(), at_digits, x, y, eps=0.2, sample_ids=torch.arange(len(y)),
                          seed=0, label="cascade")
    counts = {f.split(":")[1]: int(f.split(":")[2]) for f in cascade.flags if f.startswith("cascade:")}
    assert sum(counts.values()) == int(cascade.success.sum())


def test_a_cascade_runs_the_cheapest_attack_first():
    assert cascade_of(["pgd100", "apgd-ce"]).attacks == ("apgd-ce", "pgd100")


def test_the_standard_cascade_holds_the_standard_set():
    assert sorted(ATTACKS.get("standard-cascade").attacks) == sorted(STANDARD_ATTACKS["standard"])
    assert cascade_of(["standard"]).id == "standard-cascade"


def test_minimum_norm_attacks_are_refused_in_a_cascade():
    with pytest.raises(RobbenchError, match="minimal norm"):
        cascade_of(["cw", "pgd20-l2"])


def test_eval_cascade_writes_one_column_with_the_worst_case(workdir, capsys):
    from robbench.cli import run

    def board(*flags: str) -> pd.Series:
        name = "cascade" if flags else "each"
        assert run(["eval", "--model", "at-digits", "--attacks", "fgsm,pgd20", "--n-examples", "24",
                    "--runs-dir", f"runs-{name}", "--leaderboard", f"{name}.csv", *flags]) == 0
        return pd.read_csv(workdir / f"{name}.csv").iloc[0]

    cascade, each = board("--cascade"), board()
    assert "cascade-fgsm+pgd20" in cascade and not {"fgsm", "pgd20"} & set(cascade.index)
    assert cascade["cascade-fgsm+pgd20"] == cascade["worst_case_acc"]
    # the worst case of both attacks run on every sample (here 58.33%, fgsm 79.17%): in
    # the cascade pgd20 gets only fgsm's survivors, a smaller batch whose arithmetic may
    # round differently and decide one boundary sample (100/24 points)
    assert each["worst_case_acc"] < each["fgsm"]
    assert abs(cascade["worst_case_acc"] - each["worst_case_acc"]) <= 100 / 24 + 0.01
