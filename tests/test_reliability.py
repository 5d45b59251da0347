"""Issue 26: nothing but a full evaluation changes a published row, and every bad input
is a one-line error that leaves no file behind. One test (or a few) per defect found by
trying to break robbench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robbench.cli import run
from robbench.leaderboard import upsert_row

EVAL = ["eval", "--model", "nominal-digits", "--attacks", "fgsm"]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (locks aside) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


# --- 1. a scratch eval never rewrites the published leaderboard ----------------------------
def test_eval_into_another_runs_dir_writes_the_leaderboard_beside_that_store(workdir, capsys):
    assert run([*EVAL, "--n-examples", "6"]) == 0
    published = files(workdir / "leaderboards")
    assert run([*EVAL, "--n-examples", "3", "--runs-dir", "scratch"]) == 0
    assert files(workdir / "leaderboards") == published
    assert (workdir / "scratch" / "leaderboards" / "digits-Linf.csv").is_file()


def test_eval_into_a_given_leaderboard_leaves_a_row_covering_more_samples(workdir, capsys):
    assert run([*EVAL, "--n-examples", "6"]) == 0
    published = files(workdir / "leaderboards")
    capsys.readouterr()
    assert run([*EVAL, "--n-examples", "3", "--runs-dir", "scratch",
                "--leaderboard", "leaderboards/digits-Linf.csv"]) == 0
    assert "left as it was: the row on record covers n=6, this run n=3" in capsys.readouterr().out
    assert files(workdir / "leaderboards") == published


def board_row(n: int, **attacks: float) -> dict:
    return {"model": "m", "threat_model": "Linf", "eps": 0.2, "seed": 0, "checkpoint_sha256": "a",
            "worst_case_acc": 50.0, "source": "measured", "n_examples": n, **attacks}


def test_an_upsert_never_replaces_a_row_with_one_lacking_an_attack_column(tmp_path):
    board = tmp_path / "b.csv"
    upsert_row(board, lambda: board_row(10, pgd20=60.0, fgsm=70.0))
    before = board.read_bytes()
    kept = upsert_row(board, lambda: board_row(10, fgsm=20.0))
    assert kept.kept_because == ("the row on record has attack column(s) pgd20, which this run "
                                 "lacks")
    assert board.read_bytes() == before


def test_an_upsert_replaces_a_row_with_one_covering_its_samples_and_attacks(tmp_path):
    board = tmp_path / "b.csv"
    upsert_row(board, lambda: board_row(10, fgsm=70.0))
    done = upsert_row(board, lambda: board_row(12, fgsm=65.0, pgd20=60.0))
    assert done.kept_because is None
    assert "65.0" in board.read_text() and "70.0" not in board.read_text()
