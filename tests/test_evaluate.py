import json

import pandas as pd

from robbench.attacks.pgd import PGD
from robbench.cli import run
from robbench.store.runs import ATTACK_SCHEMA, RunStore
from robbench.evaluation.scoring import summarize
from tests.stores import new_store, write_attack, write_clean


def eval_json(capsys, *args: str) -> dict:
    code = run(["eval", "--model", "nominal-digits", "--json", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def test_json_summary_reports_robust_accuracy_far_below_clean(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "pgd20", "--n-examples", "60")
    for key in ["model", "dataset", "threat_model", "eps", "n_examples", "seed", "clean_acc",
                "attacks", "worst_case_acc", "seconds"]:
        assert key in summary
    assert summary["eps"] == 0.2 and summary["threat_model"] == "Linf"
    assert summary["clean_acc"] >= 90
    assert summary["attacks"]["pgd20"]["robust_acc"] < summary["clean_acc"] - 50


def test_per_sample_results_are_written_under_runs(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "30")
    root = workdir / summary["run_dir"]
    assert root.is_relative_to(workdir / "runs")
    store = RunStore(root)
    clean, (fgsm, _) = store.load_clean(), store.load_attack("fgsm")
    assert list(clean["index"]) == list(range(30)) and "correct" in clean
    assert list(fgsm.columns) == ["index", "success", "norm", "n_forward", "n_backward", "mismatch"]
    assert len(fgsm) == 30 and (fgsm["norm"] <= 0.2 + 1e-6).all()


def test_leaderboard_keeps_one_row_per_model_and_other_models_rows(workdir, capsys):
    board = workdir / "board.csv"
    pd.DataFrame([{"model": "other-model", "threat_model": "Linf", "eps": 0.2, "clean_acc": 50.0,
                   "worst_case_acc": 10.0, "source": "measured"}]).to_csv(board, index=False)
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20", "--leaderboard", str(board))
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "30", "--leaderboard", str(board))
    table = pd.read_csv(board)
    assert sorted(table["model"]) == ["nominal-digits", "other-model"]
    assert table.set_index("model").loc["nominal-digits", "n_examples"] == 30


def test_default_leaderboard_is_per_dataset_and_norm(workdir, capsys):
    eval_json(capsys, "--attacks", "pgd20-l2", "--n-examples", "10")
    assert (workdir / "leaderboards" / "digits-L2.csv").exists()


def test_custom_eps_never_replaces_the_protocol_row(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "10", "--eps", "0.1")
    assert summary["leaderboard"].endswith("digits-Linf-eps0.1.csv")


def test_worst_case_is_the_mean_of_a_per_sample_min_not_a_min_of_means(tmp_path):
    store = new_store(tmp_path)
    write_clean(store, [0] * 4, [0] * 4)
    write_attack(store, "a", [True, True, False, False])
    write_attack(store, "b", [False, False, True, True])
    summary = summarize(store, 4, requested=["a", "b"])
    assert summary["attacks"]["a"]["robust_acc"] == summary["attacks"]["b"]["robust_acc"] == 50.0
    assert summary["worst_case_acc"] == 0.0


def test_clean_errors_count_as_non_robust_for_every_attack(tmp_path):
    store = new_store(tmp_path)
    write_clean(store, [0, 1], [0, 0])
    write_attack(store, "a", [False, True])
    assert summarize(store, 2, requested=["a"])["worst_case_acc"] == 50.0


class Spy:
    """Records which sample ids an attack was asked to compute."""

    def __init__(self, monkeypatch):
        self.ids: list[int] = []
        original = PGD.run

        def spy(attack, model, x, y, **kw):
            self.ids += kw["sample_ids"].tolist()
            return original(attack, model, x, y, **kw)

        monkeypatch.setattr(PGD, "run", spy)


def test_a_later_run_reuses_earlier_attacks_and_merges_the_worst_case(workdir, capsys, monkeypatch):
    first = eval_json(capsys, "--attacks", "pgd20", "--n-examples", "40")
    spy = Spy(monkeypatch)
    second = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "40")
    assert second["attacks"]["pgd20"]["from_earlier_run"] is True
    assert second["attacks"]["pgd20"]["robust_acc"] == first["attacks"]["pgd20"]["robust_acc"]
    assert second["worst_case_over"] == ["fgsm", "pgd20"]
    assert second["worst_case_acc"] <= min(a["robust_acc"] for a in second["attacks"].values())
    assert spy.ids and all(i < 40 for i in spy.ids)  # only fgsm ran


