"""An eval killed with SIGKILL resumes: only missing (attack, sample) pairs are computed
and the final numbers equal those of an uninterrupted run."""

import json
import signal
import subprocess
import sys
import time

import pandas as pd

from robbench.store.records import read_csv_record
from robbench.store.runs import ATTACK_SCHEMA

from robbench.cli import run
from tests.test_evaluate import Spy

# pgd20 at a small ε: most samples stay robust and spend its whole budget (10 x 20 steps),
# so each batch of 4 takes long enough to kill the process between batches, and the runs
# stay short (pgd100's 10 x 100 steps made this test 5x slower for nothing it checks)
ARGS = ["eval", "--model", "nominal-digits", "--attacks", "pgd20", "--eps", "0.05",
        "--n-examples", "48", "--batch-size", "4", "--json"]


def kill_after_first_batch(tmp_path) -> pd.DataFrame:
    cmd = [sys.executable, "-c", "from robbench.cli import main; main()", *ARGS,
           "--runs-dir", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "board.csv")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        found = list((tmp_path / "runs").rglob("pgd20.csv"))
        if found and len(rows(found[0])) > 0:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return rows(found[0])
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the eval finished or wrote nothing before it could be killed")


def rows(path) -> pd.DataFrame:
    """The record's rows (validated: a reader never sees half a file)."""
    return read_csv_record(path, ATTACK_SCHEMA)[0]


def run_json(capsys, *extra: str) -> dict:
    assert run([*ARGS, *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_killed_eval_resumes_with_only_the_missing_samples_and_same_numbers(tmp_path, capsys, monkeypatch):
    done = kill_after_first_batch(tmp_path)
    assert 0 < len(done) < 48 and done["index"].is_unique
    spy = Spy(monkeypatch)
    resumed = run_json(capsys, "--runs-dir", str(tmp_path / "runs"), "--leaderboard", str(tmp_path / "board.csv"))
    assert spy.ids and not set(spy.ids) & set(done["index"])
    assert len(spy.ids) == len(set(spy.ids))
    monkeypatch.undo()
    fresh = run_json(capsys, "--runs-dir", str(tmp_path / "fresh"), "--leaderboard", str(tmp_path / "b2.csv"))
    assert resumed["clean_acc"] == fresh["clean_acc"]
    assert resumed["attacks"]["pgd20"]["robust_acc"] == fresh["attacks"]["pgd20"]["robust_acc"]
    both = [rows(next((tmp_path / d).rglob("pgd20.csv")))[["index", "success", "norm"]]
            for d in ("runs", "fresh")]
    pd.testing.assert_frame_equal(both[0], both[1])
