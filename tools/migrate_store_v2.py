"""One-off: store v1 -> v2. Every record now names its run (checkpoint sha256, threat
model, ε, seed) so a record copied from another run is refused; the silent-success
checks move from success_check.csv into each attack record's `mismatch` column (one
atomic write per batch, nothing separate to lose); an attack's `versions` becomes the
list of every version set that added rows. Values are carried over unchanged.

    python tools/migrate_store_v2.py runs
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from robbench.store.records import Column, Schema, read_csv_record, read_json_record, write_json_record
from robbench.store.runs import (ATTACK_SCHEMA, CLEAN_SCHEMA, DIAGNOSTICS, META, RUN_KEYS,
                              RunStore)

V1_ATTACK = Schema("attack results", ATTACK_SCHEMA.columns[:5], key=("index",))
V1_CHECKS = Schema("success checks", (Column("attack", "str"), Column("index", "int", minimum=0),
                                      Column("mismatch", "bool")), key=("attack", "index"))


def migrate(root: Path) -> str:
    store = RunStore(root)
    meta = store.load_meta()
    run = {k: meta[k] for k in RUN_KEYS}
    clean, _ = read_csv_record(root / "clean.csv", CLEAN_SCHEMA)
    store._write(root / "clean.csv", CLEAN_SCHEMA, clean, {})
    checks_path = root / "success_check.csv"
    checks = read_csv_record(checks_path, V1_CHECKS)[0] if checks_path.exists() else None
    checked = 0
    for attack_id in meta["attacks"]:
        path = store.attack_path(attack_id)
        rows, ameta = read_csv_record(path, V1_ATTACK)
        mismatch = pd.Series([None] * len(rows), dtype=object)
        if checks is not None:
            mine = checks[checks["attack"] == attack_id].set_index("index")["mismatch"]
            mismatch = rows["index"].map(lambda i: bool(mine[i]) if i in mine.index else None)
        checked += int(mismatch.notna().sum())
        rows = rows.assign(mismatch=mismatch.astype(object))
        versions = ameta["versions"]
        ameta = {**ameta, "versions": versions if isinstance(versions, list) else [versions]}
        store._write(path, ATTACK_SCHEMA, rows, ameta)
    if checks is not None:
        checks_path.unlink()
    diag = read_json_record(root / DIAGNOSTICS, {})

    write_json_record(root / DIAGNOSTICS, {"model_checks": diag["model_checks"], "run": run})
    store.load_model_checks()
    for attack_id in meta["attacks"]:
        store.load_attack(attack_id)
    return f"{root}: {len(meta['attacks'])} attacks, {checked} rows with a success check"


if __name__ == "__main__":
    for meta_path in sorted(Path(sys.argv[1]).glob(f"*/*/*/{META}")):
        print(migrate(meta_path.parent))
