"""`robbench eval`: model id → manifest → wrapper → attacks → per-sample results →
leaderboard. Finished batches are on disk before the next starts, so an interrupted
run loses nothing and the same command resumes it."""

from __future__ import annotations

import math
import numbers
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robbench.attacks import ATTACKS, Attack, AttackResult
from robbench.attacks.base import run_in_batches
from robbench.attacks.cascade import cascade_of
from robbench.config import (DEFAULT_BATCH_SIZE, DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR, STANDARD_ATTACKS,
                             THREAT_DEFAULTS, VERSION)
from robbench.datasets import DATASETS, load_split
from robbench.errors import RobbenchError
from robbench.evaluation import external
from robbench.evaluation.diagnostics import run_model_checks, success_mismatch, unreliable_flags
from robbench.evaluation.external import is_external_spec
from robbench.evaluation.scoring import run_row, summarize
from robbench.evaluation.sharding import sharded_attack
from robbench.store.runs import RunStore, run_dir
from robbench.store.table import default_path, read_table, upsert_row
from robbench.zoo.lookup import MODELS, load_model


@dataclass
class EvalRequest:
    model_id: str
    attacks: list[str]
    n_examples: int | None = None  # None: the whole test split
    eps: float | None = None  # None: the protocol default for the dataset and norm
    batch_size: int = DEFAULT_BATCH_SIZE
    seed: int = DEFAULT_SEED
    device: str = "cpu"
    checkpoint: str | None = None
    data_root: str | None = None
    download: bool = False
    runs_dir: Path | None = None  # None: runs/ (zoo models) or runs-external/ (third-party)
    leaderboard: Path | None = None  # None: the runs dir's own (output_paths)
    progress: bool = True
    backend: str = "local"  # "local" or "ray" (robbench.evaluation.sharding)
    shards: int = 1  # Ray tasks per attack
    address: str | None = None  # a running Ray cluster; None starts a local one
    recompute: list[str] = field(default_factory=list)  # attacks whose rows may be replaced
    cascade: bool = False  # one attack: `attacks` as a cascade (robbench.attacks.cascade)
    dataset: str | None = None  # required for a third-party model; checked for a zoo one
    module: Any = None  # an in-memory nn.Module (Python API); model_id is then ignored


@dataclass(frozen=True)
class ModelSource:
    """What the eval needs to know about the model, whether from the zoo or not."""

    model_id: str
    model: torch.nn.Module
    dataset: str
    defense: str
    architecture: str
    reference: str
    sha256: str
    checkpoint_source: str  # "zoo", "file" or "state_dict" (robbench.evaluation.external)
    external: bool
    notes: tuple[str, ...] = ()
    no_source: tuple[str, ...] = ()  # classes whose code the run identity could not cover


def resolve_model(req: EvalRequest, device: torch.device) -> ModelSource:
    """A zoo id, a third-party `MODULE:FACTORY` / `FILE.py:FACTORY`, or a module object."""
    zoo_id = getattr(req.module, "robbench_id", None)
    if zoo_id is not None:  # a robbench.load_model model whose weights were changed
        entry = MODELS.get(zoo_id)
        external.check_tensors(req.module, zoo_id)
        model = req.module.eval().to(device)
        return ModelSource(zoo_id, model, entry.dataset, entry.defense, entry.architecture,
                           entry.reference, external.state_dict_sha256(model), "state_dict", False)
    if req.module is not None or external.is_external_spec(req.model_id):
        if req.module is not None:
            loaded = external.wrap_object(req.module, req.dataset, device)
        else:
            loaded = external.load_external(req.model_id, req.dataset, req.checkpoint, device)
        if loaded.model_id in MODELS:  # cannot happen (zoo ids have no ':'); never share a row
            raise RobbenchError(f"third-party id {loaded.model_id!r} collides with a zoo model")
        return ModelSource(loaded.model_id, loaded.model, req.dataset, "external",
                           loaded.architecture, "", loaded.sha256, loaded.checkpoint_source,
                           True, loaded.notes, loaded.no_source)
    entry = MODELS.get(req.model_id)
    if req.dataset is not None and req.dataset != entry.dataset:
        raise RobbenchError(f"--dataset {req.dataset}: model {req.model_id!r} is a "
                            f"{entry.dataset} model")
    loaded = load_model(req.model_id, req.checkpoint, device)
    external.check_tensors(loaded.model, req.model_id)
    return ModelSource(req.model_id, loaded.model, entry.dataset, entry.defense,
                       entry.architecture, entry.reference, loaded.sha256,
                       "zoo" if loaded.sha256 == entry.checkpoint_sha256 else "file", False)


