"""A leaderboard row is identified by (model id, checkpoint, threat model, ε, seed)
and holds the largest complete run on record; ordinary use never rewrites it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robbench.zoo.lookup import MODELS, checkpoint_meta, load_model
from robbench.store import runs as results
from robbench.zoo.checkpoints import save_checkpoint
from robbench.cli import run
from robbench.store.table import read_table
from robbench.store.runs import RunStore
from robbench.evaluation.scoring import run_row


def eval_json(capsys, *args: str) -> dict:
    code = run(["eval", "--model", "nominal-digits", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def board_row(path: Path, model: str = "nominal-digits") -> dict:
    table = read_table(path)
    rows = table[table["model"] == model]
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def test_a_quick_look_at_fewer_samples_never_replaces_the_larger_run(workdir, capsys):
    eval_json(capsys, "--attacks", "pgd20", "--n-examples", "40")
    board = workdir / "leaderboards" / "digits-Linf.csv"
    before = board.read_bytes()
    look = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "10")
    assert look["n_examples"] == 10 and look["leaderboard_n_examples"] == 40
    assert board.read_bytes() == before
    row = board_row(board)
    assert row["n_examples"] == 40 and "fgsm" not in read_table(board).columns


def test_eval_on_a_subset_says_the_leaderboard_keeps_the_larger_run(workdir, capsys):
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "30"]) == 0
    capsys.readouterr()
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "12"]) == 0
    out = capsys.readouterr().out
    assert "keeps the larger run on record (n=30)" in out and "first 12 samples only" in out


def test_a_subset_eval_leaves_the_runs_other_records_alone(workdir, capsys):
    first = eval_json(capsys, "--attacks", "pgd20", "--n-examples", "40")
    root = workdir / first["run_dir"]
    before = files(root)
    eval_json(capsys, "--attacks", "pgd20", "--n-examples", "20")
    assert files(root) == before


def test_a_command_that_computes_nothing_new_changes_nothing_on_disk(workdir, capsys, monkeypatch):
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    before = files(workdir)
    monkeypatch.setattr(results, "today", lambda: "2099-01-01")  # a later day
    again = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    assert again["attacks"]["fgsm"]["from_earlier_run"] is False
    assert files(workdir) == before


def test_a_rows_date_is_when_its_numbers_were_measured(workdir, capsys, monkeypatch):
    monkeypatch.setattr(results, "today", lambda: "2026-01-02")
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    monkeypatch.setattr(results, "today", lambda: "2026-03-04")
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    board = workdir / "leaderboards" / "digits-Linf.csv"
    assert board_row(board)["date"] == "2026-01-02"
    eval_json(capsys, "--attacks", "pgd20", "--n-examples", "20")
    assert board_row(board)["date"] == "2026-03-04"


def test_the_store_names_checkpoints_by_zoo_id_and_sha256_never_by_path(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "5")
    text = (workdir / summary["run_dir"] / "meta.json").read_text()
    meta = RunStore(workdir / summary["run_dir"]).load_meta()
    assert meta["checkpoint_source"] == "zoo" and "checkpoint" not in meta
    assert str(MODELS.get("nominal-digits").checkpoint_path) not in text and "/" not in text


def test_a_user_checkpoint_gets_its_own_row_and_leaves_the_zoo_row(workdir, capsys):
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    entry, model = MODELS.get("nominal-digits"), load_model("nominal-digits").model
    noisy = {k: v + 0.5 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    sha = save_checkpoint(noisy, checkpoint_meta(entry, model), workdir / "mine.safetensors")
    board = workdir / "leaderboards" / "digits-Linf.csv"
    zoo_row = board_row(board)
    mine = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20", "--checkpoint",
                     str(workdir / "mine.safetensors"))
    assert mine["leaderboard_model"] == f"nominal-digits@{sha[:12]}"
    assert board_row(board) == zoo_row
    assert board_row(board, f"nominal-digits@{sha[:12]}")["checkpoint_sha256"] == sha


def test_eps_is_written_exactly(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "4", "--eps", "1e-7")
    assert summary["leaderboard"].endswith("digits-Linf-eps1e-07.csv")
    text = Path(summary["leaderboard"]).read_text()
    assert ",1e-07," in text and ",0.0," not in text.split("\n")[1][:60]
    assert read_table(Path(summary["leaderboard"]))["eps"].tolist() == [1e-07]


@pytest.mark.parametrize("first, second", [(["--eps", "0.1"], ["--eps", "0.15"]),
                                           (["--seed", "0"], ["--seed", "1"])])
def test_an_explicit_leaderboard_keeps_a_row_per_eps_and_seed(workdir, capsys, first, second):
    board = workdir / "mine.csv"
    for extra in (first, second):
        eval_json(capsys, "--attacks", "fgsm", "--n-examples", "6", "--leaderboard", str(board), *extra)
    table = read_table(board)
    assert list(table["model"]) == ["nominal-digits"] * 2
    assert len({(r["eps"], r["seed"]) for r in table.to_dict("records")}) == 2


def test_a_run_of_an_earlier_zoo_checkpoint_never_takes_the_zoo_id(workdir, capsys, monkeypatch):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "10")
    store = RunStore(workdir / summary["run_dir"])
    assert run_row(store)["model"] == "nominal-digits"
    monkeypatch.setattr(MODELS.get("nominal-digits"), "checkpoint_sha256", "0" * 64)  # retrained
    assert run_row(store)["model"] == f"nominal-digits@{summary['checkpoint_sha256'][:12]}"


def test_a_budget_a_hair_off_the_protocol_gets_its_own_file(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "4", "--eps", "0.20000000000001")
    assert summary["leaderboard"].endswith("digits-Linf-eps0.20000000000001.csv")
