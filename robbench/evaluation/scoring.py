"""Numbers from the per-sample records: accuracies, the per-sample worst case and the
leaderboard row of a run. Everything here reads the store (which validates every
record) and nothing else, so `robbench eval` and `robbench leaderboard build` give
the same row for the same records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from robbench.evaluation.diagnostics import unreliable_flags, unreliable_text
from robbench.store.runs import RunStore
from robbench.zoo.lookup import MODELS

WORST_CASE = "worst_case_acc"  # the leaderboard column, and robust_vectors' key for it


def covering_records(store: RunStore, n: int) -> Iterator[tuple[str, pd.DataFrame, dict[str, Any]]]:
    """(attack id, its rows for samples 0..n-1, its metadata) for every attack on record
    that covers all n samples; the others are left out, never mixed in."""
    for attack_id in store.attack_ids():
        frame, meta = store.load_attack(attack_id)
        frame = frame.set_index("index")
        if set(range(n)) <= set(frame.index):
            yield attack_id, frame.loc[range(n)], meta


def clean_correct(store: RunStore, n: int) -> np.ndarray:
    clean = store.load_clean().set_index("index").loc[range(n)]
    return clean["correct"].to_numpy(dtype=bool)


def robust_vectors(store: RunStore, n: int) -> dict[str, np.ndarray]:
    """Per sample 0..n-1: robust under each attack covering n, and under all of them
    ("worst case"): what paired comparisons of two attacks or two models need."""
    correct = clean_correct(store, n)
    vectors = {a: correct & ~rows["success"].to_numpy(dtype=bool)
               for a, rows, _ in covering_records(store, n)}
    worst = correct.copy()
    for robust in vectors.values():
        worst &= robust
    return {**vectors, WORST_CASE: worst}


def summarize(store: RunStore, n: int, requested: list[str]) -> dict[str, Any]:
    """Accuracies over samples 0..n-1. The worst case is per sample: robust only if
    clean-correct and no attack on record (this run's or an earlier one's, for the
    same checkpoint, ε and seed) succeeded on it — the mean of a per-sample min.
    Attacks that have not covered all n samples are left out, never mixed in."""
    correct = clean_correct(store, n)
    robust = correct.copy()
    attacks: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for attack_id, rows, meta in covering_records(store, n):
        records.append(meta)
        success = rows["success"].to_numpy(dtype=bool)
        attacks[attack_id] = {
            "robust_acc": 100.0 * float((correct & ~success).mean()),
            "successes": int((success & correct).sum()),
            **norm_statistics(rows["norm"].to_numpy()[correct]),
            "n_forward": int(rows["n_forward"].sum()), "n_backward": int(rows["n_backward"].sum()),
            "seconds": round(meta["seconds"], 2), "flags": meta["flags"],
            "from_earlier_run": attack_id not in requested,
        }
        robust &= ~success
    return {"clean_acc": 100.0 * float(correct.mean()), "attacks": attacks,
            "worst_case_acc": 100.0 * float(robust.mean()), "worst_case_over": sorted(attacks),
            "cost": cost(attacks, records, n)}


def cost(attacks: dict[str, Any], records: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """What the worst case cost, so a reader can weigh a number against its price:
    forward and backward passes per point of the row (summed over its attacks, a
    clean-misclassified point costing none), the seconds its records took and the
    devices they ran on. Seconds are those of each whole record, which may cover more
    points than n; passes are counted on exactly the n points."""
    devices = sorted({v.get("device") for r in records for v in r["versions"]} - {None})
    return {"forward_per_point": round(sum(a["n_forward"] for a in attacks.values()) / n, 2),
            "backward_per_point": round(sum(a["n_backward"] for a in attacks.values()) / n, 2),
            "seconds": round(sum(r["seconds"] for r in records), 1),
            "device": ", ".join(devices)}


def norm_statistics(norms: np.ndarray) -> dict[str, Any]:
    """Over the clean-correct samples: mean and median norm of the adversarials found
    (any size: minimum-norm attacks report norms beyond ε too) and how many samples
    got none (norm inf: e.g. foolbox C&W's all-zero failure images)."""
    found = norms[np.isfinite(norms) & (norms > 0)]
    return {"mean_norm": float(found.mean()) if len(found) else None,
            "median_norm": float(np.median(found)) if len(found) else None,
            "failures": int(np.isinf(norms).sum())}


def row_model_id(meta: dict[str, Any]) -> str:
    """The zoo id for the manifest's current checkpoint; `<id>@<sha256[:12]>` for any
    other (a user's file, or an earlier zoo checkpoint), so no other checkpoint ever
    takes the zoo model's row."""
    if meta["model"] in MODELS and MODELS.get(meta["model"]).checkpoint_sha256 == meta["checkpoint_sha256"]:
        return meta["model"]
    return f"{meta['model']}@{meta['checkpoint_sha256'][:12]}"


def run_row(store: RunStore) -> dict[str, Any] | None:
    """The leaderboard row of a run: its largest complete n (RunStore.size), every
    attack that covers it, the flags on record for them. None while no attack covers
    any sample (its "worst case" would be the clean accuracy)."""
    meta = store.load_meta()
    n = store.size()
    if meta is None or n == 0:
        return None
    summary = summarize(store, n, requested=[])
    attacks = summary["worst_case_over"]
    records = {a: store.load_attack(a)[1] for a in attacks}
    dates = sorted(r["date"] for r in records.values() if r["date"])
    row = {
        "model": row_model_id(meta), "defense": meta["defense"], "dataset": meta["dataset"],
        "threat_model": meta["threat_model"], "eps": float(meta["eps"]),
        "architecture": meta["architecture"], "clean_acc": round(summary["clean_acc"], 2),
        "worst_case_acc": round(summary["worst_case_acc"], 2), "n_examples": n,
        **summary["cost"],
        "seed": meta["seed"], "checkpoint_sha256": meta["checkpoint_sha256"],
        "robbench_version": _versions(records, meta, "robbench"),
        "torch_version": _versions(records, meta, "torch"),
        "date": dates[-1] if dates else meta["created"], "source": "measured",
        "unreliable": unreliable_text(unreliable_flags(store, n, attacks)),
        "reference": meta["reference"],
    }
    for attack_id, result in summary["attacks"].items():
        row[attack_id] = round(result["robust_acc"], 2)
    return row


def _versions(records: dict[str, dict[str, Any]], meta: dict[str, Any], package: str) -> str:
    """The package versions the row's attacks were measured with (several, comma-joined,
    if the run was extended under another version)."""
    found = {v.get(package) for r in records.values() for v in r["versions"]} - {None}
    return ", ".join(sorted(found)) if found else meta["versions"].get(package, "")
