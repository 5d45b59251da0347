"""The results store: per-sample records on disk, one directory per (model,
checkpoint, threat model, ε, seed) — the identity of a leaderboard row.

    runs/<model>/<sha256[:12]>/<norm>-eps<ε>-seed<seed>/
        meta.json            identity, versions at creation, the attacks on record
        clean.csv            per sample: label, prediction, correct
        attacks/<id>.csv     per sample: success, norm, passes, and whether the
                             reported success was reproduced; metadata line: the
                             attack's parameters, seconds, flags, date, versions
        diagnostics.json     the model checks, per set of checked samples

Every file is a record (robbench.store.records): typed, carrying its own sha256 and the
identity of its run (checkpoint, threat model, ε, seed), validated on every read, so
a record copied in from another run is refused too. Every read-modify-write holds the run's lock (`.lock`), so any number of
processes can add samples and attacks to one run at once; every write is an atomic
rename, so a reader or a killed writer never sees half a file. A record is created
before meta.json names it, so a kill in between leaves an unnamed file, never a named
one that is missing.

meta.json carries the run's `store_version`, the format of its records (STORE_VERSION);
a run at any other format is refused on every read with one line naming the command
that upgrades it (robbench.store.migration)."""

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

from robbench.config import NORMS, SUCCESS_TOL
from robbench.errors import RobbenchError
from robbench.registry import Registry
from robbench.store.locks import locked
from robbench.store.records import (Column, RecordError, Schema, is_date, is_dict, is_int, is_int_list,
                                    is_non_negative, is_positive, is_sha256, is_str, is_str_list, one_of,
                                    check_fields, read_csv_record, read_json_record, write_csv_record,
                                    write_json_record)
from robbench.types import AttackResult

META = "meta.json"
CLEAN = "clean.csv"
ATTACKS_DIR = "attacks"
DIAGNOSTICS = "diagnostics.json"
LOCK = ".lock"
# The format of a run's records, in its meta.json: 1 (records did not name their run,
# silent-success checks in success_check.csv), 2 (records name their run; meta.json
# had no store_version), 3 (store_version in meta.json). A change to any record's
# layout or meaning bumps it and adds a step to robbench.store.migration.
STORE_VERSION = 3
VERSION_KEY = "store_version"
ANALYSES_DIR = "analyses"  # runs/<model>/<sha12>/analyses/: robbench.store.analyses


_ATTACKS: Registry[Any] | None = None  # the attack registry, once robbench.attacks is imported


def use_attack_registry(attacks: Registry[Any]) -> None:
    """Called by robbench.attacks.base with its registry, so that the store, which sits
    below the attacks, knows which attacks are minimum-norm (their records are checked
    as such: verdict_problem). Every layer that evaluates or verifies imports the attacks."""
    global _ATTACKS
    _ATTACKS = attacks


def is_minimum_norm(attack_id: str) -> bool:
    """Fails closed: without the registry a minimum-norm record would get the weaker check."""
    if _ATTACKS is None:
        raise RobbenchError("the attack registry is not loaded (import robbench.attacks): "
                            "an attack record's meaning cannot be checked without it")
    return attack_id in _ATTACKS and _ATTACKS.get(attack_id).minimum_norm


def norm_slack(eps: float) -> float:
    """How far beyond (or short of) ε a norm may lie by float rounding alone (attacks
    measure norms in float32); the same slack as the silent-success re-check."""
    return SUCCESS_TOL * max(eps, 1e-3)


def verdict_problem(frame: pd.DataFrame, eps: float, minimum_norm: bool) -> str | None:
    """What an attack record claims must make sense under its threat model, beyond its
    hash and types: a success is a point within ε (for every attack); for a
    minimum-norm attack, whose norms may lie beyond ε, a sample left robust has no
    adversarial within ε. The first row that breaks this, or None."""
    success, norm = frame["success"].to_numpy(dtype=bool), frame["norm"].to_numpy()
    slack = norm_slack(eps)
    beyond = np.flatnonzero(success & (norm > eps + slack))
    if len(beyond):
        i = beyond[0]
        return (f"sample {frame['index'].iloc[i]}: a success with norm {norm[i]:.6g}, beyond "
                f"eps {eps:g} (outside the threat model)")
    within = np.flatnonzero(~success & (norm < eps - slack)) if minimum_norm else []
    if len(within):
        i = within[0]
        return (f"sample {frame['index'].iloc[i]}: counted robust, but this minimum-norm attack "
                f"found an adversarial at norm {norm[i]:.6g}, within eps {eps:g}")
    return None


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

