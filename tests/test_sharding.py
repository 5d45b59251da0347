"""`--backend ray` splits the samples over Ray tasks and reproduces the single-process
numbers exactly (per-sample randomness; results merged by sample index)."""

import json

import pandas as pd
import pytest

from robbench.cli import run
from robbench.store.records import read_csv_record
from robbench.store.runs import ATTACK_SCHEMA

ray = pytest.importorskip("ray", reason="Ray is optional: pip install -e '.[ray]'")

ARGS = ["eval", "--model", "nominal-digits", "--attacks", "pgd20", "--eps", "0.08",
        "--n-examples", "40", "--batch-size", "8", "--json"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def eval_json(capsys, tmp_path, name: str, *extra: str) -> dict:
    code = run([*ARGS, "--runs-dir", str(tmp_path / name), "--leaderboard",
                str(tmp_path / f"{name}.csv"), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_sharded_run_gives_exactly_the_single_process_numbers(local_ray, tmp_path, capsys):
    single = eval_json(capsys, tmp_path, "single")
    sharded = eval_json(capsys, tmp_path, "sharded", "--backend", "ray", "--shards", "2")
    assert sharded["attacks"]["pgd20"]["robust_acc"] == single["attacks"]["pgd20"]["robust_acc"]
    assert sharded["attacks"]["pgd20"]["n_forward"] == single["attacks"]["pgd20"]["n_forward"]
    assert 0 < single["attacks"]["pgd20"]["successes"] < 40
    rows = [read_csv_record(next((tmp_path / d).rglob("pgd20.csv")), ATTACK_SCHEMA)[0]
            for d in ("single", "sharded")]
    pd.testing.assert_frame_equal(rows[0], rows[1])
