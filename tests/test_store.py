"""The results store refuses damaged records: a number is never computed from a file
that is truncated, hand-edited, partly deleted or out of schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from robbench.evaluation import diagnostics as dg
from robbench.cli import run
from robbench.leaderboard.builder import build
from robbench.store.records import (HASH_PREFIX, RecordError, format_json_record, read_csv_record,
                              sha256_text, write_csv_record)
from robbench.store.runs import ATTACK_SCHEMA, CLEAN_SCHEMA, RunStore
from tests.conftest import REPO_ROOT
from tests.stores import new_run, new_store, write_attack, write_clean


@pytest.fixture
def store(tmp_path) -> RunStore:
    """A run of 6 samples (sample 5 misclassified) with one attack, fgsm."""
    store = new_run(tmp_path / "runs", "nominal-digits")
    write_clean(store, [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 0])
    write_attack(store, "fgsm", [True, False, False, True, False, True],
                 norm=[0.2, 0.0, 0.0, 0.2, 0.0, 0.0])
    return store


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def rehash(path: Path) -> None:
    """What a careless tool would do after an edit: recompute the record's hash."""
    _, body = path.read_text().split("\n", 1)
    path.write_text(f"{HASH_PREFIX}{sha256_text(body)}\n{body}")


def edit_and_rehash(path: Path, old: str, new: str) -> None:
    edit(path, old, new)
    rehash(path)


def test_a_record_holds_the_sha256_of_its_own_content(store):
    first, body = store.attack_path("fgsm").read_text().split("\n", 1)
    assert first == HASH_PREFIX + sha256_text(body)


def test_a_hand_edited_cell_is_refused_naming_the_file(store):
    path = store.attack_path("fgsm")
    edit(path, ",False,", ",F,")
    with pytest.raises(RecordError, match=f"{path}: content does not match its sha256"):
        store.load_attack("fgsm")


def test_a_non_canonical_boolean_is_refused_even_with_a_matching_hash(store):
    path = store.attack_path("fgsm")
    edit_and_rehash(path, ",False,", ",F,")
    with pytest.raises(RecordError, match=r"line \d+, column success: 'F' is not a boolean"):
        store.load_attack("fgsm")


def test_a_truncated_record_is_refused(store):
    path = store.attack_path("fgsm")
    path.write_text(path.read_text()[:-9])
    with pytest.raises(RecordError, match="does not match its sha256"):
        store.load_attack("fgsm")


def test_a_deleted_row_is_refused(store):
    path = store.attack_path("fgsm")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4] + lines[5:]))
    with pytest.raises(RecordError, match="does not match its sha256"):
        store.load_attack("fgsm")


@pytest.mark.parametrize("cell, problem", [
    ("nan", "column norm: is NaN"),
    ("-0.5", "column norm: '-0.5' is below 0"),
    ("inf", "a success with an infinite norm"),
])
def test_norms_must_be_finite_and_non_negative(store, cell, problem):
    path = store.attack_path("fgsm")
    edit_and_rehash(path, "\n0,True,0.20000000298023224,", f"\n0,True,{cell},")
    with pytest.raises(RecordError, match=problem):
        store.load_attack("fgsm")


def test_an_infinite_norm_marks_a_failure_with_no_adversarial_found(store):
    write_attack(store, "cw", [False] * 6, norm=[float("inf")] * 6)
    assert store.load_attack("cw")[0]["norm"].tolist() == [float("inf")] * 6


def test_a_duplicate_sample_index_is_refused(store):
    path = store.attack_path("fgsm")
    edit_and_rehash(path, "\n1,False,", "\n0,False,")
    with pytest.raises(RecordError, match="duplicate row for index=0"):
        store.load_attack("fgsm")


def test_negative_pass_counts_are_refused(tmp_path):
    frame = pd.DataFrame({"index": [0], "success": [True], "norm": [0.1], "n_forward": [-1],
                          "n_backward": [0], "mismatch": [False]})
    with pytest.raises(RecordError, match="n_forward"):
        write_csv_record(tmp_path / "a.csv", ATTACK_SCHEMA, frame)
    assert not (tmp_path / "a.csv").exists()


def test_clean_correct_must_agree_with_label_and_prediction(store):
    path = store.root / "clean.csv"
    edit_and_rehash(path, "5,5,0,False", "5,5,0,True")
    with pytest.raises(RecordError, match="index 5: correct disagrees"):
        read_csv_record(path, CLEAN_SCHEMA)


