"""Findings: the papers' claims judged from the measured leaderboards (robbench.leaderboard.findings)."""

import json

import numpy as np
import pytest

from robbench.zoo.lookup import MODELS
from robbench.analysis.kmeans_head import nearest, per_class_head, unsupervised_head
from robbench.store.analyses import load_record, record_path, save_record
from robbench.cli import run
from robbench.config import THREAT_DEFAULTS
from robbench.leaderboard.findings import (CLAIMS, EXPOSED, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, REVERSED,
                               Figure, Finding, Measured, judge_gain, judge_gap, judge_kmeans,
                               collect_findings, kmeans_records, one_sided_p)
from robbench.evaluation.scoring import WORST_CASE
from robbench.leaderboard.builder import build
from robbench.store.records import RecordError
from robbench.leaderboard.verification import verify
from tests.conftest import REPO_ROOT
from tests.stores import new_run, write_attack, write_clean

CLAIM = {c.id: c for c in CLAIMS}


def vector(robust: int, n: int = 450, offset: int = 0) -> np.ndarray:
    """`robust` samples robust, starting at `offset` (so two vectors can overlap or not)."""
    v = np.zeros(n, dtype=bool)
    v[offset:offset + robust] = True
    return v


def measured(worst: np.ndarray, weak: np.ndarray | None = None, model: str = "m") -> Measured:
    weak = worst if weak is None else weak
    columns = {c: weak for c in ("pgd20", "pgd100", "adaptive", "aa")}
    return Measured(model, "digits, Linf eps 0.2", len(worst), {**columns, WORST_CASE: worst})


def judged(claim_id: str, first: Measured, second: Measured) -> Finding:
    finding = Finding(CLAIM[claim_id], "digits", 0.2)
    judge_gain(finding, (first, second))
    return finding


def test_mcnemar_counts_only_the_samples_where_the_two_sides_differ():
    assert one_sided_p(0, 0) == 1.0
    assert one_sided_p(6, 0) == pytest.approx(1 / 64)
    assert one_sided_p(5, 5) > 0.5


def test_a_significant_worst_case_gain_is_reproduced():
    assert judged("drp-vs-nominal", measured(vector(30)), measured(vector(0))).verdict == REPRODUCED


def test_four_samples_against_none_is_not_significant():
    """4 vs 0 of 450 passes a 2-standard-error rule but not the exact test (p = 1/16)."""
    assert judged("drp-vs-nominal", measured(vector(4)), measured(vector(0))).verdict == NOT_REPRODUCED


def test_zero_against_zero_is_not_reproduced():
    assert judged("magnet-vs-nominal", measured(vector(0)), measured(vector(0))).verdict == NOT_REPRODUCED


def test_a_significantly_more_robust_baseline_reverses_the_claim():
    finding = judged("mat-vs-at", measured(vector(40)), measured(vector(60)))
    assert finding.verdict == REVERSED


def test_a_gain_under_the_weaker_attack_alone_is_exposed():
    finding = judged("mmc-vs-nominal", measured(vector(1), weak=vector(300)), measured(vector(1)))
    assert finding.verdict == EXPOSED
    assert "pgd100" in finding.reason


def test_rows_of_different_n_are_compared_on_the_samples_both_cover():
    finding = judged("drp-vs-nominal", measured(vector(30, n=450)), measured(vector(0, n=200)))
    assert finding.verdict == REPRODUCED
    assert all(f.n == 200 for f in finding.measured)


def test_same_accuracy_on_different_samples_is_no_gain():
    finding = judged("drp-vs-nominal", measured(vector(50)), measured(vector(50, offset=100)))
    assert finding.verdict == NOT_REPRODUCED


def gap(weak: np.ndarray, strong: np.ndarray, claim: str = "mat-so-gap",
        paper: tuple[float, float] = (79.92, 1.27)) -> Finding:
    c = CLAIM[claim]
    finding = Finding(c, "digits", 0.2, [Figure(c.first.label, "pgd", paper[0], "cifar10"),
                                         Figure(c.second.label, "adaptive-mat", paper[1], "cifar10")])
    columns = {"pgd20": weak, "adaptive": strong, WORST_CASE: strong}
    judge_gap(finding, Measured("mat-so-digits", "digits", len(weak), columns))
    return finding


def test_a_gap_as_large_as_the_papers_is_reproduced():
    assert gap(vector(300), vector(10)).verdict == REPRODUCED


def test_a_real_but_much_smaller_gap_is_not_the_papers():
    finding = gap(vector(300), vector(280))
    assert finding.verdict == NOT_REPRODUCED
    assert "far smaller" in finding.reason


def test_no_gap_when_the_weaker_attack_already_breaks_everything():
    finding = gap(vector(0), vector(0))
    assert finding.verdict == NOT_REPRODUCED
    assert "already breaks every sample" in finding.reason


def kmeans_record(model_acc: float, head_acc: float, n: int = 450, sha: str | None = None,
                  model: str = "nominal-digits", lost: int = 0, gained: int = 0) -> dict:
    return {"analysis": "kmeans-head", "model": model, "dataset": "digits",
            "checkpoint_sha256": sha or MODELS.get(model).checkpoint_sha256, "seed": 0,
            "n_examples": n, "params": {"clusters_per_class": 2},
            "results": {"model_acc": model_acc, "kmeans_head_acc": head_acc,
                        "unsupervised_kmeans_acc": head_acc, "only_model_correct": lost,
                        "only_head_correct": gained},
            "versions": {"torch": "2.14.1"}, "date": "2026-11-26"}


def test_kmeans_head_that_loses_most_of_the_accuracy_reproduces_the_appendix():
    finding = Finding(CLAIM["kmeans-head"], "digits", 0.2)
    judge_kmeans(finding, {"nominal-digits": kmeans_record(98.0, 30.0, lost=306)})
    assert finding.verdict == REPRODUCED


