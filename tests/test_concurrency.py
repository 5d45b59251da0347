"""Real processes writing one runs dir and one leaderboard at once, and killed at any
moment: every row is kept and no record is ever half written."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robbench.store.table import read_table
from robbench.store.locks import locked
from robbench.store.runs import RunStore
from robbench.leaderboard.verification import verify


def eval_process(tmp_path: Path, model: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "robbench", "eval", "--model", model, "--n-examples", "30",
           "--runs-dir", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "board.csv"), *args]
    return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


@pytest.mark.parametrize("trial", range(2))
def test_concurrent_evals_of_different_models_keep_every_leaderboard_row(tmp_path, trial):
    models = ["nominal-digits", "at-digits", "clustr-digits"]
    finish([eval_process(tmp_path, m, "--attacks", "fgsm") for m in models])
    assert sorted(read_table(tmp_path / "board.csv")["model"]) == sorted(models)


def test_concurrent_evals_of_one_run_keep_every_attack(tmp_path):
    # at the protocol ε nominal-digits falls within a few steps: the three processes write
    # one run dir at once, which is what is tested, without spending pgd100's full budget
    attacks = ["fgsm", "pgd20", "pgd100"]
    finish([eval_process(tmp_path, "nominal-digits", "--attacks", a) for a in attacks])
    root, = (tmp_path / "runs").glob("*/*/*")
    store = RunStore(root)
    assert store.attack_ids() == sorted(attacks) and store.size() == 30
    assert verify(tmp_path / "runs", None).problems == []
    table = read_table(tmp_path / "board.csv")
    assert len(table) == 1 and all(a in table.columns for a in attacks)


def test_sigkill_at_any_moment_leaves_no_half_record_and_the_run_resumes(tmp_path):
    # pgd20 at a small ε spends its whole budget (10 x 20 steps) on most samples: the
    # attack phase lasts a few seconds, long enough for the kills below to land in it
    args = ["--attacks", "pgd20,fgsm", "--eps", "0.05", "--batch-size", "4"]
    for delay in (1.0, 2.0, 2.6, 3.3, 4.1):  # from model loading to the attacks' batches
        proc = eval_process(tmp_path, "nominal-digits", *args)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report = verify(tmp_path / "runs", None) if (tmp_path / "runs").exists() else None
        assert report is None or report.problems == []
    finish([eval_process(tmp_path, "nominal-digits", *args)])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    finish([eval_process(fresh, "nominal-digits", *args)])
    resumed, uninterrupted = (read_table(d / "board.csv").iloc[0] for d in (tmp_path, fresh))
    for column in ("clean_acc", "pgd20", "fgsm", "worst_case_acc", "n_examples"):
        assert resumed[column] == uninterrupted[column]
    assert verify(tmp_path / "runs", None).problems == []


def test_an_upsert_waits_while_another_process_holds_the_leaderboard_lock(tmp_path):
    board = tmp_path / "board.csv"
    code = ("import sys; from pathlib import Path; from robbench.store.table import upsert_row; "
            "upsert_row(Path(sys.argv[1]), lambda: {'model': 'm', 'threat_model': 'Linf', "
            "'eps': 0.2, 'seed': 0, 'checkpoint_sha256': 'x', 'worst_case_acc': 1.0, "
            "'source': 'measured'})")
    with locked(tmp_path / ".board.csv.lock"):
        proc = subprocess.Popen([sys.executable, "-c", code, str(board)])
        time.sleep(3)
        assert proc.poll() is None and not board.exists()
    assert proc.wait(timeout=60) == 0
    assert list(read_table(board)["model"]) == ["m"]
