"""`robbench leaderboard build`: leaderboards regenerated from runs/ and paper_results.csv."""

import math
import shutil
from pathlib import Path

import pytest

from robbench.zoo.lookup import MODELS
from robbench.cli import run
from robbench.errors import RobbenchError
from robbench.store.table import read_table
from robbench.leaderboard.builder import build
from robbench.leaderboard.papers import PAPER_AGGREGATE_NOTE, parse_eps
from robbench.store.runs import ATTACK_SCHEMA, RunStore
from tests.conftest import REPO_ROOT
from tests.stores import new_run, write_attack, write_clean

PAPER_RESULTS = REPO_ROOT / "leaderboards" / "paper_results.csv"


def fake_run(runs: Path, model_id: str, n: int, seed: int = 0, correct: int | None = None,
             fooled: int = 0, sha: str | None = None, eps: float = 0.2,
             source: str | None = None) -> Path:
    """A run dir as `robbench eval` writes it, without running anything: the first
    `correct` samples are classified correctly, fgsm fools the first `fooled` of them."""
    correct = n if correct is None else correct
    store = new_run(runs, model_id, seed=seed, sha=sha, eps=eps, source=source)
    write_clean(store, [0] * n, [int(i >= correct) for i in range(n)])
    write_attack(store, "fgsm", [i < fooled or i >= correct for i in range(n)])
    return store.root


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def board(tmp_path) -> Path:
    out = tmp_path / "leaderboards"
    out.mkdir()
    shutil.copy(PAPER_RESULTS, out / "paper_results.csv")
    return out


def test_build_twice_gives_byte_identical_files(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "nominal-digits", 20, fooled=15)
    fake_run(runs, "mmc-digits", 20, correct=18, fooled=3)
    build(out=board, runs_dir=runs)
    first = snapshot(board)
    build(out=board, runs_dir=runs)
    assert snapshot(board) == first
    assert {"digits-Linf.csv", "digits-Linf.md", "digits-Linf.svg", "cifar10-Linf.csv",
            "index.html"} <= set(first)
    assert b"<dc:date>" not in first["digits-Linf.svg"]


def test_deleted_leaderboard_csv_is_rebuilt_with_the_row_eval_wrote(workdir, capsys):
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "20"]) == 0
    csv = workdir / "leaderboards" / "digits-Linf.csv"
    written_by_eval = csv.read_bytes()
    csv.unlink()
    assert run(["leaderboard", "build", "--dataset", "digits"]) == 0
    assert csv.read_bytes() == written_by_eval
    assert (workdir / "leaderboards" / "index.html").exists()


def test_paper_rows_appear_for_cifar10_with_source_paper(tmp_path, board):
    build(out=board, runs_dir=tmp_path / "runs")
    table = read_table(board / "cifar10-Linf.csv").set_index("model")
    assert (table["source"] == "paper").all()
    row = table.loc["paper:clustr-qtrades:clustr"]
    assert row["reference"] == "ClusTR (Alfarra et al. 2021)"
    assert row["clean_acc"] == 91.03 and row["pgd20"] == 74.44 and row["pgd100"] == 74.04
    assert row["eps"] == 8 / 255  # exactly, not rounded
    assert PAPER_AGGREGATE_NOTE in row["unreliable"]
    for dataset in ("cifar100", "svhn"):
        assert (read_table(board / f"{dataset}-Linf.csv")["source"] == "paper").all()


def test_rows_of_different_papers_for_one_defense_stay_separate(tmp_path, board):
    build(out=board, runs_dir=tmp_path / "runs")
    models = set(read_table(board / "cifar10-Linf.csv")["model"])
    assert {"paper:trades:clustr", "paper:trades:mat"} <= models
    assert {"paper:nominal:clustr", "paper:nominal:mat", "paper:nominal:deep-repulsive-prototypes"} <= models


