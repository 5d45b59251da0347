"""Third-party models: `robbench eval --model PKG.MODULE:FACTORY` (or `path/file.py:FACTORY`)
with `--dataset ID` evaluates any `nn.Module` that returns logits on inputs in [0, 1].

The protocol (every method but `forward` optional) lets a third-party defense expose
what the adaptive attacks need, so that `adaptive` attacks its own objective:

- `forward(x) -> logits (N, L)`: required. Normalisation lives inside the model.
- `training_loss(x, y) -> (N,)`: the defense's own per-sample training loss;
  `adaptive` maximises it (`adaptive-own-loss`) before the margin loss.
- `features(x) -> f` with `logits_from_features(f) -> logits`: its feature space;
  `adaptive` also pushes f(x') away from f(x) (`adaptive-feature`).
- `decision_rule(x) -> labels (N,)`: the defense's native prediction; the eval refuses
  a model whose logits' argmax disagrees with it on the clean test images.
- `adaptive_attacks`: a tuple of registered attack ids that replaces the default
  resolution of `adaptive`.

Without `training_loss` or `features`, `adaptive` falls back to CE, DLR and margin PGD
on the logits; the attack record then carries the flag `adaptive:fallback` and the
run an unreliable flag of kind `adaptive-fallback`, since attacks on the logits alone
can overstate a clustering defense's robustness (METHODS §2).

A third-party run is identified by `ext:<module>:<factory>` (characters outside
[A-Za-z0-9._-] become `_`); zoo ids never contain `:`, so the two cannot collide. Its
checkpoint sha256 is the `--checkpoint` file's, else the digest of the state dict
(`state_dict_sha256`)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robbench.datasets import DATASETS
from robbench.defenses.base import DefenseModel
from robbench.errors import RobbenchError
from robbench.zoo.checkpoints import sha256_file

EXTERNAL_PREFIX = "ext:"
FALLBACK_FLAG = "adaptive:fallback"
FALLBACK_ATTACKS = ("adaptive-ce", "adaptive-dlr", "adaptive-margin")


def is_external_spec(model: str) -> bool:
    """`PKG.MODULE:FACTORY` or `path/file.py:FACTORY` (zoo ids have no colon)."""
    return ":" in model and not model.startswith(EXTERNAL_PREFIX)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def external_id(module_name: str, factory: str) -> str:
    return f"{EXTERNAL_PREFIX}{_safe(module_name)}:{_safe(factory)}"


def state_dict_sha256(module: nn.Module) -> str:
    """A deterministic digest of the weights: for every entry in sorted key order, the
    key, dtype, shape and the raw little-endian bytes. Stands in for a file's sha256
    when a model has no checkpoint file."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}|{tensor.dtype}|{tuple(value.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def code_sha256(module: nn.Module, factory: Any = None) -> tuple[str, list[str]]:
    """(digest, what had no readable source) of the code behind a third-party model, so
    that two different forwards with the same weights never share a run: the files of
    the modules defining the factory and every class of every submodule (their bases
    included; else the class's own source), the module tree as `repr` shows it
    (Softmax(dim=1) or not), and each submodule's plain attributes (a temperature
    held as a float). torch's own classes are left out: the records carry the torch
    version."""
    texts: dict[str, bytes] = {}
    unavailable: list[str] = []
    owners = ([factory] if factory is not None else []) + \
        [cls for m in module.modules() for cls in type(m).__mro__]
    for owner in owners:
        module_name = getattr(owner, "__module__", None) or ""
        if module_name in ("", "builtins") or module_name.split(".")[0] == "torch":
            continue
        name = f"{module_name}:{getattr(owner, '__qualname__', type(owner).__name__)}"
        file = getattr(sys.modules.get(module_name), "__file__", None)
        try:
            texts[module_name] = Path(file).read_bytes()
            continue
        except (OSError, TypeError):
            pass
        try:
            texts[name] = inspect.getsource(owner).encode()
        except (OSError, TypeError):
            unavailable.append(name)
    digest = hashlib.sha256()
    for key in sorted(texts):
        digest.update(f"{key}\n".encode() + hashlib.sha256(texts[key]).digest())
    digest.update(repr(module).encode())
    for path, sub in module.named_modules():
        for key, value in sorted(vars(sub).items()):
            if key.startswith("_") or key == "training":
                continue
            shown = (repr(value) if isinstance(value, (int, float, str, bool, type(None), tuple))
                     else _tensor_sha256(value) if isinstance(value, torch.Tensor)
                     else type(value).__qualname__)
            digest.update(f"{path}.{key}={shown}\n".encode())
    return digest.hexdigest(), sorted(set(unavailable))


