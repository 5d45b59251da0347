"""`robbench import-checkpoint`: a reference implementation's PyTorch state dict
(`.pth`) → a robbench safetensors checkpoint for a zoo architecture.

The `.pth` is read with `torch.load(weights_only=True)` only: tensors and plain
containers load, any other pickled object is refused before it is built, so a
`__reduce__` payload never runs. Parameter names are mapped onto the zoo model by a
key map (JSON, every field optional):

    {"select": "state_dict",                  # the entry holding the weights (default: auto)
     "strip_prefixes": ["module."],           # removed from the front of every key, in order
     "prefix_rules": {"features.": "body.trunk."},  # first matching prefix is replaced
     "rename": {"fc_centres": "centres"},     # exact renames (after stripping), before prefix rules
     "fill": {"body.normalize.mean": [[[[0.49]], [[0.48]], [[0.45]]]]}}  # constants the source lacks

Without a key map, `module.` (DataParallel's prefix) is stripped. Shape mismatches and
target keys left missing are refused (BatchNorm's `num_batches_tracked` counter, which
older PyTorch did not save and which inference never reads, is filled with 0 and
reported); source keys that match nothing are reported and dropped. Clustering
defenses need their state too (ClusTR/magnet: `centres` (L, K, d) and `sigma2`; MMC
and MAT: their fixed centres): map them, or `fill` them, like any other key.

The output is written by robbench.zoo.checkpoints.save_checkpoint (atomic), with the
zoo model's configuration (what load_model checks) and an `import` record: the
source file's sha256, the key map, the date, the versions, and what was dropped or
filled. `robbench eval --model ID --checkpoint OUT` then loads it like any checkpoint."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import platform
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from robbench.config import VERSION
from robbench.errors import RobbenchError
from robbench.evaluation.external import state_dict_sha256
from robbench.store.paths import check_output_file
from robbench.zoo.checkpoints import save_checkpoint, sha256_file
from robbench.zoo.lookup import MODELS, build_model, checkpoint_meta

AUTO_SELECT = ("state_dict", "model_state_dict", "model", "net")
KEY_MAP_FIELDS = {"select", "strip_prefixes", "prefix_rules", "rename", "fill"}
DEFAULT_KEY_MAP: dict[str, Any] = {"strip_prefixes": ["module."]}


@dataclass
class ImportReport:
    model: str
    out: str
    sha256: str  # of the written safetensors file
    source_sha256: str
    mapped: int
    unmatched: list[str] = field(default_factory=list)  # source keys that fit no target (dropped)
    filled: list[str] = field(default_factory=list)  # target keys taken from `fill` or zeroed counters
    converted: list[str] = field(default_factory=list)  # keys cast to the target dtype

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def read_state_dict(path: Path, select: str | None) -> dict[str, torch.Tensor]:
    """Tensors by name from a torch.save file; never builds a non-tensor object."""
    if not path.is_file():
        raise RobbenchError(f"--from {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol notes would precede our one line
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found.group(1)})" if found else ""
        raise RobbenchError(f"--from {path}: refused: it pickles an object other than tensors and "
                            f"plain containers{what}; only weights_only state dicts are imported") from None
    except Exception as exc:  # zip or pickle garbage: many exception types
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise RobbenchError(f"--from {path}: not a readable PyTorch state dict: {detail[:200]}") from None
    if isinstance(obj, dict) and select is None and not _is_tensor_dict(obj):
        select = next((k for k in AUTO_SELECT if isinstance(obj.get(k), dict)), None)
    if select is not None:
        if not isinstance(obj, dict) or not isinstance(obj.get(select), dict):
            raise RobbenchError(f"--from {path}: no dict entry {select!r} to take the weights from")
        obj = obj[select]
    if not isinstance(obj, dict):
        raise RobbenchError(f"--from {path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        raise RobbenchError(f"--from {path}: no tensors in the state dict"
                            f"{'' if select else ' (name the entry that holds them: key map select)'}")
    return tensors


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def read_key_map(path: str | Path | None) -> dict[str, Any]:
    if path is None:
        return dict(DEFAULT_KEY_MAP)
    try:
        key_map = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RobbenchError(f"--key-map {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise RobbenchError(f"--key-map {path}: not a JSON file ({exc})") from None
    if not isinstance(key_map, dict) or set(key_map) - KEY_MAP_FIELDS:
        unknown = sorted(set(key_map) - KEY_MAP_FIELDS) if isinstance(key_map, dict) else []
        raise RobbenchError(f"--key-map {path}: expected a JSON object with fields "
                            f"{', '.join(sorted(KEY_MAP_FIELDS))}"
                            f"{'; unknown: ' + ', '.join(unknown) if unknown else ''}")
    for name, value in key_map.items():
        valid, expected = KEY_MAP_SCHEMA[name]
        if not valid(value):
            raise RobbenchError(f"--key-map {path}: field {name!r} must be {expected}, got "
                                f"{json.dumps(value)[:80]}")
    return key_map


def _is_str_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_numbers(value: Any) -> bool:
    """A number or a (nested) list of numbers: what torch.tensor makes a constant of."""
    if isinstance(value, list):
        return all(map(_is_numbers, value))
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# every key map field's type (checked before any key is mapped) and how to describe it
KEY_MAP_SCHEMA: dict[str, tuple[Any, str]] = {
    "select": (lambda v: isinstance(v, str), "a string (the entry holding the weights)"),
    "strip_prefixes": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
                       "a list of strings"),
    "prefix_rules": (_is_str_map, "an object mapping old prefixes to new ones"),
    "rename": (_is_str_map, "an object mapping old keys to new ones"),
    "fill": (lambda v: isinstance(v, dict) and all(map(_is_numbers, v.values())),
             "an object mapping keys to numbers or nested lists of numbers"),
}


def map_key(key: str, key_map: dict[str, Any]) -> str:
    """Strip prefixes, then an exact rename, else the first matching prefix rule."""
    for prefix in key_map.get("strip_prefixes", []):
        if key.startswith(prefix):
            key = key[len(prefix):]
    renames = key_map.get("rename", {})
    if key in renames:
        return renames[key]
    for old, new in key_map.get("prefix_rules", {}).items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                   key_map: dict[str, Any], report: ImportReport) -> dict[str, torch.Tensor]:
    """The target's state dict from the source's tensors; refuses what cannot fit."""
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, tensor in source.items():
        new = map_key(key, key_map)
        if new not in target:
            report.unmatched.append(key)
            continue
        if new in mapped:
            raise RobbenchError(f"key map sends both {origin[new]!r} and {key!r} to {new!r}")
        mapped[new], origin[new] = tensor, key
    for key, value in key_map.get("fill", {}).items():
        if key not in target:
            raise RobbenchError(f"key map fill: {key!r} is not a parameter or buffer of the model")
        if key in mapped:
            raise RobbenchError(f"key map fill: {key!r} is already given by the source file")
        try:
            mapped[key] = torch.tensor(value, dtype=target[key].dtype)
        except (TypeError, ValueError, RuntimeError) as exc:  # e.g. ragged nested lists
            raise RobbenchError(f"key map fill: {key!r} is not a tensor constant "
                                f"({' '.join(str(exc).split())[:120]})") from None
        report.filled.append(key)
    bad_shapes = [f"{k} ({origin.get(k, 'fill')}): {tuple(v.shape)} vs {tuple(target[k].shape)}"
                  for k, v in mapped.items() if v.shape != target[k].shape]
    if bad_shapes:
        raise RobbenchError(f"shape mismatch for {len(bad_shapes)} key(s), e.g. {bad_shapes[0]}; "
                            f"the source is not this architecture or the key map pairs wrong keys")
    for key in sorted(set(target) - set(mapped)):
        if key.endswith("num_batches_tracked"):
            mapped[key] = torch.zeros_like(target[key])
            report.filled.append(key)
    missing = sorted(set(target) - set(mapped))
    if missing:
        raise RobbenchError(f"{len(missing)} key(s) of {report.model} not in the source after "
                            f"mapping, e.g. {', '.join(missing[:4])}; map them (--key-map rename / "
                            f"prefix_rules) or give them (fill)"
                            f"{'; unmatched source keys: ' + ', '.join(report.unmatched[:4]) if report.unmatched else ''}")
    for key, tensor in mapped.items():
        if tensor.dtype != target[key].dtype:
            if tensor.is_floating_point() != target[key].is_floating_point():
                raise RobbenchError(f"{key}: dtype {tensor.dtype}, the model needs {target[key].dtype}")
            mapped[key] = tensor.to(target[key].dtype)
            report.converted.append(key)
    return mapped


def nonfinite_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """Floating-point tensors holding NaN or infinite values: such a checkpoint gives
    non-finite logits, which robbench eval refuses."""
    return sorted(k for k, v in state.items()
                  if v.is_floating_point() and not bool(torch.isfinite(v).all()))


def check_out(out: Path, force: bool) -> None:
    """The output is never a zoo checkpoint (the manifest pins its sha256, so replacing
    it breaks every eval of that model), and never an existing file unless `force`."""
    target = out.resolve()
    for model_id, entry in MODELS.items():
        if entry.checkpoint_path is not None and entry.checkpoint_path.resolve() == target:
            raise RobbenchError(f"--out {out} is the zoo's checkpoint of {model_id} (the manifest "
                                f"pins its sha256); write the import elsewhere")
    if out.exists() and not force:
        raise RobbenchError(f"--out {out} exists; pass --force to replace it")


def import_checkpoint(model_id: str, source: str | Path, out: str | Path,
                      key_map_path: str | Path | None = None,
                      allow_nonfinite: bool = False, force: bool = False) -> ImportReport:
    """Maps `source` onto the zoo model `model_id`, loads it strictly into a fresh model
    (so the result is known to load), and writes `out` with provenance. NaN or infinite
    weights are refused unless `allow_nonfinite` (and then recorded); an existing `out`
    unless `force` (a zoo checkpoint always)."""
    entry = MODELS.get(model_id)
    check_output_file(out, "--out")
    check_out(Path(out), force)
    key_map = read_key_map(key_map_path)
    source = Path(source)
    tensors = read_state_dict(source, key_map.get("select"))
    model = build_model(entry)
    target = model.state_dict()
    report = ImportReport(model=model_id, out=str(out), sha256="", source_sha256=sha256_file(source),
                          mapped=0)
    state = map_state_dict(tensors, target, key_map, report)
    nonfinite = nonfinite_keys(state)
    if nonfinite and not allow_nonfinite:
        raise RobbenchError(f"--from {source}: {len(nonfinite)} tensor(s) hold NaN or infinite "
                            f"values, e.g. {', '.join(nonfinite[:4])}; such a checkpoint cannot "
                            f"be evaluated (pass --allow-nonfinite to import it anyway)")
    model.load_state_dict(state, strict=True)
    report.mapped = len(state) - len(report.filled)
    meta = checkpoint_meta(entry, model)
    meta["import"] = {
        "weights_sha256": state_dict_sha256(model),  # robbench.evaluation.external's digest of the tensors
        "source_name": source.name, "source_sha256": report.source_sha256, "key_map": key_map,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "versions": {"robbench": VERSION, "torch": torch.__version__,
                     "python": platform.python_version()},
        "unmatched": report.unmatched, "filled": report.filled, "converted": report.converted,
        "nonfinite": nonfinite,
    }
    report.sha256 = save_checkpoint(model.state_dict(), meta, out)
    return report