def test_rerun_with_more_samples_computes_only_the_missing_ones(workdir, capsys, monkeypatch):
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    spy = Spy(monkeypatch)
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "50")
    assert spy.ids and min(spy.ids) >= 20
    assert summary["n_examples"] == 50


def recorded_with_other_params(store: RunStore) -> None:
    rows, meta = store.load_attack("fgsm")  # as if recorded by an fgsm with other parameters
    store._write(store.attack_path("fgsm"), ATTACK_SCHEMA, rows,
                 {**meta, "params": {**meta["params"], "steps": 7}})


def test_rows_of_an_attack_with_other_parameters_are_an_error_not_dropped(workdir, capsys):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    store = RunStore(workdir / summary["run_dir"])
    recorded_with_other_params(store)
    before = store.attack_path("fgsm").read_bytes()
    assert run(["eval", "--model", "nominal-digits", "--attacks", "fgsm", "--n-examples", "5"]) == 1
    err = capsys.readouterr().err
    assert "its 20 rows were computed with other parameters (steps: 7 -> 1)" in err
    assert "--recompute fgsm" in err and store.attack_path("fgsm").read_bytes() == before


def test_recompute_replaces_rows_of_an_attack_with_other_parameters(workdir, capsys, monkeypatch):
    summary = eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20")
    store = RunStore(workdir / summary["run_dir"])
    recorded_with_other_params(store)
    spy = Spy(monkeypatch)
    eval_json(capsys, "--attacks", "fgsm", "--n-examples", "20", "--recompute", "fgsm")
    assert set(spy.ids) == {i for i in range(20)} - set(
        store.load_clean().query("not correct")["index"])


def test_committed_nominal_digits_reaches_95_percent_clean_accuracy(workdir, capsys):
    assert eval_json(capsys, "--attacks", "fgsm")["clean_acc"] >= 95.0


def test_minimum_norm_statistics_skip_failures_and_count_them(tmp_path):
    store = new_store(tmp_path, norm="L2", eps=1.0)  # C&W is an L2 attack: 0.5 lies within ε
    write_clean(store, [0] * 3, [0] * 3)
    write_attack(store, "cw", [True, False, False], norm=[0.5, float("inf"), 1.5])
    stats = summarize(store, 3, requested=["cw"])["attacks"]["cw"]
    assert stats["mean_norm"] == 1.0 and stats["median_norm"] == 1.0 and stats["failures"] == 1
    assert abs(stats["robust_acc"] - 200 / 3) < 1e-9  # norm 1.5 lies beyond ε: not a success


def test_cached_rows_are_reused_for_attacks_whose_parameters_hold_tuples(tmp_path):
    store = new_store(tmp_path)
    params = {"id": "aa", "attacks": ("apgd-ce", "square")}
    write_attack(store, "aa", [True, False], params=params)
    assert len(store.start_attack("aa", params)) == 2


def test_standard_is_one_id_for_the_leaderboards_attack_set_per_threat_model():
    from robbench.evaluation.evaluator import resolve_attacks

    linf, norm = resolve_attacks(["standard"])
    assert norm == "Linf" and [a.id for a in linf] == [
        "pgd100", "apgd-ce", "apgd-dlr", "aa", "adaptive", "square", "transfer"]
    l2, norm = resolve_attacks(["standard-l2"])
    assert norm == "L2" and [a.id for a in l2] == ["cw", "ddn", "l2-suite", "square-l2",
                                                      "square-l2-long", "fab-t-l2",
                                                      "apgd-t-l2", "square-l2-long2",
                                                      "square-l2-restarts", "apgd-t-l2-restarts",
                                                      "smoothed-relu-l2"]
    assert [a.id for a in resolve_attacks(["pgd100", "standard"])[0]][:2] == ["pgd100", "apgd-ce"]