def test_kmeans_head_within_a_point_does_not_reproduce_the_appendix():
    finding = Finding(CLAIM["kmeans-head"], "digits", 0.2)
    judge_kmeans(finding, {"nominal-digits": kmeans_record(98.67, 97.78, lost=4)})
    assert finding.verdict == NOT_REPRODUCED


def test_kmeans_head_without_a_record_is_not_measured():
    finding = Finding(CLAIM["kmeans-head"], "digits", 0.2)
    judge_kmeans(finding, {})
    assert finding.verdict == NOT_MEASURED


def test_kmeans_record_of_another_checkpoint_is_not_the_zoo_models(tmp_path):
    save_record(tmp_path, kmeans_record(98.0, 30.0, sha="0" * 64))
    assert kmeans_records(tmp_path) == {}


def test_kmeans_record_with_fewer_samples_never_replaces_a_larger_one(tmp_path):
    path, written = save_record(tmp_path, kmeans_record(98.0, 97.0, n=450))
    assert written
    _, written = save_record(tmp_path, kmeans_record(90.0, 10.0, n=50))
    assert not written
    assert load_record(path)["n_examples"] == 450


def test_edited_kmeans_record_is_refused(tmp_path):
    path, _ = save_record(tmp_path, kmeans_record(98.0, 97.0))
    path.write_text(path.read_text().replace("97.0", "21.6"))
    with pytest.raises(RecordError, match="does not match"):
        load_record(path)


def test_kmeans_record_moved_to_another_model_is_refused(tmp_path):
    path, _ = save_record(tmp_path, kmeans_record(98.0, 97.0))
    other = record_path(tmp_path, "clustr-digits", MODELS.get("clustr-digits").checkpoint_sha256,
                        "kmeans-head", 0)
    other.parent.mkdir(parents=True)
    other.write_bytes(path.read_bytes())
    with pytest.raises(RecordError, match="describes"):
        load_record(other)


def test_verify_reports_an_edited_analysis_record(tmp_path):
    path, _ = save_record(tmp_path, kmeans_record(98.0, 97.0))
    assert verify(tmp_path, None).problems == []
    path.write_text(path.read_text().replace("97.0", "21.6"))
    assert any(str(path) in p for p in verify(tmp_path, None).problems)


def blobs(centres: np.ndarray, per_class: int, spread: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    f = np.concatenate([c + spread * rng.standard_normal((per_class, centres.shape[1])) for c in centres])
    return f, np.repeat(np.arange(len(centres)), per_class)


def test_per_class_head_classifies_features_clustered_by_class():
    centres = np.eye(3) * 10
    f, y = blobs(centres, 40, 0.5)
    test_f, test_y = blobs(centres, 20, 0.5, seed=1)
    pred = nearest(test_f, *per_class_head(f, y, 2, seed=0, num_classes=3))
    assert (pred == test_y).mean() == 1.0


def test_unsupervised_clusters_take_their_members_majority_class():
    centres = np.eye(3) * 10
    f, y = blobs(centres, 40, 0.5)
    _, majority = unsupervised_head(f, y, 3, seed=0)
    assert sorted(majority) == [0, 1, 2]


def test_kmeans_head_cli_writes_a_record_that_verify_accepts(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    assert run(["analyze", "--what", "kmeans-head", "--model", "nominal-digits", "--n-examples", "60",
                "--runs-dir", str(runs), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_examples"] == 60 and report["written"]
    # nominal features cluster by class: the head keeps most of the model's accuracy (here
    # 95.0 vs 98.3, 3 samples of 60 apart; 80 leaves 9 samples of margin), and the gap is
    # the samples only one of the two classifies correctly
    assert report["kmeans_head_acc"] >= 80
    gap = (report["model_acc"] - report["kmeans_head_acc"]) * 60 / 100
    assert gap == pytest.approx(report["only_model_correct"] - report["only_head_correct"], abs=0.01)
    record = json.loads((tmp_path / report["record"]).read_text())
    assert record["results"]["kmeans_head_acc"] == report["kmeans_head_acc"]
    assert verify(runs, None).problems == []


def test_build_writes_findings_and_a_page_section(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "leaderboards"
    for model, fooled in (("drp-digits", 0), ("nominal-digits", 10)):
        store = new_run(runs, model)
        write_clean(store, [0] * 10, [0] * 10)
        write_attack(store, "pgd20", [i < fooled for i in range(10)])  # 10 vs 0: p = 1/1024
    build(out=out, runs_dir=runs, paper_results=REPO_ROOT / "leaderboards" / "paper_results.csv")
    text = (out / "findings.md").read_text()
    drp = next(line for line in text.splitlines() if line.startswith("| [drp-vs-nominal]"))
    assert REPRODUCED in drp  # 100% vs 0% on 10 samples
    magnet = next(line for line in text.splitlines() if line.startswith("| [magnet-vs-nominal]"))
    assert NOT_MEASURED in magnet
    assert "51.30 (pgd20)" in text  # the paper's figure, from paper_results.csv
    page = (out / "index.html").read_text()
    assert 'id="findings"' in page and "Deep repulsive prototypes" in page


def test_committed_findings_judge_every_claim_at_the_protocol_eps_of_both_datasets():
    board = REPO_ROOT / "leaderboards"
    found = collect_findings(board, REPO_ROOT / "runs", board / "paper_results.csv")
    protocol = {(f.claim.id, f.dataset): f.verdict for f in found
                if f.eps == THREAT_DEFAULTS[f.dataset].linf_eps}
    assert len(protocol) == 2 * len(CLAIMS)
    assert NOT_MEASURED not in protocol.values()
