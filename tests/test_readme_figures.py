"""Every measurement the README quotes comes from a committed results file, and these
tests hold the two together: each builds the README's sentence from the file's values,
rounded as the README prints them, and looks for it in the README. A changed figure on
either side fails here. Only files are read; nothing is measured."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO_ROOT / "benchmarks"


@lru_cache(maxsize=None)
def readme() -> str:
    """The README with every run of whitespace (line breaks and indents included)
    collapsed to one space, so a sentence is found however it is wrapped."""
    return re.sub(r"\s+", " ", (REPO_ROOT / "README.md").read_text())


def results(name: str):
    return json.loads((BENCHMARKS / name).read_text())


def assert_quoted(sentence: str) -> None:
    assert sentence in readme(), f"the README does not say: {sentence!r}"


def pct(value: float) -> str:
    return f"{value:.1f}%"


def test_the_cifar_path_figures_match_results_cifar_path_cpu():
    r = results("results-cifar-path-cpu.json")
    assert r["device"] == "cpu" and r["cpu_count"] == 2
    runs = [r["cli"], r["api"], r["imported_eval"]]
    assert r["same_numbers_three_ways"] is True
    assert {run["clean_acc"] for run in runs} == {r["cli"]["clean_acc"]}
    assert {run["worst_case_acc"] for run in runs} == {r["cli"]["worst_case_acc"]}
    (attack,) = r["cli"]["robust_acc"]
    assert attack == r["attacks"] == "pgd20"
    assert {run["n_examples"] for run in runs} == {r["cli"]["n_examples"]}
    assert_quoted(
        "(`benchmarks/results-cifar-path-cpu.json`: CLI, Python API and the import-checkpoint "
        f"round trip, each timed) uses PGD-20 on {r['cli']['n_examples']} images: "
        f"clean {pct(r['cli']['clean_acc'])}, worst case {pct(r['cli']['worst_case_acc'])}, "
        "the same numbers all three ways.")


def test_the_cifar_path_training_time_and_accuracy_are_not_quoted():
    """No committed file holds the training run's seconds or accuracy (the JSON holds
    the evaluations only), so the README must not quote any."""
    assert "training" not in results("results-cifar-path-cpu.json")
    section = readme().split("### The CIFAR-10 path on a CPU")[1].split("### The results store")[0]
    assert not re.search(r"\d+(\.\d+)? s\b", section), "a timing with no committed source"
    assert "kept no committed record of its time or test accuracy" in section


def test_the_profile_figures_are_not_quoted():
    """The profile behind "where the overhead went" (its slowdown, call counts, step
    shares and seconds) was never committed: the README explains it without numbers."""
    bullet = readme().split("- `results-cpu-2core.json`")[1].split("- `results-oracle-")[0]
    passage = bullet.split("Where the overhead went")[1].split("Adversarials found")[0]
    assert "the profile was not committed, so its figures are not quoted" in passage
    numbers = re.findall(r"\d+(?:\.\d+)?", passage)
    assert numbers == ["9", "100"], f"untraced figures in the profile passage: {numbers}"
