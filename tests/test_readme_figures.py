"""Every measurement the documentation quotes comes from a committed results file, and
these tests hold the two together: each builds the sentence from the file's values,
rounded as it is printed, and looks for it in benchmarks/README.md, where the
measurements live (README.md and docs/ link there and quote none). A changed figure on
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
    """benchmarks/README.md with every run of whitespace (line breaks and indents included)
    collapsed to one space, so a sentence is found however it is wrapped."""
    return re.sub(r"\s+", " ", (BENCHMARKS / "README.md").read_text())


def results(name: str):
    return json.loads((BENCHMARKS / name).read_text())


def assert_quoted(sentence: str) -> None:
    assert sentence in readme(), f"benchmarks/README.md does not say: {sentence!r}"


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
    the evaluations only), so the documentation must not quote any."""
    assert "training" not in results("results-cifar-path-cpu.json")
    section = readme().split("## The CIFAR-10 path on a CPU")[1]
    assert not re.search(r"\d+(\.\d+)? s\b", section), "a timing with no committed source"
    assert "kept no committed record of its time or test accuracy" in section


def test_the_profile_figures_are_not_quoted():
    """The profile behind "where the overhead went" (its slowdown, call counts, step
    shares and seconds) was never committed: benchmarks/README.md explains it without numbers."""
    bullet = readme().split("- `results-cpu-2core.json`")[1].split("- `results-oracle-")[0]
    passage = bullet.split("Where the overhead went")[1].split("Adversarials found")[0]
    assert "the profile was not committed, so its figures are not quoted" in passage
    numbers = re.findall(r"\d+(?:\.\d+)?", passage)
    assert numbers == ["9", "100"], f"untraced figures in the profile passage: {numbers}"


# --- benchmarks/results-cpu-2core.json (python -m benchmarks.attacks --json) ---------

NUMBER_WORDS = {4: "four", 5: "five", 8: "eight"}


def cpu_2core() -> list[dict]:
    return results("results-cpu-2core.json")


def robust_models(rows: list[dict]) -> list[dict]:
    """The models PGD leaves robust on most samples: fewer than half the (seed, sample)
    pairs fooled (the others, the "quick" ones, fall on nearly every sample)."""
    return [r for r in rows if r["found"]["robbench"] < 0.5 * r["repeats"] * r["n"]]


def slashed(values) -> str:
    return " / ".join(str(v) for v in values)


def test_the_bare_loop_and_peer_ratios_match_results_cpu_2core():
    rows = cpu_2core()
    repeats = {r["repeats"] for r in rows}
    assert len(repeats) == 1
    (repeats,) = repeats
    assert all(len(r["found_per_seed"]["robbench"]) == repeats for r in rows)
    min_seconds = {r["min_seconds"] for r in rows}
    assert min_seconds == {1.0}
    robust = robust_models(rows)
    robust_mnist_n = {r["n"] for r in robust if r["model"].endswith("-mnist-t10k")}
    assert len(robust_mnist_n) == 1
    with_aa = [r for r in rows if "aa_overhead" in r]
    assert not {r["model"] for r in with_aa} & {r["model"] for r in robust}
    limit = [r["robbench_vs_limit"] for r in rows]
    peers = [r[k] for r in robust for k in ("robbench_vs_foolbox", "robbench_vs_torchattacks")]
    assert_quoted(
        "(`python -m benchmarks.attacks --json`, one run covering all "
        f"{NUMBER_WORDS[len(rows)]} models: {repeats} interleaved repeats, "
        f"seeds 0–{repeats - 1}, medians and spreads; calls under {min_seconds.pop():g} s "
        "timed as the mean of repeated calls; robust mnist-t10k models on their first "
        f"{robust_mnist_n.pop()} points, AutoAttack on the {NUMBER_WORDS[len(with_aa)]} "
        f"quick models): PGD-100 x 10 costs {min(limit):.2f}–{max(limit):.2f}x the bare "
        "forward+backward loop on the same passes on every model ("
        + ", ".join(f"{r['model']} {r['robbench_vs_limit']:.2f}" for r in rows)
        + f") and {min(peers):.2f}–{max(peers):.2f}x foolbox and torchattacks on the "
        "robust ones.")


def test_the_same_start_adversarial_counts_match_results_cpu_2core():
    rows = cpu_2core()
    peer = []
    for r in rows:
        fb, ta = r["found_same_starts"]["foolbox"], r["found_same_starts"]["torchattacks"]
        assert fb["robbench"] == ta["robbench"] and fb["peer"] == ta["peer"]
        # "at least as many on every seed of every model", "peer_only 0 everywhere"
        assert all(ours >= theirs for ours, theirs in zip(fb["robbench"], fb["peer"]))
        assert not any(fb["peer_only"]) and not any(ta["peer_only"])
        assert sum(fb["robbench"]) == r["found"]["robbench"]
        assert r["found"]["foolbox"] == r["found"]["torchattacks"] == sum(fb["peer"])
        peer.append(sum(fb["peer"]))
    assert_quoted(
        f"robbench {slashed(r['found']['robbench'] for r in rows)} against foolbox's and "
        f"torchattacks' {slashed(peer)} on the {NUMBER_WORDS[len(rows)]} models in the "
        "order above, at least as many on every seed of every model, and no sample that "
        "a peer fooled is missed (`peer_only` 0 everywhere)")


