"""The results store: per-sample records on disk, one directory per (model,
checkpoint, threat model, ε, seed) — the identity of a leaderboard row.

    runs/<model>/<sha256[:12]>/<norm>-eps<ε>-seed<seed>/
        meta.json            identity, versions at creation, the attacks on record
        clean.csv            per sample: label, prediction, correct
        attacks/<id>.csv     per sample: success, norm, passes; metadata line: the
                             attack's parameters, seconds, flags, date, versions
        success_check.csv    per attack and sample: reported success not reproduced
        diagnostics.json     the model checks, per set of checked samples

Every file is a record (robbench.records): typed, carrying its own sha256, validated
on every read. Every read-modify-write holds the run's lock (`.lock`), so any number of
processes can add samples and attacks to one run at once; every write is an atomic
rename, so a reader or a killed writer never sees half a file. A record is created
before meta.json names it, so a kill in between leaves an unnamed file, never a named
one that is missing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from robbench.attacks import AttackResult
from robbench.config import NORMS
from robbench.locks import locked
from robbench.records import (Column, RecordError, Schema, is_date, is_dict, is_int, is_non_negative,
                              is_positive, is_sha256, is_str, is_str_list, one_of, read_csv_record,
                              read_json_record, write_csv_record, write_json_record)

META = "meta.json"
CLEAN = "clean.csv"
ATTACKS_DIR = "attacks"
SUCCESS_CHECK = "success_check.csv"
DIAGNOSTICS = "diagnostics.json"
LOCK = ".lock"


def _clean_is_consistent(frame: pd.DataFrame) -> str | None:
    bad = frame[frame["correct"] != (frame["label"] == frame["pred"])]
    return None if bad.empty else f"index {bad['index'].iloc[0]}: correct disagrees with label/pred"


def _inf_norm_only_on_failure(frame: pd.DataFrame) -> str | None:
    bad = frame[np.isinf(frame["norm"].to_numpy()) & frame["success"].to_numpy()]
    return None if bad.empty else (f"index {bad['index'].iloc[0]}: a success with an infinite "
                                   f"norm")


CLEAN_SCHEMA = Schema("clean predictions", (
    Column("index", "int", minimum=0), Column("label", "int", minimum=0),
    Column("pred", "int", minimum=0), Column("correct", "bool"),
), key=("index",), rules=(_clean_is_consistent,))

# norm: the perturbation's size; inf only where no adversarial was found at all
ATTACK_SCHEMA = Schema("attack results", (
    Column("index", "int", minimum=0), Column("success", "bool"),
    Column("norm", "float", minimum=0, allow_inf=True),
    Column("n_forward", "int", minimum=0), Column("n_backward", "int", minimum=0),
), key=("index",), rules=(_inf_norm_only_on_failure,))

SUCCESS_CHECK_SCHEMA = Schema("success checks", (
    Column("attack", "str"), Column("index", "int", minimum=0), Column("mismatch", "bool"),
), key=("attack", "index"))

META_FIELDS = {
    "model": is_str, "dataset": is_str, "defense": is_str, "architecture": is_str,
    "threat_model": one_of(*NORMS), "eps": is_positive, "protocol_eps": is_positive,
    "seed": is_int, "checkpoint_sha256": is_sha256, "checkpoint_source": one_of("zoo", "file"),
    "reference": lambda v: isinstance(v, str), "created": is_date, "versions": is_dict,
    "attacks": is_str_list,
}
IDENTITY = ("model", "dataset", "threat_model", "eps", "seed", "checkpoint_sha256")
ATTACK_META_FIELDS = {"params": is_dict, "seconds": is_non_negative, "flags": is_str_list,
                      "date": lambda v: v is None or is_date(v), "versions": is_dict}
DIAGNOSTICS_FIELDS = {"model_checks": is_dict}


def format_eps(eps: float) -> str:
    """ε in names: 6 significant digits where that is exact, else every digit, so two
    different budgets never share a run dir or a file."""
    short = f"{eps:.6g}"
    return short if float(short) == eps else repr(float(eps))


def run_dir(runs_root: Path, model_id: str, sha256: str, norm: str, eps: float, seed: int) -> Path:
    return Path(runs_root) / model_id / sha256[:12] / f"{norm}-eps{format_eps(eps)}-seed{seed}"


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")


def covered(indices: pd.Series | list[int]) -> int:
    """n such that samples 0..n-1 are all present: the contiguous prefix."""
    have = np.zeros(0, dtype=bool)
    values = np.asarray(list(indices), dtype=np.int64)
    if len(values):
        have = np.zeros(int(values.max()) + 2, dtype=bool)
        have[values] = True
    missing = np.flatnonzero(~have)
    return int(missing[0]) if len(missing) else 0


@dataclass
class RunStore:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @contextmanager
    def lock(self) -> Iterator[None]:
        with locked(self.root / LOCK):
            yield

    # --- identity ------------------------------------------------------------------
    def load_meta(self) -> dict[str, Any] | None:
        path = self.root / META
        return read_json_record(path, META_FIELDS) if path.exists() else None

    def open(self, identity: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
        """Creates meta.json for a new run; for an existing one checks that it is the
        same run (a different checkpoint or ε never shares a directory)."""
        with self.lock():
            for stray in self.root.rglob(".*.tmp"):  # left by a writer killed mid-write
                stray.unlink()
            meta = self.load_meta()
            if meta is None:
                meta = {**identity, "created": today(), "versions": versions, "attacks": []}
                write_json_record(self.root / META, meta)
                return meta
            for key in IDENTITY:
                if meta[key] != identity[key]:
                    raise RecordError(f"{self.root / META}: records {key}={meta[key]!r}, "
                                      f"this run has {identity[key]!r}")
            return meta

    # --- clean predictions ---------------------------------------------------------
    def load_clean(self) -> pd.DataFrame | None:
        path = self.root / CLEAN
        return read_csv_record(path, CLEAN_SCHEMA)[0] if path.exists() else None

    def save_clean(self, index: torch.Tensor, label: torch.Tensor, pred: torch.Tensor) -> None:
        """Adds these samples' predictions; an index already on record must agree."""
        new = pd.DataFrame({"index": index.tolist(), "label": label.tolist(), "pred": pred.tolist()})
        new["correct"] = new["label"] == new["pred"]
        with self.lock():
            old = self.load_clean()
            if old is not None:
                both = old.merge(new, on="index", suffixes=("", "_new"))
                differs = both[(both["label"] != both["label_new"]) | (both["pred"] != both["pred_new"])]
                if len(differs):
                    raise RecordError(f"{self.root / CLEAN}: sample {differs['index'].iloc[0]} was "
                                      f"recorded with another label or prediction; this checkpoint "
                                      f"or dataset is not the one of the run")
                new = pd.concat([old, new[~new["index"].isin(old["index"])]], ignore_index=True)
            write_csv_record(self.root / CLEAN, CLEAN_SCHEMA, new)

    # --- attacks -------------------------------------------------------------------
    def attack_path(self, attack_id: str) -> Path:
        return self.root / ATTACKS_DIR / f"{attack_id}.csv"

    def attack_ids(self) -> list[str]:
        """The attacks meta.json names; each must have its record."""
        meta = self.load_meta()
        if meta is None:
            return []
        for attack_id in meta["attacks"]:
            if not self.attack_path(attack_id).is_file():
                raise RecordError(f"{self.attack_path(attack_id)}: missing, but "
                                  f"{self.root / META} lists attack {attack_id!r}")
        return sorted(meta["attacks"])

    def load_attack(self, attack_id: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
        """(per-sample rows, metadata: params, seconds, flags, date, versions)."""
        path = self.attack_path(attack_id)
        if not path.exists():
            return None
        frame, meta = read_csv_record(path, ATTACK_SCHEMA)
        for name, valid in ATTACK_META_FIELDS.items():
            if name not in meta or not valid(meta[name]):
                raise RecordError(f"{path}: metadata field {name!r} missing or invalid")
        return frame, meta

    def start_attack(self, attack_id: str, params: dict[str, Any]) -> pd.DataFrame:
        """Rows already computed with these exact parameters (empty when none: a new
        attack, or one whose parameters changed, starts over)."""
        params = as_stored(params)
        with self.lock():
            found = self.load_attack(attack_id) if attack_id in self.attack_ids() else None
            if found is not None and found[1]["params"] == params:
                return found[0]
            empty = pd.DataFrame(columns=ATTACK_SCHEMA.names)
            write_csv_record(self.attack_path(attack_id), ATTACK_SCHEMA, empty,
                             {"params": params, "seconds": 0.0, "flags": [], "date": None,
                              "versions": {}})
            self._name_attack(attack_id)
            return empty

    def append_attack(self, attack_id: str, params: dict[str, Any], index: torch.Tensor,
                      result: AttackResult, seconds: float, versions: dict[str, str]) -> None:
        new = pd.DataFrame({
            "index": index.tolist(), "success": result.success.bool().tolist(),
            "norm": result.norm.double().tolist(), "n_forward": result.n_forward.tolist(),
            "n_backward": result.n_backward.tolist(),
        })
        with self.lock():
            found = self.load_attack(attack_id)
            if found is None or found[1]["params"] != as_stored(params):
                raise RecordError(f"{self.attack_path(attack_id)}: another process restarted "
                                  f"{attack_id} with other parameters; run again")
            frame, meta = found
            frame = pd.concat([frame[~frame["index"].isin(new["index"])], new], ignore_index=True)
            meta = {**meta, "seconds": meta["seconds"] + seconds, "date": today(),
                    "flags": sorted(set(meta["flags"]) | set(result.flags)), "versions": versions}
            write_csv_record(self.attack_path(attack_id), ATTACK_SCHEMA, frame, meta)

    def _name_attack(self, attack_id: str) -> None:
        meta = self.load_meta()
        if meta is None:
            raise RecordError(f"{self.root / META}: missing; open the run first")
        if attack_id not in meta["attacks"]:
            write_json_record(self.root / META, {**meta, "attacks": sorted([*meta["attacks"], attack_id])})

    # --- success checks (diagnostics, per batch) -----------------------------------
    def load_success_checks(self) -> pd.DataFrame:
        path = self.root / SUCCESS_CHECK
        if not path.exists():
            return pd.DataFrame({"attack": pd.Series(dtype=object), "index": pd.Series(dtype="int64"),
                                 "mismatch": pd.Series(dtype=bool)})
        return read_csv_record(path, SUCCESS_CHECK_SCHEMA)[0]

    def append_success_checks(self, attack_id: str, index: torch.Tensor,
                              mismatch: torch.Tensor) -> None:
        new = pd.DataFrame({"attack": attack_id, "index": index.tolist(),
                            "mismatch": mismatch.bool().tolist()})
        with self.lock():
            old = self.load_success_checks()
            keep = ~((old["attack"] == attack_id) & old["index"].isin(new["index"]))
            write_csv_record(self.root / SUCCESS_CHECK, SUCCESS_CHECK_SCHEMA,
                             pd.concat([old[keep], new], ignore_index=True))

    # --- model checks (diagnostics, once per set of checked samples) ---------------
    def load_model_checks(self) -> dict[str, Any]:
        path = self.root / DIAGNOSTICS
        if not path.exists():
            return {}
        return read_json_record(path, DIAGNOSTICS_FIELDS)["model_checks"]

    def save_model_checks(self, key: str, record: dict[str, Any]) -> None:
        with self.lock():
            checks = {**self.load_model_checks(), key: record}
            write_json_record(self.root / DIAGNOSTICS, {"model_checks": checks})

    # --- size ----------------------------------------------------------------------
    def size(self) -> int:
        """The run's n, from its records alone: the most samples 0..n-1 that the clean
        predictions and at least one attack cover. A later run on fewer samples never
        lowers it."""
        clean = self.load_clean()
        if clean is None:
            return 0
        n_clean = covered(clean["index"])
        best = 0
        for attack_id in self.attack_ids():
            best = max(best, min(n_clean, covered(self.load_attack(attack_id)[0]["index"])))
        return best


def as_stored(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as a record holds them (tuples come back as lists)."""
    return json.loads(json.dumps(params))