# norm: the perturbation's size; inf only where no adversarial was found at all.
# mismatch: the reported success differs from re-classifying the returned point
# (diagnostics' silent-success check, written with the row); empty where not checked
# (samples misclassified when clean: their clean input is the adversarial).
ATTACK_SCHEMA = Schema("attack results", (
    Column("index", "int", minimum=0), Column("success", "bool"),
    Column("norm", "float", minimum=0, allow_inf=True),
    Column("n_forward", "int", minimum=0), Column("n_backward", "int", minimum=0),
    Column("mismatch", "bool", allow_empty=True),
), key=("index",), rules=(_inf_norm_only_on_failure,))

META_FIELDS = {
    "model": is_str, "dataset": is_str, "defense": is_str, "architecture": is_str,
    "threat_model": one_of(*NORMS), "eps": is_positive, "protocol_eps": is_positive,
    "seed": is_int, "checkpoint_sha256": is_sha256, "checkpoint_source": one_of("zoo", "file", "state_dict"),
    "reference": lambda v: isinstance(v, str), "created": is_date, "versions": is_dict,
    "attacks": is_str_list, VERSION_KEY: lambda v: v == STORE_VERSION,
}
IDENTITY = ("model", "dataset", "threat_model", "eps", "seed", "checkpoint_sha256")
RUN_KEYS = ("checkpoint_sha256", "threat_model", "eps", "seed")  # what every record names
ATTACK_META_FIELDS = {"params": is_dict, "seconds": is_non_negative, "flags": is_str_list,
                      "date": lambda v: v is None or is_date(v),
                      "versions": lambda v: isinstance(v, list) and all(map(is_dict, v))}


def _is_model_check(v: Any) -> bool:
    return (isinstance(v, dict) and is_dict(v.get("checks")) and is_int_list(v.get("zero_grad"))
            and is_int_list(v.get("nan_grad")) and isinstance(v.get("flags"), list)
            and all(isinstance(f, dict) and is_str(f.get("check")) and is_str(f.get("reason"))
                    for f in v["flags"]))


DIAGNOSTICS_FIELDS = {"model_checks": lambda v: is_dict(v) and all(map(_is_model_check, v.values()))}


class StoreVersionError(RecordError):
    """A run's records are in another format than this robbench reads."""


def migration_command(runs_dir: Path) -> str:
    """The command that upgrades the store at `runs_dir` (robbench.cli.migrate)."""
    return f"robbench migrate --runs-dir {runs_dir}"


def runs_dir_of(root: Path) -> Path:
    """The store a run dir (<runs>/<model>/<sha12>/<run>) belongs to."""
    parents = Path(root).parents
    return parents[2] if len(parents) > 2 else Path(".")


def version_problem(path: Path, version: Any) -> str | None:
    """Why a meta.json whose store_version is `version` (None: absent) cannot be read by
    this robbench, in one line naming the remedy; None if it is STORE_VERSION."""
    if version == STORE_VERSION:
        return None
    if version is None or (is_int(version) and version < STORE_VERSION):
        found = "format 2 or older (no store_version)" if version is None else f"format {version}"
        return (f"{path}: the run's records are in store {found}, this robbench reads format "
                f"{STORE_VERSION}; upgrade the store with `{migration_command(runs_dir_of(Path(path).parent))}`")
    if is_int(version):
        return (f"{path}: store format {version}, written by a later robbench (this one reads "
                f"format {STORE_VERSION}); upgrade robbench to read it")
    return f"{path}: field {VERSION_KEY!r} has an invalid value {version!r}"