def test_paper_worst_case_is_the_min_of_its_reported_attack_accuracies(tmp_path, board):
    build(out=board, runs_dir=tmp_path / "runs")
    table = read_table(board / "cifar10-Linf.csv").set_index("model")
    assert table.loc["paper:clustr-qtrades:clustr", "worst_case_acc"] == 66.52  # adaptive-magnet
    assert table.loc["paper:at:clustering-effect", "worst_case_acc"] == 46.58  # aa
    assert table.loc["paper:mat-so:mat", "worst_case_acc"] == 1.27  # adaptive-mat, not pgd 79.92
    assert "attacks disagree" in table.loc["paper:mat-so:mat", "unreliable"]


def test_paper_budget_free_metric_becomes_its_own_column(tmp_path, board):
    build(out=board, runs_dir=tmp_path / "runs")
    row = read_table(board / "cifar10-Linf.csv").set_index("model").loc["paper:mat:mat"]
    assert row["cw_mean_l2"] == 2.457 and row["ddn_mean_l2"] == 2.75
    assert row["worst_case_acc"] == 53.65  # the norms are not accuracies


def test_paper_row_at_another_eps_goes_to_its_own_leaderboard(tmp_path, board):
    build(out=board, runs_dir=tmp_path / "runs")
    table = read_table(board / "cifar10-Linf-eps0.00784314.csv")
    assert list(table["model"]) == ["paper:clustr-qtrades:clustr"]
    assert table["pgd20"].tolist() == [81.99] and table["eps"].tolist() == [2 / 255]


def test_eps_fractions_become_floats():
    assert parse_eps("8/255") == 8 / 255 and parse_eps("0.5") == 0.5 and parse_eps("") is None
    with pytest.raises(RobbenchError, match="bad eps"):
        parse_eps("eight")


def test_rows_sorted_by_worst_case_acc(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "nominal-digits", 20, fooled=18)  # 10 %
    fake_run(runs, "mmc-digits", 20, fooled=2)  # 90 %
    fake_run(runs, "at-digits", 20, fooled=10)  # 50 %
    build(out=board, runs_dir=runs)
    digits = read_table(board / "digits-Linf.csv")
    assert list(digits["model"]) == ["mmc-digits", "at-digits", "nominal-digits"]
    worst = read_table(board / "cifar10-Linf.csv")["worst_case_acc"].tolist()
    finite = [w for w in worst if not math.isnan(w)]
    assert finite == sorted(finite, reverse=True) and worst[:len(finite)] == finite


def test_run_of_an_earlier_zoo_checkpoint_never_takes_the_zoo_id(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "mmc-digits", 20, fooled=18)
    fake_run(runs, "mmc-digits", 20, sha="0" * 64, source="zoo")  # zoo's when it was evaluated
    build(out=board, runs_dir=runs)
    table = read_table(board / "digits-Linf.csv").set_index("model")
    assert table["worst_case_acc"].to_dict() == {"mmc-digits@000000000000": 100.0, "mmc-digits": 10.0}


def test_run_of_a_user_checkpoint_gets_its_own_row_id(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "mmc-digits", 20, fooled=18)
    fake_run(runs, "mmc-digits", 20, sha="f5fbd1e3ce8a" + "0" * 52, fooled=2)
    build(out=board, runs_dir=runs)
    table = read_table(board / "digits-Linf.csv").set_index("model")
    assert table["worst_case_acc"].to_dict() == {"mmc-digits@f5fbd1e3ce8a": 90.0, "mmc-digits": 10.0}


def test_interrupted_first_attack_gives_a_row_on_the_samples_it_covered(tmp_path, board):
    runs = tmp_path / "runs"
    partial = RunStore(fake_run(runs, "mmc-digits", 20, fooled=1))
    frame, meta = partial.load_attack("fgsm")
    partial._write(partial.attack_path("fgsm"), ATTACK_SCHEMA, frame.head(5), meta)
    build(out=board, runs_dir=runs)
    row = read_table(board / "digits-Linf.csv").iloc[0]
    assert (row["model"], row["n_examples"], row["worst_case_acc"]) == ("mmc-digits", 5, 80.0)


