"""Findings: the papers' claims judged from the measured leaderboards (robbench.findings)."""

import json
from pathlib import Path

import numpy as np
import pytest

from model_zoo.zoo import MODELS
from robbench.analysis.kmeans_head import nearest, per_class_head, unsupervised_head
from robbench.analysis.records import load_record, record_path, save_record
from robbench.cli import run
from robbench.findings import (CLAIMS, EXPOSED, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Finding,
                               judge_gain, judge_gap, judge_kmeans, kmeans_records)
from robbench.leaderboard_build import build
from robbench.records import RecordError
from robbench.verify import verify
from tests.conftest import REPO_ROOT
from tests.stores import new_run, write_attack, write_clean

CLAIM = {c.id: c for c in CLAIMS}


def row(worst: float, weak: float, n: int = 450, **columns: float) -> dict:
    return {"worst_case_acc": worst, "pgd20": weak, "pgd100": weak, "adaptive": weak, "aa": weak,
            "n_examples": n, "eps": 0.2, **columns}


def judged(claim_id: str, first: dict, second: dict) -> Finding:
    finding = Finding(CLAIM[claim_id], "digits", 0.2)
    judge_gain(finding, (first, second))
    return finding


def test_gain_beyond_twice_the_standard_error_is_reproduced():
    assert judged("drp-vs-nominal", row(30.0, 31.0), row(0.0, 0.0)).verdict == REPRODUCED


def test_gain_within_the_noise_is_not_reproduced():
    assert judged("drp-vs-nominal", row(1.0, 1.0), row(0.2, 0.4)).verdict == NOT_REPRODUCED


def test_a_baseline_that_is_more_robust_is_not_reproduced_and_says_so():
    finding = judged("mat-vs-at", row(40.0, 41.0), row(55.0, 58.0))
    assert finding.verdict == NOT_REPRODUCED
    assert "at is the more robust" in finding.reason


def test_gain_under_the_papers_attack_alone_is_exposed():
    finding = judged("mmc-vs-nominal", row(1.0, 70.0), row(0.2, 0.4))
    assert finding.verdict == EXPOSED
    assert "pgd100" in finding.reason


def test_gap_between_the_papers_attack_and_the_worst_case_is_reproduced():
    finding = Finding(CLAIM["mat-so-gap"], "digits", 0.2)
    judge_gap(finding, row(1.0, 60.0))
    assert finding.verdict == REPRODUCED


def test_no_gap_when_the_papers_attack_already_breaks_the_model():
    finding = Finding(CLAIM["mat-so-gap"], "digits", 0.2)
    judge_gap(finding, row(0.9, 1.1))
    assert finding.verdict == NOT_REPRODUCED
    assert "already breaks it" in finding.reason


def kmeans_record(model_acc: float, head_acc: float, n: int = 450, sha: str | None = None,
                  model: str = "nominal-digits") -> dict:
    return {"analysis": "kmeans-head", "model": model, "dataset": "digits",
            "checkpoint_sha256": sha or MODELS.get(model).checkpoint_sha256, "seed": 0,
            "n_examples": n, "params": {"clusters_per_class": 2},
            "results": {"model_acc": model_acc, "kmeans_head_acc": head_acc},
            "versions": {"torch": "2.14.1"}, "date": "2026-11-26"}


def test_kmeans_head_that_loses_most_of_the_accuracy_reproduces_the_appendix():
    finding = Finding(CLAIM["kmeans-head"], "digits", 0.2)
    judge_kmeans(finding, {"nominal-digits": kmeans_record(98.0, 30.0)})
    assert finding.verdict == REPRODUCED


def test_kmeans_head_within_a_point_does_not_reproduce_the_appendix():
    finding = Finding(CLAIM["kmeans-head"], "digits", 0.2)
    judge_kmeans(finding, {"nominal-digits": kmeans_record(98.67, 97.78)})
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
    assert 0 <= report["kmeans_head_acc"] <= 100
    assert verify(runs, None).problems == []


def test_build_writes_findings_and_a_page_section(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "leaderboards"
    for model, fooled in (("drp-digits", 0), ("nominal-digits", 10)):
        store = new_run(runs, model)
        write_clean(store, [0] * 10, [0] * 10)
        write_attack(store, "pgd20", [i < fooled for i in range(10)])
    build(out=out, runs_dir=runs, paper_results=REPO_ROOT / "leaderboards" / "paper_results.csv")
    text = (out / "findings.md").read_text()
    drp = next(line for line in text.splitlines() if line.startswith("| [drp-vs-nominal]"))
    assert REPRODUCED in drp  # 100% vs 0% on 10 samples
    magnet = next(line for line in text.splitlines() if line.startswith("| [magnet-vs-nominal]"))
    assert NOT_MEASURED in magnet
    assert "51.30 (pgd20)" in text  # the paper's figure, from paper_results.csv
    page = (out / "index.html").read_text()
    assert 'id="findings"' in page and "Deep repulsive prototypes" in page


def test_committed_findings_judge_every_claim_on_both_datasets():
    text = (REPO_ROOT / "leaderboards" / "findings.md").read_text()
    for claim in CLAIMS:
        line = next(line for line in text.splitlines() if line.startswith(f"| [{claim.id}]"))
        assert NOT_MEASURED not in line, line