def test_an_edited_json_record_is_refused(store):
    path = store.root / "meta.json"
    meta = json.loads(path.read_text())
    meta["seed"] = 1
    path.write_text(json.dumps(meta))
    with pytest.raises(RecordError, match="meta.json: content does not match its record_sha256"):
        store.load_meta()


def test_emptied_flags_in_diagnostics_are_refused(store):
    store.save_model_checks("first6-correct5", {"checks": {}, "flags": [{"check": "gradients",
                            "reason": "zero CE input gradient"}], "zero_grad": [], "nan_grad": []})
    path = store.root / "diagnostics.json"
    record = json.loads(path.read_text())
    record["model_checks"]["first6-correct5"]["flags"] = []
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match="diagnostics.json"):
        store.load_model_checks()


def test_an_attack_record_deleted_whole_is_missed_not_ignored(store):
    store.attack_path("fgsm").unlink()
    with pytest.raises(RecordError, match="fgsm.csv: missing, but .*meta.json lists attack 'fgsm'"):
        store.attack_ids()


def test_a_records_metadata_line_must_be_json(store):
    path = store.attack_path("fgsm")
    edit_and_rehash(path, '# {"date"', '# {date')
    with pytest.raises(RecordError, match="line 2 is not the record's JSON metadata"):
        store.load_attack("fgsm")


def test_run_size_comes_from_the_records(store):
    write_attack(store, "pgd20", [True, True, True])  # a look at the first 3 samples only
    assert store.size() == 6


def test_a_run_dir_of_another_checkpoint_is_never_shared(store):
    with pytest.raises(RecordError, match="records checkpoint_sha256"):
        new_store(store.root, sha="1" * 64)


# --- the commands on a damaged store -----------------------------------------------------
@pytest.fixture
def committed(tmp_path) -> tuple[Path, Path]:
    """A copy of the committed digits runs and leaderboards."""
    runs, board = tmp_path / "runs", tmp_path / "leaderboards"
    for model in ("at-digits", "mmc-digits"):
        shutil.copytree(REPO_ROOT / "runs" / model, runs / model)
    board.mkdir()
    build(out=board, runs_dir=runs)
    return runs, board