def _tensor_sha256(tensor: torch.Tensor) -> str:
    """A tensor's dtype, shape and raw bytes (any dtype; a meta tensor has none)."""
    flat = tensor.detach()
    head = f"{flat.dtype}|{tuple(flat.shape)}|".encode()
    if flat.is_meta or not flat.numel():
        return hashlib.sha256(head).hexdigest()
    raw = flat.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(head + raw).hexdigest()


def run_sha256(weights_sha256: str, code: str) -> str:
    """A third-party run's identity (recorded as its checkpoint_sha256): its weights
    (a file's sha256 or the state dict's digest) and its code (code_sha256) together."""
    return hashlib.sha256(f"weights {weights_sha256}\ncode {code}\n".encode()).hexdigest()


def check_tensors(module: nn.Module, what: str) -> None:
    """Weights that cannot give an honest evaluation are refused before anything is
    written: a tensor on the meta device has no values at all, and NaN or infinite
    weights give non-finite logits, which no attack or record can score."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_meta:
            raise RobbenchError(f"{what}: {name} is on the meta device and holds no values; "
                                f"materialise the module (to_empty() and load its weights) first")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            raise RobbenchError(f"{what}: {name} holds NaN or infinite values; a model with "
                                f"non-finite weights cannot be evaluated")


def import_factory(spec: str) -> tuple[str, Any]:
    """(module name for the id, the factory) from `PKG.MODULE:FACTORY` or `FILE.py:FACTORY`."""
    target, _, factory_name = spec.rpartition(":")
    if not target or not factory_name:
        raise RobbenchError(f"--model {spec!r}: expected PKG.MODULE:FACTORY or path/file.py:FACTORY")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise RobbenchError(f"--model {spec!r}: file {path} does not exist")
        name = f"robbench_external_{_safe(path.stem)}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise RobbenchError(f"--model {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise RobbenchError(f"--model {spec!r}: importing {path} failed: "
                                f"{type(exc).__name__}: {_one_line(exc)}") from None
        shown = path.stem
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise RobbenchError(f"--model {spec!r}: no module named {exc.name!r}") from None
        except Exception as exc:
            raise RobbenchError(f"--model {spec!r}: importing {target} failed: "
                                f"{type(exc).__name__}: {_one_line(exc)}") from None
        shown = target
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        raise RobbenchError(f"--model {spec!r}: {shown} has no callable {factory_name!r}")
    return shown, factory


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class ExternalModel(DefenseModel):
    """Adapts a third-party module to the wrapper interface the attacks use. Without
    `features`, the "features" are the logits themselves (the identity head), so the
    logit-space adaptive attacks run unchanged. The module is given a copy of every
    input: a forward that modifies its input in place would otherwise fail on the
    attacks' leaf tensors (or silently change the test images)."""

    defense_id = "external"

    def __init__(self, module: nn.Module, num_classes: int) -> None:
        super().__init__(module, num_classes)
        self.has_features = callable(getattr(module, "features", None)) and \
            callable(getattr(module, "logits_from_features", None))
        self.has_loss = callable(getattr(module, "training_loss", None))
        self.has_rule = callable(getattr(module, "decision_rule", None))
        declared = getattr(module, "adaptive_attacks", None)
        if declared:
            self.adaptive_attacks = tuple(declared)
            self.adaptive_flags: tuple[str, ...] = ()
        elif self.has_loss or self.has_features:
            self.adaptive_attacks = (("adaptive-own-loss",) if self.has_loss else ()) + \
                (("adaptive-feature",) if self.has_features else ()) + ("adaptive-margin",)
            self.adaptive_flags = ()
        else:
            self.adaptive_attacks = FALLBACK_ATTACKS
            self.adaptive_flags = (FALLBACK_FLAG,)

    @property
    def feature_dim(self) -> int:
        return getattr(self.body, "feature_dim", self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.features(x.clone()) if self.has_features else self.body(x.clone())

    def logits_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.body.logits_from_features(f.clone()) if self.has_features else f

    def native_predict_from_features(self, f: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(f).argmax(dim=1)

    @torch.no_grad()
    def native_predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.decision_rule(x.clone()) if self.has_rule else self(x).argmax(dim=1)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.has_loss:
            raise RobbenchError("this third-party model defines no training_loss(x, y)")
        return self.body.training_loss(x.clone(), y.clone())

    def defense_params(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class LoadedExternal:
    model: ExternalModel
    model_id: str
    sha256: str  # run_sha256: the weights and the code together
    checkpoint_source: str  # "file" (the checkpoint's sha256) or "state_dict" (the weights' digest)
    architecture: str  # the module and factory, as the user named them (no file path)
    notes: tuple[str, ...]
    no_source: tuple[str, ...] = ()  # classes whose code is not in sha256 (no readable source)


def wrap_module(module: Any, dataset: str, model_id: str, architecture: str,
                device: str | torch.device, checkpoint: str | None = None,
                factory: Any = None) -> LoadedExternal:
    """Checks the module against the dataset (one probe forward pass: logits of shape
    (N, L)), loads an optional safetensors checkpoint into it, and wraps it; its run
    identity covers the weights and the code (run_sha256)."""
    if not isinstance(module, nn.Module):
        raise RobbenchError(f"{architecture}: the factory returned a {type(module).__name__}, "
                            f"not a torch.nn.Module")
    spec = DATASETS.get(dataset)
    sha, source = None, "state_dict"
    if checkpoint is not None:
        sha, source = _load_weights(module, Path(checkpoint), architecture), "file"
    check_tensors(module, architecture)
    module.eval().to(device)
    probe = torch.full((2, *spec.input_shape), 0.5, device=device)
    try:
        with torch.no_grad():
            out = module(probe)
    except Exception as exc:
        raise RobbenchError(f"{architecture}: forward pass on a {tuple(probe.shape)} batch of "
                            f"{dataset} images failed: {type(exc).__name__}: {_one_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, spec.num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RobbenchError(f"{architecture}: returned {shape} for a batch of 2 {dataset} images; "
                            f"expected logits of shape (2, {spec.num_classes})")
    model = ExternalModel(module, spec.num_classes)
    model.dataset = dataset
    model.eval()
    if sha is None:
        sha = state_dict_sha256(module)
    code, no_source = code_sha256(module, factory)
    notes = () if not model.adaptive_flags else (
        "the model exposes neither training_loss(x, y) nor features(x): adaptive runs CE, DLR "
        "and margin PGD on its logits only (flag adaptive:fallback)",)
    return LoadedExternal(model=model, model_id=model_id, sha256=run_sha256(sha, code),
                          checkpoint_source=source, architecture=architecture, notes=notes,
                          no_source=tuple(no_source))


def _load_weights(module: nn.Module, path: Path, architecture: str) -> str:
    """Loads a safetensors file (any tensors; robbench metadata optional) strictly."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file


    if not path.is_file():
        raise RobbenchError(f"checkpoint {path} does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RobbenchError(f"checkpoint {path} is not a readable safetensors file ({_one_line(exc)})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RobbenchError(f"checkpoint {path} does not fit {architecture}: {first}") from None
    return sha256_file(path)


def load_external(spec: str, dataset: str | None, checkpoint: str | None = None,
                  device: str | torch.device = "cpu") -> LoadedExternal:
    """Imports the factory, calls it with no arguments and wraps what it returns."""
    if dataset is None:
        raise RobbenchError(f"--model {spec!r} is a third-party model: pass --dataset ID "
                            f"(e.g. digits, cifar10)")
    shown, factory = import_factory(spec)
    factory_name = spec.rpartition(":")[2]
    try:
        module = factory()
    except Exception as exc:
        raise RobbenchError(f"--model {spec!r}: {factory_name}() failed: "
                            f"{type(exc).__name__}: {_one_line(exc)}") from None
    return wrap_module(module, dataset, external_id(shown, factory_name),
                       f"{shown}:{factory_name}", device, checkpoint, factory)


def wrap_object(module: Any, dataset: str | None, device: str | torch.device) -> LoadedExternal:
    """An in-memory module (Python API): identified by its class, hashed by its weights."""
    if dataset is None:
        raise RobbenchError("evaluating a model object needs dataset=ID")
    cls = type(module)
    return wrap_module(module, dataset, external_id(cls.__module__, cls.__qualname__),
                       f"{cls.__module__}:{cls.__qualname__}", device)
