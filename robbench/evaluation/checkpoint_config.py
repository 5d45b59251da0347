"""The gate's check (d): whether a checkpoint's configuration, read from its header
before anything is attacked, is the manifest's (robbench.evaluation.gate)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robbench.defenses import DEFENSES
from robbench.defenses.softmax import ATCModel, TradesModel
from robbench.errors import RobbenchError
from robbench.zoo.checkpoints import load_checkpoint
from robbench.zoo.lookup import ModelEntry, build_model

# --- (d) configuration ---------------------------------------------------------------------
# Defense parameters that training sets when the manifest leaves them unset, and that only
# the training loss reads (no decision rule, no attack): TRADES' training ε (the recipe's
# ε after its warm-up) and AT+C's class groups (derived from a robust model's linearised
# class correlations). A checkpoint may carry any value unless the manifest's
# defense_params fix one. Everything else the header's defense_params hold is
# configuration: decision rules (d_near), loss constants attacks maximise (alpha, beta),
# and what generates fixed tensors (centre_scale, distance, radius, steps, seed).
TRAINING_SET_PARAMS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (TradesModel, ("eps",)), (ATCModel, ("groups",)))
_ABSENT = object()


def training_set_params(entry: ModelEntry) -> set[str]:
    cls = DEFENSES.get(entry.defense)
    keys = {k for base, names in TRAINING_SET_PARAMS if issubclass(cls, base) for k in names}
    return keys - set(entry.defense_params)


def effective_params(entry: ModelEntry, params: dict[str, Any]) -> dict[str, Any]:
    """The defense parameters a model built from `params` has (defaults filled in,
    normalised by the defense itself), as `load_model` builds it. The global RNG is left
    as it was. One thread: building runs many tiny ops (DRP's prototype generation takes
    ~1 s on one thread and several times that on two busy ones)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.random.fork_rng(devices=[]):
            return build_model(entry, dict(params)).defense_params()
    finally:
        torch.set_num_threads(threads)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value)


@dataclass
class ConfigCheck:
    checkpoint: str
    sha256: str
    fixed: list[str]  # architecture, defense, dataset, feature_dim: never allowed
    params: list[str]  # defense parameters: allowed with allow_params


def config_check(entry: ModelEntry, checkpoint: str | None) -> ConfigCheck:
    """Compares the checkpoint's header with the manifest without attacking anything."""
    if checkpoint is None:
        if entry.checkpoint_path is None:
            raise RobbenchError(f"model {entry.id!r} has no committed checkpoint; pass "
                                f"--checkpoint PATH")
        path, expected = entry.checkpoint_path, entry.checkpoint_sha256
    else:
        path, expected = Path(checkpoint), None
    ckpt = load_checkpoint(path, expected_sha256=expected)
    meta = ckpt.meta
    fixed = [f"{key} {_show(meta.get(key))} (manifest {_show(getattr(entry, key))})"
             for key in ("architecture", "defense", "dataset") if meta.get(key) != getattr(entry, key)]
    if "feature_dim" in meta and not _same(meta["feature_dim"], entry.feature_dim):
        fixed.append(f"feature_dim {_show(meta['feature_dim'])} (manifest {_show(entry.feature_dim)})")
    result = ConfigCheck(checkpoint=str(path), sha256=ckpt.sha256, fixed=fixed, params=[])
    if fixed:
        return result  # another network: its parameters are not comparable
    header = meta.get("defense_params", entry.defense_params)  # as load_model reads it
    if not isinstance(header, dict):
        fixed.append(f"defense_params {_show(header)} is not a JSON object")
        return result
    if _same(header, entry.defense_params):
        return result  # absent from the header, or the manifest's own words
    wanted = effective_params(entry, entry.defense_params)
    if _same(header, wanted):
        found = wanted  # what checkpoint_meta writes: no second build (DRP's takes seconds)
    else:
        try:
            found = effective_params(entry, header)
        except (TypeError, ValueError, RobbenchError) as exc:
            fixed.append(f"defense_params {_show(header)} do not build a {entry.defense} "
                         f"model ({exc})")
            return result
    skip = training_set_params(entry)
    for key in sorted(set(found) | set(wanted)):
        if key in skip:
            continue
        a, b = found.get(key, _ABSENT), wanted.get(key, _ABSENT)
        if a is _ABSENT or b is _ABSENT or not _same(a, b):
            result.params.append(f"{key}={_show(a)} (manifest {_show(b)})")
    return result