def format_eps(eps: float) -> str:
    """ε in names: 6 significant digits where that is exact, else every digit, so two
    different budgets never share a run dir."""
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
        """meta.json, validated; StoreVersionError if it is in another store format."""
        path = self.root / META
        if not path.exists():
            return None
        meta = read_json_record(path, {})
        problem = version_problem(path, meta.get(VERSION_KEY))
        if problem:
            raise StoreVersionError(problem)
        return check_fields(path, meta, META_FIELDS)

    def run_keys(self) -> dict[str, Any]:
        """What every record of this run names as its run (RUN_KEYS of meta.json)."""
        meta = self.load_meta()
        if meta is None:
            raise RecordError(f"{self.root / META}: missing; its records cannot be attributed")
        return {k: meta[k] for k in RUN_KEYS}

    def _read(self, path: Path, schema: Schema) -> tuple[pd.DataFrame, dict[str, Any]]:
        frame, meta = read_csv_record(path, schema)
        if meta.get("run") != self.run_keys():
            raise RecordError(f"{path}: a record of another run ({meta.get('run')}), not of "
                              f"{self.root}")
        return frame, meta

    def _write(self, path: Path, schema: Schema, frame: pd.DataFrame, meta: dict[str, Any]) -> None:
        write_csv_record(path, schema, frame, {**meta, "run": self.run_keys()})

    def open(self, identity: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
        """Creates meta.json for a new run; for an existing one checks that it is the
        same run (a different checkpoint or ε never shares a directory)."""
        with self.lock():
            for stray in self.root.rglob(".*.tmp"):  # left by a writer killed mid-write
                stray.unlink()
            meta = self.load_meta()
            if meta is None:
                meta = {**identity, "created": today(), "versions": versions, "attacks": [],
                        VERSION_KEY: STORE_VERSION}
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
        return self._read(path, CLEAN_SCHEMA)[0] if path.exists() else None

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
            self._write(self.root / CLEAN, CLEAN_SCHEMA, new, {})

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
        frame, meta = self._read(path, ATTACK_SCHEMA)
        for name, valid in ATTACK_META_FIELDS.items():
            if name not in meta or not valid(meta[name]):
                raise RecordError(f"{path}: metadata field {name!r} missing or invalid")
        self._check_verdicts(attack_id, frame)
        return frame, meta

    def _check_verdicts(self, attack_id: str, frame: pd.DataFrame) -> None:
        """A record's hash proves who wrote it, not that it makes sense (verdict_problem):
        checked on every read and before every write."""
        minimum_norm = is_minimum_norm(attack_id)
        problem = verdict_problem(frame, self.run_keys()["eps"], minimum_norm)
        if problem:
            raise RecordError(f"{self.attack_path(attack_id)}: {problem}")

    def start_attack(self, attack_id: str, params: dict[str, Any], replace: bool = False) -> pd.DataFrame:
        """Rows already computed with these exact parameters (empty for a new attack).
        Rows recorded with other parameters are never dropped silently: that is an error
        unless `replace` (eval's --recompute) says to start the attack over."""
        params = as_stored(params)
        with self.lock():
            found = self.load_attack(attack_id) if attack_id in self.attack_ids() else None
            if found is not None and found[1]["params"] == params:
                return found[0]
            if found is not None and len(found[0]) and not replace:
                old = found[1]["params"]
                diff = ", ".join(f"{k}: {old.get(k)!r} -> {params.get(k)!r}"
                                 for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k))
                raise RecordError(f"{self.attack_path(attack_id)}: its {len(found[0])} rows were "
                                  f"computed with other parameters ({diff}); pass --recompute "
                                  f"{attack_id} to replace them")
            empty = pd.DataFrame(columns=ATTACK_SCHEMA.names)
            self._write(self.attack_path(attack_id), ATTACK_SCHEMA, empty,
                        {"params": params, "seconds": 0.0, "flags": [], "date": None, "versions": []})
            self._name_attack(attack_id)
            return empty

    def append_attack(self, attack_id: str, params: dict[str, Any], index: torch.Tensor,
                      result: AttackResult, seconds: float, versions: dict[str, str],
                      mismatch: torch.Tensor | None = None) -> None:
        """Adds a batch's rows (and their silent-success checks) in one atomic write."""
        new = pd.DataFrame({
            "index": index.tolist(), "success": result.success.bool().tolist(),
            "norm": result.norm.double().tolist(), "n_forward": result.n_forward.tolist(),
            "n_backward": result.n_backward.tolist(),
            "mismatch": [None] * len(index) if mismatch is None else mismatch.bool().tolist(),
        })
        with self.lock():
            found = self.load_attack(attack_id)
            if found is None or found[1]["params"] != as_stored(params):
                raise RecordError(f"{self.attack_path(attack_id)}: another process restarted "
                                  f"{attack_id} with other parameters; run again")
            frame, meta = found
            frame = pd.concat([frame[~frame["index"].isin(new["index"])], new], ignore_index=True)
            self._check_verdicts(attack_id, frame)
            seen = meta["versions"] + ([versions] if versions not in meta["versions"] else [])
            meta = {**meta, "seconds": meta["seconds"] + seconds, "date": today(),
                    "flags": sorted(set(meta["flags"]) | set(result.flags)), "versions": seen}
            self._write(self.attack_path(attack_id), ATTACK_SCHEMA, frame, meta)

    def _name_attack(self, attack_id: str) -> None:
        meta = self.load_meta()
        if meta is None:
            raise RecordError(f"{self.root / META}: missing; open the run first")
        if attack_id not in meta["attacks"]:
            write_json_record(self.root / META, {**meta, "attacks": sorted([*meta["attacks"], attack_id])})

    # --- model checks (diagnostics, once per set of checked samples) ---------------
    def load_model_checks(self) -> dict[str, Any]:
        path = self.root / DIAGNOSTICS
        if not path.exists():
            return {}
        record = read_json_record(path, {**DIAGNOSTICS_FIELDS, "run": is_dict})
        if record["run"] != self.run_keys():
            raise RecordError(f"{path}: a record of another run ({record['run']}), not of {self.root}")
        return record["model_checks"]

    def save_model_checks(self, key: str, record: dict[str, Any]) -> None:
        with self.lock():
            checks = {**self.load_model_checks(), key: record}
            write_json_record(self.root / DIAGNOSTICS, {"model_checks": checks,
                                                        "run": self.run_keys()})

    # --- size ----------------------------------------------------------------------
    def size(self) -> int:
        """The run's n, from its records alone: the largest n such that the clean
        predictions cover samples 0..n-1 and at least half as many attacks cover them as
        cover the most-attacked prefix. So a quick look at fewer samples never replaces
        a larger evaluation, and one cheap attack on a few more samples does not replace
        a full evaluation either; 0 while no attack covers any sample."""
        clean = self.load_clean()
        if clean is None:
            return 0
        n_clean = covered(clean["index"])
        coverage = [min(n_clean, covered(self.load_attack(a)[0]["index"])) for a in self.attack_ids()]
        attacks_at = {n: sum(c >= n for c in coverage) for n in set(coverage) if n > 0}
        if not attacks_at:
            return 0
        most = max(attacks_at.values())
        return max(n for n, k in attacks_at.items() if 2 * k >= most)


def run_roots(runs_root: Path) -> list[Path]:
    """Every run directory (runs/<model>/<sha12>/<norm>-eps<ε>-seed<seed>/) holding a
    file; a model's analyses/ folder beside its runs is not one."""
    return [p for p in sorted(Path(runs_root).glob("*/*/*"))
            if p.is_dir() and p.name != ANALYSES_DIR and has_files(p)]


def has_files(root: Path) -> bool:
    """Whether a run dir holds any file but its lock and killed writes' temporaries."""
    return any(p.is_file() and not p.name.startswith(".") for p in Path(root).rglob("*"))


def as_stored(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as a record holds them (tuples come back as lists)."""
    return json.loads(json.dumps(params))