def test_the_own_start_and_borderline_counts_match_results_cpu_2core():
    rows = cpu_2core()
    for r in rows:
        own = r["found_own_starts"]["summed"]
        assert own["foolbox"] == own["torchattacks"]
        assert r["borderline"]["found"]["foolbox"] == r["borderline"]["found"]["torchattacks"]
    differ = [r for r in rows
              if r["found_own_starts"]["summed"]["robbench"] != r["found_own_starts"]["summed"]["foolbox"]]
    # every model with borderline samples is one whose own-start counts differ
    assert [r["model"] for r in rows if r["borderline"]["samples"]] == [r["model"] for r in differ]
    (seeds,) = {r["borderline"]["seeds"] for r in differ}
    assert_quoted(
        f"robbench {slashed(r['found_own_starts']['summed']['robbench'] for r in differ)} "
        f"against {slashed(r['found_own_starts']['summed']['foolbox'] for r in differ)} on "
        + ", ".join(r["model"] for r in differ)
        + " (equal elsewhere); on the samples where outcomes differed (`borderline`: "
        + ", ".join(str(len(r["borderline"]["samples"])) for r in differ)
        + f" of them), {seeds} fresh seeds per method, own starts: robbench "
        f"{slashed(r['borderline']['found']['robbench'] for r in differ)} against "
        f"{slashed(r['borderline']['found']['foolbox'] for r in differ)}.")


def test_the_autoattack_overhead_matches_results_cpu_2core():
    with_aa = [r for r in cpu_2core() if "aa_overhead" in r]
    assert with_aa
    for r in with_aa:
        assert r["aa_found"]["robbench"] == r["aa_found"]["pyautoattack"]
    overhead = [100 * r["aa_overhead"] for r in with_aa]
    assert_quoted(
        f"AutoAttack through robbench: +{min(overhead):.1f}% to +{max(overhead):.1f}% of "
        "pyautoattack called directly, same samples found.")


# --- benchmarks/results-cascade.json (python -m benchmarks.cascade --json) -----------

def test_the_cascade_timings_match_results_cascade():
    from robbench.config import STANDARD_ATTACKS

    rows = {r["model"]: r for r in results("results-cascade.json")}
    assert set(rows) == {"at-digits", "trades-mnist-t10k", "nominal-digits"}
    for r in rows.values():
        assert tuple(r["attacks"]) == STANDARD_ATTACKS["standard"]  # "the standard L∞ set"
        assert r["device"] == "cpu"
        # "with the same worst case on every sample", "same worst case"
        assert r["samples_that_differ"] == []
        assert r["worst_case_acc"]["every_attack"] == r["worst_case_acc"]["cascade"]

    def timing(model: str, size: str) -> str:
        s = rows[model]["seconds"]
        return f"{model} ({size}) {s['every_attack']:.1f} s → {s['cascade']:.1f} s"

    at, trades, nominal = rows["at-digits"], rows["trades-mnist-t10k"], rows["nominal-digits"]
    assert_quoted(
        "`results-cascade.json`: on robust models the cascade saves little, because their "
        "robust samples must survive every attack either way: "
        f"{timing('at-digits', str(at['n']) + ' points')}, "
        f"{timing('trades-mnist-t10k', 'first ' + str(trades['n']))}, with the same worst case "
        "on every sample. On a model that falls quickly it skips most of the suite: "
        f"{timing('nominal-digits', str(nominal['n']))} "
        f"({nominal['speedup_passes']:.1f}x fewer passes), same worst case.")
    # the file's own rounded ratio agrees with its pass counts
    p = nominal["passes"]
    assert round(p["every_attack"] / p["cascade"], 2) == nominal["speedup_passes"]


def test_the_fast_table_matches_results_fast():
    from benchmarks.fast import render_table

    # the whole table, in its order (assert_quoted reads line breaks as spaces)
    assert_quoted(" ".join(render_table(results("results-fast.json")).splitlines()))


def test_the_standard_set_s_seed_to_seed_figures_match_results_standard_seed1():
    rows = results("results-standard-seed1.json")
    assert {r["seed"] for r in rows} == {1} and {r["norm"] for r in rows} == {"Linf"}

    def listed(field: str) -> str:
        found = [f"{r['model']} {i}" for r in rows for i in r[f"{field}_samples"]]
        return ", ".join(found) or "none"

    missed = sum(r["missed_by_seed"] for r in rows)
    assert_quoted(
        f"Over its {len(rows)} entries the standard set at seed 1 leaves robust {missed} of the "
        f"committed run's {sum(r['committed_breaks'] for r in rows)} breaks ({listed('missed_by_seed')}) "
        f"and breaks {sum(r['new_breaks'] for r in rows)} that it left robust ({listed('new_breaks')}).")
    fast_missed = sum(len(r["fast_missed_samples"]) for r in rows)
    assert_quoted(
        f"Of the {fast_missed} committed breaks that fast leaves robust on these entries, the standard "
        f"set at seed 1 breaks {sum(r['fast_missed_stable'] for r in rows)} ({listed('fast_missed_stable')})")
