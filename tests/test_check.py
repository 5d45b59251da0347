"""`robbench check`: a checkpoint re-evaluated as its leaderboard row was measured."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from model_zoo.zoo import MODELS, checkpoint_meta, load_model
from robbench.check import auto_tolerance
from robbench.checkpoints import save_checkpoint
from robbench.cli import run


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A directory where `robbench eval` recorded nominal-digits' row in tmp.csv."""
    folder = tmp_path_factory.mktemp("recorded")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "40",
                    "--leaderboard", "tmp.csv"]) == 0
    return folder


def check(folder: Path, *args: str) -> int:
    return run(["check", "--model", "nominal-digits", "--leaderboard", str(folder / "tmp.csv"), *args])


def test_check_passes_on_the_zoo_checkpoint(recorded, capsys):
    assert check(recorded) == 0
    out = capsys.readouterr().out
    assert "check passed: nominal-digits" in out and "fgsm" in out


def test_check_fails_on_a_degraded_checkpoint(recorded, tmp_path, capsys):
    entry = MODELS.get("nominal-digits")
    model = load_model("nominal-digits").model
    gen = torch.Generator().manual_seed(0)
    noisy = {k: v + 2.0 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    degraded = tmp_path / "degraded.safetensors"
    save_checkpoint(noisy, checkpoint_meta(entry, model), degraded)
    capsys.readouterr()
    assert check(recorded, "--checkpoint", str(degraded)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("check failed: nominal-digits: clean_acc dropped")
    assert "recorded 100.00%" in err[0] and "tolerance of 2.50 points" in err[0]


def test_check_json_reports_every_metric(recorded, capsys):
    assert check(recorded, "--json", "--tolerance", "0") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and result["tolerance"] == "0"
    assert [m["metric"] for m in result["metrics"]] == ["clean_acc", "fgsm", "worst_case_acc"]
    assert all(m["measured"] == pytest.approx(m["recorded"], abs=0.005) for m in result["metrics"])
    assert (result["n_examples"], result["seed"], result["eps"]) == (40, 0, 0.2)


def test_check_never_reuses_cached_results_or_touches_the_leaderboard(recorded, capsys):
    board = (recorded / "tmp.csv").read_bytes()
    cached = next((recorded / "runs").rglob("clean.csv"))
    original = cached.read_bytes()
    poisoned = pd.read_csv(cached).assign(pred=-1, correct=False)  # 0 % if it were reused
    poisoned.to_csv(cached, index=False)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(recorded)
            assert check(recorded) == 0
    finally:
        cached.write_bytes(original)
    assert (recorded / "tmp.csv").read_bytes() == board
    assert sorted(p.name for p in recorded.iterdir()) == ["runs", "tmp.csv"]


def test_check_without_a_row_is_one_error_line(tmp_path, capsys):
    board = tmp_path / "board.csv"
    board.write_text("model,clean_acc,worst_case_acc\nother-model,50.0,10.0\n")
    assert run(["check", "--model", "nominal-digits", "--leaderboard", str(board)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no row for model 'nominal-digits'" in err[0]


def test_check_default_leaderboard_is_dataset_linf(workdir, capsys):
    assert run(["check", "--model", "nominal-digits"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "leaderboards/digits-Linf.csv" in err[0]


@pytest.mark.parametrize("tolerance", ["-1", "loose", "nan"])
def test_bad_tolerance_is_one_error_line(recorded, capsys, tolerance):
    assert check(recorded, "--tolerance", tolerance) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--tolerance must be 'auto' or a number" in err[0]


def test_auto_tolerance_math():
    assert auto_tolerance(50.0, 100) == pytest.approx(100 * 1.645 * 0.05)  # 8.225 points
    assert auto_tolerance(90.0, 400) == pytest.approx(100 * 1.645 * math.sqrt(0.9 * 0.1 / 400))
    assert auto_tolerance(100.0, 40) == pytest.approx(2.5)  # p = 1: one sample of 40
    assert auto_tolerance(0.0, 20) == pytest.approx(5.0)  # p = 0: one sample of 20
    assert auto_tolerance(99.0, 10) == pytest.approx(10.0)  # the 100/n floor wins