def at_digits_attack(runs: Path, attack: str) -> Path:
    return next(runs.glob(f"at-digits/*/Linf-eps0.2-seed0/attacks/{attack}.csv"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_leaderboard_build_refuses_a_damaged_record_and_writes_nothing(committed, capsys):
    runs, board = committed
    before = snapshot(board)
    edit(at_digits_attack(runs, "pgd20"), ",False,", ",F,")
    code = run(["leaderboard", "build", "--runs-dir", str(runs), "--out", str(board)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: ") and "pgd20.csv: content does not match its sha256" in err[0]
    assert snapshot(board) == before


def test_eval_refuses_a_damaged_run_before_attacking(committed, capsys, monkeypatch):
    runs, board = committed
    at_digits_attack(runs, "aa").write_text("garbage\n")
    monkeypatch.chdir(runs.parent)
    code = run(["eval", "--model", "at-digits", "--attacks", "fgsm", "--runs-dir", str(runs),
                "--leaderboard", str(board / "digits-Linf.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "aa.csv: not a robbench record" in err[0]
    assert not at_digits_attack(runs, "aa").with_name("fgsm.csv").exists()


def test_build_refuses_a_run_whose_meta_json_was_deleted(committed, capsys):
    runs, board = committed
    meta = next(runs.glob("mmc-digits/*/Linf-eps0.2-seed0/meta.json"))
    meta.unlink()
    assert run(["leaderboard", "build", "--runs-dir", str(runs), "--out", str(board)]) == 1
    assert "meta.json is missing" in capsys.readouterr().err


def test_verify_passes_on_the_committed_store_and_leaderboards(capsys):
    assert run(["verify"]) == 0
    assert "no problem found" in capsys.readouterr().out


def test_verify_lists_every_damaged_record(committed, capsys):
    runs, board = committed
    edit(at_digits_attack(runs, "pgd20"), ",False,", ",F,")
    next(runs.glob("mmc-digits/*/Linf-eps0.2-seed0/diagnostics.json")).write_text("{}")
    assert run(["verify", "--runs-dir", str(runs), "--leaderboards", str(board)]) == 1
    problems = [line for line in capsys.readouterr().err.splitlines() if line.startswith("problem:")]
    assert any("pgd20.csv" in p for p in problems) and any("diagnostics.json" in p for p in problems)


def test_verify_names_a_leaderboard_cell_the_store_does_not_give(committed, capsys):
    runs, board = committed
    table = board / "digits-Linf.csv"
    text = table.read_text()
    row = next(line for line in text.splitlines() if line.startswith("at-digits,"))
    table.write_text(text.replace(row, row.replace(",58.0,", ",64.44,", 1)))
    assert run(["verify", "--runs-dir", str(runs), "--leaderboards", str(board)]) == 1
    err = capsys.readouterr().err
    assert "digits-Linf.csv: at-digits: pgd100 is 64.44, the store gives 58.0" in err


def test_verify_names_a_file_nobody_wrote(committed, capsys):
    runs, _ = committed
    stray = next(runs.glob("at-digits/*/Linf-eps0.2-seed0")) / "attacks" / "pgd7.csv"
    stray.write_text("index\n")
    assert run(["verify", "--runs-dir", str(runs), "--no-leaderboards"]) == 1
    assert "pgd7.csv: not a record meta.json names" in capsys.readouterr().err


def test_a_non_numeric_leaderboard_cell_is_an_error_before_anything_is_written(tmp_path, capsys):
    board = tmp_path / "leaderboards"
    board.mkdir()
    (board / "mnist-Linf.csv").write_text("model,threat_model,eps,clean_acc,worst_case_acc,source\n"
                                          "m,Linf,0.3,ninety,1.0,measured\n")
    code = run(["leaderboard", "build", "--runs-dir", str(tmp_path), "--out", str(board),
                "--dataset", "digits"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err == [f"error: {board / 'mnist-Linf.csv'}: row 2, column clean_acc: "
                                 f"'ninety' is not a finite number"]
    assert sorted(p.name for p in board.iterdir()) == ["mnist-Linf.csv"]


def test_json_records_are_canonical_so_a_rewrite_changes_no_byte(store):
    path = store.root / "meta.json"
    assert format_json_record(json.loads(path.read_text())) == path.read_text()


# --- records name their run ----------------------------------------------------------------
def test_a_record_copied_from_another_run_is_refused(tmp_path, store):
    other = new_run(tmp_path / "runs", "nominal-digits", seed=1)
    write_clean(other, [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 0])
    write_attack(other, "fgsm", [False] * 6)
    shutil.copy(other.attack_path("fgsm"), store.attack_path("fgsm"))
    with pytest.raises(RecordError, match="fgsm.csv: a record of another run"):
        store.load_attack("fgsm")


def test_silent_success_checks_live_in_the_attack_record(store):
    write_attack(store, "pgd20", [True] * 6, mismatch=[False, True, False, False, False, False])

    assert dg.success_mismatches(store, 6, ["pgd20", "fgsm"]) == {"pgd20": [1]}


def test_nan_in_a_json_record_is_refused_not_an_internal_error(store, capsys):
    path = store.root / "meta.json"
    edit(path, '"seed": 0', '"seed": NaN')
    with pytest.raises(RecordError, match="not valid JSON"):
        store.load_meta()
    assert run(["verify", "--runs-dir", str(store.root.parents[2]), "--no-leaderboards"]) == 1
    assert "meta.json: not valid JSON" in capsys.readouterr().err


def test_a_run_dir_holding_only_its_lock_is_not_a_damaged_run(tmp_path, capsys):
    (tmp_path / "runs" / "m" / "abc" / "Linf-eps0.2-seed0").mkdir(parents=True)
    (tmp_path / "runs" / "m" / "abc" / "Linf-eps0.2-seed0" / ".lock").write_text("")
    assert run(["verify", "--runs-dir", str(tmp_path / "runs"), "--no-leaderboards"]) == 0


def test_a_cheap_attack_on_one_more_sample_does_not_replace_a_full_evaluation(store):
    for attack in ("pgd20", "pgd100", "aa"):
        write_attack(store, attack, [True] * 6)
    write_clean(store, list(range(7)), [0, 1, 2, 3, 4, 0, 6])
    write_attack(store, "fgsm2", [False] * 7)  # one weak attack on a 7th sample
    assert store.size() == 6


def test_a_paper_value_that_is_not_finite_stops_the_build_before_writing(tmp_path, capsys):
    board = tmp_path / "leaderboards"
    board.mkdir()
    text = (REPO_ROOT / "leaderboards" / "paper_results.csv").read_text().splitlines()
    head, first = text[0], text[1].split(",")
    first[head.split(",").index("value")] = "inf"
    (board / "paper_results.csv").write_text("\n".join([head, ",".join(first), *text[2:]]) + "\n")
    assert run(["leaderboard", "build", "--runs-dir", str(tmp_path), "--out", str(board)]) == 1
    assert "is not a finite number" in capsys.readouterr().err
    assert sorted(p.name for p in board.iterdir()) == ["paper_results.csv"]