EXTERNAL_RUNS_DIR = "runs-external"
EXTERNAL_LEADERBOARD_DIR = "leaderboards-external"


def resolve_attacks(ids: list[str]) -> tuple[list[Attack], str]:
    if not ids:
        raise RobbenchError("no attack given; pass --attacks ID[,ID...] (see `robbench attacks`)")
    ids = list(dict.fromkeys(a for i in ids for a in STANDARD_ATTACKS.get(i, (i,))))
    attacks = [ATTACKS.get(a) for a in ids]
    norms = {a.norm for a in attacks}
    if len(norms) > 1:
        by_norm = ", ".join(f"{a.id} ({a.norm})" for a in attacks)
        raise RobbenchError(f"attacks {by_norm} belong to different threat models; "
                            f"evaluate each norm in its own run")
    return attacks, norms.pop()


def check_eps(eps: float, norm: str, input_shape: tuple[int, ...]) -> None:
    if not math.isfinite(eps) or eps <= 0:
        raise RobbenchError(f"--eps must be a positive number, got {eps}")
    limit = 1.0 if norm == "Linf" else math.sqrt(math.prod(input_shape))
    if eps > limit:
        raise RobbenchError(f"--eps {eps} exceeds the input range: inputs lie in [0, 1], so an "
                            f"{norm} perturbation is at most {limit:.4g}")


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobbenchError(f"unknown --device {name!r}; use cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RobbenchError("--device cuda requested but CUDA is not available on this machine")
    return device


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def validate_request(req: EvalRequest) -> None:
    """Every argument's type, before anything is loaded or written (ranges are checked
    next, still before any file is created). The Python API passes values no
    command-line parser has checked, and a value that only fails later (seed="x",
    eps=True) would name a run directory before failing. Numbers become plain int and
    float."""
    if not _is_str_list(req.attacks):
        raise RobbenchError(f"attacks must be a list of attack ids, got {req.attacks!r}")
    if not _is_str_list(req.recompute):
        raise RobbenchError(f"recompute must be a list of attack ids, got {req.recompute!r}")
    if req.eps is not None and (not isinstance(req.eps, numbers.Real) or isinstance(req.eps, bool)):
        raise RobbenchError(f"eps must be a number, got {req.eps!r}")
    for name, value, optional in (("n_examples", req.n_examples, True),
                                  ("batch_size", req.batch_size, False),
                                  ("seed", req.seed, False), ("shards", req.shards, False)):
        if not (_is_int(value) or (optional and value is None)):
            raise RobbenchError(f"{name} must be an integer, got {value!r}")
    for name, value in (("device", req.device), ("backend", req.backend)):
        if not isinstance(value, str):
            raise RobbenchError(f"{name} must be a string, got {value!r}")
    for name, value in (("model", req.model_id), ("checkpoint", req.checkpoint),
                        ("data_root", req.data_root), ("dataset", req.dataset),
                        ("address", req.address)):
        if value is not None and not isinstance(value, str):
            raise RobbenchError(f"{name} must be a string, got {value!r}")
    for name, value in (("runs_dir", req.runs_dir), ("leaderboard", req.leaderboard)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise RobbenchError(f"{name} must be a path, got {value!r}")
    if req.dataset is not None:
        DATASETS.get(req.dataset)  # an unknown id is an error naming the known ones
    # numpy scalars pass the checks above; records hold plain JSON numbers
    req.eps = None if req.eps is None else float(req.eps)
    req.n_examples = None if req.n_examples is None else int(req.n_examples)
    req.batch_size, req.seed, req.shards = int(req.batch_size), int(req.seed), int(req.shards)


def evaluate(req: EvalRequest) -> dict[str, Any]:
    started = time.perf_counter()
    validate_request(req)
    attacks, norm = resolve_attacks(req.attacks)
    if req.cascade:
        attacks = [cascade_of(req.attacks)]
    unknown = sorted(set(req.recompute) - {a.id for a in attacks})
    if unknown:
        raise RobbenchError(f"--recompute {','.join(unknown)}: not among --attacks")

    zoo_object = getattr(req.module, "robbench_id", None)
    external = zoo_object is None and (req.module is not None or is_external_spec(req.model_id))
    if (external or req.module is not None) and req.backend == "ray":
        raise RobbenchError("--backend ray evaluates zoo models only (each Ray task reloads the "
                            "model by id); run third-party models with --backend local")
    if external and req.dataset is None:
        raise RobbenchError("evaluating a model object needs dataset=ID" if req.module is not None
                            else f"--model {req.model_id!r} is a third-party model: pass "
                                 f"--dataset ID (e.g. digits, cifar10)")
    dataset = req.dataset if external else MODELS.get(zoo_object or req.model_id).dataset
    spec = DATASETS.get(dataset)
    protocol_eps = THREAT_DEFAULTS[dataset].eps(norm)
    eps = protocol_eps if req.eps is None else req.eps
    check_eps(eps, norm, spec.input_shape)
    if req.n_examples is not None and req.n_examples <= 0:
        raise RobbenchError(f"--n-examples must be positive, got {req.n_examples}")
    if req.batch_size <= 0:
        raise RobbenchError(f"--batch-size must be positive, got {req.batch_size}")
    if req.backend not in ("local", "ray"):
        raise RobbenchError(f"--backend must be local or ray, got {req.backend!r}")
    if req.shards <= 0:
        raise RobbenchError(f"--shards must be positive, got {req.shards}")
    device = resolve_device(req.device)

    runs_dir, lb_path = output_paths(req, external, dataset, norm, eps, protocol_eps)
    check_paths(runs_dir, lb_path)

    source = resolve_model(req, device)
    model = source.model
    test = load_split(dataset, "test", req.data_root, req.download)
    n = len(test) if req.n_examples is None else req.n_examples
    if n > len(test):
        raise RobbenchError(f"--n-examples {n} exceeds the {len(test)} test images of {dataset}")
    x_all, y_all = test.x[:n], test.y[:n]
    index = torch.arange(n)

    # everything that can refuse the model runs before the run directory is created
    pred = clean_predictions(model, x_all, req.batch_size, device)
    if source.external:
        check_decision_rule(model, x_all, pred, req.batch_size, device)

    store = RunStore(run_dir(runs_dir, source.model_id, source.sha256, norm, eps, req.seed))
    if source.no_source and store.load_meta() is not None:
        raise RobbenchError(f"the source of {', '.join(source.no_source)} cannot be read, so the "
                            f"run identity does not cover its code and robbench cannot tell "
                            f"whether {store.root} holds results of this model; evaluate into "
                            f"another runs dir (or delete that run)")
    store.open({
        "model": source.model_id, "dataset": dataset, "defense": source.defense,
        "architecture": source.architecture, "threat_model": norm, "eps": eps,
        "protocol_eps": protocol_eps, "seed": req.seed, "checkpoint_sha256": source.sha256,
        "checkpoint_source": source.checkpoint_source, "reference": source.reference,
    }, versions())
    validate_run(store)  # a damaged record fails here, before any attack runs

    store.save_clean(index, y_all, pred)
    correct = pred == y_all

    for attack in attacks:
        run_attack(attack, model, store, x_all, y_all, correct, eps, req, device)

    summary = summarize(store, n, requested=[a.id for a in attacks])
    # METHODS §5: checks that flag an unreliable evaluation (robbench/evaluation/diagnostics.py); kept
    # in the run only when this eval covers the whole run, i.e. gives its leaderboard row
    model_flags = run_model_checks(model, store, x_all, y_all, norm=norm, seed=req.seed,
                                   num_classes=spec.num_classes, device=device,
                                   keep=n >= store.size())
    summary["unreliable"] = unreliable_flags(store, n, summary["worst_case_over"], model_flags)
    summary.update({"model": source.model_id, "dataset": dataset, "threat_model": norm,
                    "eps": eps, "n_examples": n, "seed": req.seed,
                    "checkpoint_sha256": source.sha256,
                    "checkpoint_source": source.checkpoint_source, "notes": list(source.notes),
                    "versions": versions(device), "run_dir": str(store.root),
                    "seconds": round(time.perf_counter() - started, 2)})
    upsert = upsert_row(lb_path, lambda: run_row(store))
    summary.update({"leaderboard": str(lb_path), "leaderboard_model": upsert.row["model"],
                    "leaderboard_n_examples": int(upsert.row["n_examples"]),
                    "leaderboard_kept": upsert.kept_because})
    return summary


@torch.inference_mode()
def check_decision_rule(model: torch.nn.Module, x: torch.Tensor, pred: torch.Tensor,
                        batch_size: int, device: torch.device) -> None:
    """A third-party model's logits must encode its own `decision_rule` (METHODS §2):
    the attacks read the logits, so otherwise they attack another classifier."""
    if not getattr(model, "has_rule", False):
        return
    native = torch.cat([model.native_predict(x[i:i + batch_size].to(device)).cpu()
                        for i in range(0, len(x), batch_size)])
    differ = int((native != pred).sum())
    if differ:
        raise RobbenchError(f"the model's logits disagree with its decision_rule on {differ} of "
                            f"{len(x)} clean test images; its argmax must equal the decision "
                            f"rule, ties included, or the attacks measure another classifier")


def output_paths(req: EvalRequest, external: bool, dataset: str, norm: str, eps: float,
                 protocol_eps: float) -> tuple[Path, Path]:
    """(runs dir, leaderboard CSV). A leaderboard is built from one store, so without
    --leaderboard the CSV is the one of the runs dir in use: the committed leaderboards/
    only for the committed runs/, `DIR/leaderboards/` for any other --runs-dir (a scratch
    eval must never rewrite a published row). Third-party runs stay out of the committed
    store and leaderboards unless asked."""
    runs_dir = Path(req.runs_dir) if req.runs_dir is not None else Path(
        EXTERNAL_RUNS_DIR if external else RUNS_DIR)
    if req.leaderboard is not None:
        return runs_dir, Path(req.leaderboard)
    home = [EXTERNAL_RUNS_DIR, RUNS_DIR] if external else [RUNS_DIR]
    if any(_same_dir(runs_dir, Path(d)) for d in home):
        root = Path(EXTERNAL_LEADERBOARD_DIR if external else LEADERBOARD_DIR)
    else:
        root = runs_dir / LEADERBOARD_DIR
    return runs_dir, default_path(root, dataset, norm, eps, protocol_eps)


def _same_dir(a: Path, b: Path) -> bool:
    return Path(os.path.abspath(a)) == Path(os.path.abspath(b)) or (
        a.exists() and b.exists() and a.resolve() == b.resolve())


def check_paths(runs_dir: Path, leaderboard: Path) -> None:
    """Bad --runs-dir / --leaderboard paths, and a leaderboard that fails validation,
    are errors before any work."""
    if runs_dir.exists() and not runs_dir.is_dir():
        raise RobbenchError(f"--runs-dir {runs_dir} is not a directory")
    if leaderboard.is_dir():
        raise RobbenchError(f"--leaderboard {leaderboard} is a directory, not a CSV file")
    if leaderboard.exists():
        read_table(leaderboard)


def validate_run(store: RunStore) -> None:
    """Reads (and so validates) every record of the run."""
    for attack_id in store.attack_ids():
        store.load_attack(attack_id)
    store.load_clean()
    store.load_model_checks()


def versions(device: torch.device | None = None) -> dict[str, str]:
    """Provenance of a record: package versions and, for attack rows, the device."""
    found = {"robbench": VERSION, "torch": torch.__version__,
             "python": platform.python_version()}
    if device is not None:
        found["device"] = (f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                           else device.type)
    return found


@torch.inference_mode()
def clean_predictions(model: torch.nn.Module, x: torch.Tensor, batch_size: int,
                      device: torch.device) -> torch.Tensor:
    """Argmax of the logits. Non-finite logits are refused: their argmax is arbitrary,
    their gradients are NaN, and no record or diagnostic can hold them."""
    preds = []
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(device))
        bad = (~torch.isfinite(logits)).any(dim=1).nonzero()
        if len(bad):
            raise RobbenchError(f"the model returned NaN or infinite logits on clean test image "
                                f"{i + int(bad[0])}; it cannot be evaluated")
        preds.append(logits.argmax(dim=1).cpu())
    return torch.cat(preds)


def run_attack(attack: Attack, model: torch.nn.Module, store: RunStore, x: torch.Tensor,
               y: torch.Tensor, correct: torch.Tensor, eps: float, req: EvalRequest,
               device: torch.device) -> None:
    """Attacks the clean-correct samples this run dir has no row for yet. Each batch's
    rows go to disk with the re-check of their reported success (silent success)."""
    params, provenance = attack.params(), versions(device)
    done = set(store.start_attack(attack.id, params, replace=attack.id in req.recompute)["index"].tolist())
    todo = torch.tensor([i for i in range(len(y)) if i not in done], dtype=torch.int64)
    wrong = todo[~correct[todo]]
    if len(wrong):  # misclassified already: the clean input is the adversarial example
        store.append_attack(attack.id, params, wrong, trivial_result(x[wrong]), 0.0, provenance)
    todo = todo[correct[todo]]
    bar = tqdm(total=len(todo), desc=attack.id, unit="img", leave=False,
               disable=None if req.progress else True)
    for idx, result, seconds in attack_batches(attack, model, x, y, todo, eps, req, device):
        mismatch = success_mismatch(model, x[idx].to(device), y[idx].to(device), result, eps,
                                    attack.norm, attack.minimum_norm)
        store.append_attack(attack.id, params, idx, result, seconds, provenance,
                            mismatch=mismatch.cpu())
        bar.update(len(idx))
    bar.close()


def attack_batches(attack: Attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   todo: torch.Tensor, eps: float, req: EvalRequest, device: torch.device
                   ) -> Iterator[tuple[torch.Tensor, AttackResult, float]]:
    """(sample indices, result, seconds) per finished batch, here or on Ray."""
    if req.backend == "ray":
        yield from sharded_attack(attack, req.model_id, req.checkpoint, x, y, todo, eps, req.seed,
                                  req.batch_size, str(device), req.shards, req.address)
        return
    yield from run_in_batches(attack, model, x[todo], y[todo], todo, eps=eps, seed=req.seed,
                              batch_size=req.batch_size, device=device)


def trivial_result(x: torch.Tensor) -> AttackResult:
    """Clean-misclassified samples: the input itself is the adversarial, norm 0."""
    zeros = torch.zeros(len(x), dtype=torch.int64)
    return AttackResult(x_adv=x, success=torch.ones(len(x), dtype=torch.bool),
                        norm=torch.zeros(len(x)), n_forward=zeros, n_backward=zeros.clone())