def test_run_with_no_attack_rows_gives_no_row(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "nominal-digits", 20, fooled=18)
    empty = new_run(runs, "mmc-digits")
    write_clean(empty, [0] * 20, [0] * 20)
    empty.start_attack("fgsm", {"id": "fgsm"})
    report = build(out=board, runs_dir=runs)
    assert list(read_table(board / "digits-Linf.csv")["model"]) == ["nominal-digits"]
    assert any("no attack covers" in w for w in report.warnings)


def test_each_seed_is_its_own_row_at_its_largest_n(tmp_path, board):
    runs = tmp_path / "runs"
    look = RunStore(fake_run(runs, "nominal-digits", 30, seed=0, fooled=6))
    write_attack(look, "pgd20", [True] * 20)  # a later look at fewer samples
    fake_run(runs, "nominal-digits", 30, seed=1, fooled=9)
    build(out=board, runs_dir=runs)
    table = read_table(board / "digits-Linf.csv")
    assert sorted(zip(table["seed"], table["n_examples"], table["worst_case_acc"])) == \
        [(0, 30, 80.0), (1, 30, 70.0)]


def test_other_eps_is_its_own_leaderboard_and_plot_point(tmp_path, board):
    runs = tmp_path / "runs"
    fake_run(runs, "nominal-digits", 20, fooled=18)
    fake_run(runs, "nominal-digits", 20, fooled=4, eps=0.1)
    build(out=board, runs_dir=runs)
    assert read_table(board / "digits-Linf-eps0.1.csv")["worst_case_acc"].tolist() == [80.0]
    assert read_table(board / "digits-Linf.csv")["worst_case_acc"].tolist() == [10.0]


def test_stale_leaderboard_is_kept_unless_pruned(tmp_path, board):
    stale = board / "digits-L2.csv"
    stale.write_text("model,threat_model,eps,worst_case_acc,source\nold-model,L2,1.0,1.0,measured\n")
    report = build(out=board, runs_dir=tmp_path / "runs")
    assert report.stale == [stale] and stale.exists()
    report = build(out=board, runs_dir=tmp_path / "runs", prune=True)
    assert not stale.exists() and not (board / "digits-L2.md").exists()


def test_dataset_option_leaves_other_datasets_alone(tmp_path, board):
    hand_made = b"model,threat_model,eps,worst_case_acc,source\nhand-made,Linf,0.2,1.0,measured\n"
    (board / "cifar10-Linf.csv").write_bytes(hand_made)
    report = build(out=board, runs_dir=tmp_path / "runs", dataset="svhn")
    assert [p.name for p in report.written] == ["svhn-Linf.csv"]
    assert (board / "cifar10-Linf.csv").read_bytes() == hand_made and report.stale == []


def test_evaluate_option_evaluates_models_without_results(tmp_path, board, monkeypatch):
    monkeypatch.setattr(MODELS, "_entries", {"nominal-digits": MODELS.get("nominal-digits")})
    report = build(out=board, runs_dir=tmp_path / "runs", dataset="digits", run_evaluations=True,
                   attacks=["fgsm"], n_examples=5)
    assert report.evaluated == ["nominal-digits"]
    row = read_table(board / "digits-Linf.csv").iloc[0]
    assert row["model"] == "nominal-digits" and row["n_examples"] == 5 and not math.isnan(row["fgsm"])


def test_unknown_dataset_is_one_error_line(tmp_path, capsys):
    assert run(["leaderboard", "build", "--dataset", "cifar11", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'cifar11'" in err[0]



def test_a_build_into_another_folder_reproduces_the_committed_leaderboards(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the paper results default to leaderboards/paper_results.csv
    report = build(out=tmp_path, runs_dir=REPO_ROOT / "runs")
    assert not report.warnings
    for path in [*report.written, *report.rendered]:
        assert path.read_bytes() == (REPO_ROOT / "leaderboards" / path.name).read_bytes(), path.name
