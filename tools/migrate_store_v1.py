"""One-off: converts the results store written before records carried their own
sha256 (plain CSV/JSON, attack parameters in attacks/<id>.json, n_examples and an
absolute checkpoint path in meta.json) into the record format of robbench.store.runs.

Per run it keeps exactly the samples the published row used (meta.json's last
n_examples), so no published number changes; the mnist-t10k L-inf runs drop the
pgd20-only samples 500-1999 (never in a leaderboard; still in git history). Dates:
each attack's is the date git last committed its rows; the run's `created` the date
git first committed its meta.json.

    python tools/migrate_store_v1.py runs
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from robbench.zoo.lookup import MODELS
from robbench.evaluation.diagnostics import SUBSAMPLE
from robbench.store.records import write_csv_record, write_json_record
from robbench.store.runs import (ATTACK_SCHEMA, CLEAN_SCHEMA, DIAGNOSTICS, META, SUCCESS_CHECK,
                              SUCCESS_CHECK_SCHEMA, RunStore)

MODEL_CHECKS = ("gradients", "randomised", "probabilities", "large-eps")


def git_date(path: Path, first: bool = False) -> str:
    out = subprocess.run(["git", "log", "--format=%cs", "--", str(path)], capture_output=True,
                         text=True, check=True).stdout.split()
    if not out:
        raise SystemExit(f"{path}: not in git history")
    return out[-1] if first else out[0]


def migrate(root: Path) -> str:
    old_meta = json.loads((root / META).read_text())
    if "record_sha256" in old_meta:
        return f"{root}: already migrated"
    n = int(old_meta["n_examples"])
    clean = pd.read_csv(root / "clean.csv")
    dropped = int((clean["index"] >= n).sum())
    clean = clean[clean["index"] < n]
    assert list(clean["index"]) == list(range(n)), root
    attacks = {}
    for meta_path in sorted((root / "attacks").glob("*.json")):
        attack_id = meta_path.stem
        rows = pd.read_csv(meta_path.with_suffix(".csv"))
        rows = rows[rows["index"] < n]
        assert list(rows["index"]) == list(range(n)), (root, attack_id)
        ameta = json.loads(meta_path.read_text())
        attacks[attack_id] = (rows, {
            "params": ameta["params"], "seconds": ameta["seconds"], "flags": ameta["flags"],
            "date": git_date(meta_path.with_suffix(".csv")), "versions": old_meta["versions"]})
    checks = pd.DataFrame(columns=SUCCESS_CHECK_SCHEMA.names)
    if (root / SUCCESS_CHECK).exists():
        checks = pd.read_csv(root / SUCCESS_CHECK)
        checks = checks[checks["index"] < n]
    diag = json.loads((root / "diagnostics.json").read_text())
    assert diag["n_examples"] == n and diag["attacks"] == sorted(attacks), root
    per_sample = pd.read_csv(root / "diagnostics.csv").set_index("index")
    sub = list(range(min(n, SUBSAMPLE)))
    n_chosen = min(SUBSAMPLE, int(clean["correct"].sum()))
    model_checks = {f"first{len(sub)}-correct{n_chosen}": {
        "checks": {k: v for k, v in diag["checks"].items() if k in MODEL_CHECKS},
        "flags": [f for f in diag["unreliable"] if f["check"] in MODEL_CHECKS],
        "zero_grad": [i for i in sub if per_sample.loc[i, "zero_grad"] is True
                      or str(per_sample.loc[i, "zero_grad"]) == "True"],
        "nan_grad": [i for i in sub if str(per_sample.loc[i, "nan_grad"]) == "True"]}}

    sha = old_meta["checkpoint_sha256"]
    meta = {k: old_meta[k] for k in ("model", "dataset", "defense", "architecture", "threat_model",
                                     "eps", "protocol_eps", "seed", "checkpoint_sha256",
                                     "reference", "versions")}
    meta.update({"checkpoint_source": "zoo" if sha == MODELS.get(meta["model"]).checkpoint_sha256
                 else "file", "created": git_date(root / META, first=True),
                 "attacks": sorted(attacks)})
    for path in [root / "diagnostics.csv", *(root / "attacks").glob("*.json")]:
        path.unlink()
    write_csv_record(root / "clean.csv", CLEAN_SCHEMA, clean)
    for attack_id, (rows, ameta) in attacks.items():
        write_csv_record(root / "attacks" / f"{attack_id}.csv", ATTACK_SCHEMA, rows, ameta)
    write_csv_record(root / SUCCESS_CHECK, SUCCESS_CHECK_SCHEMA, checks)
    write_json_record(root / DIAGNOSTICS, {"model_checks": model_checks})
    write_json_record(root / META, meta)
    store = RunStore(root)
    assert store.size() == n, root
    return f"{root}: n={n}, {len(attacks)} attacks, {dropped} clean rows >= {n} dropped"


if __name__ == "__main__":
    for meta_path in sorted(Path(sys.argv[1]).glob("*/*/*/meta.json")):
        print(migrate(meta_path.parent))
