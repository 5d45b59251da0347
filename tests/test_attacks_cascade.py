"""Attacks in a cascade (robbench.attacks.cascade): the worst case of running every
attack on every sample, with each attack spent only on the samples still robust."""

from dataclasses import replace

import pytest
import torch

from model_zoo.zoo import load_model
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


def test_cascade_breaks_exactly_the_samples_some_attack_breaks_on_its_own(at_digits, points):
    x, y = points
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

    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm,pgd20", "--cascade",
                "--n-examples", "12"]) == 0
    out = capsys.readouterr().out
    assert "cascade-fgsm+pgd20" in out
