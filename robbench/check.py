"""`robbench check`: re-evaluates a checkpoint with exactly the attacks, seed, ε and
samples recorded in its leaderboard row, in a fresh temporary runs dir, and fails when
clean or a robust accuracy falls below the recorded one by more than a tolerance."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model_zoo.zoo import MODELS
from robbench.attacks import ATTACKS
from robbench.config import DEFAULT_BATCH_SIZE, LEADERBOARD_DIR, NORMS, THREAT_DEFAULTS
from robbench.errors import RobbenchError
from robbench.evaluate import EvalRequest, evaluate
from robbench.leaderboard import attack_columns, is_missing, read_table

Z_95_ONE_SIDED = 1.645


def auto_tolerance(recorded_pct: float, n: int) -> float:
    """One-sided 95% binomial bound in points, 100·1.645·sqrt(p(1−p)/n) with p the
    recorded accuracy, never below one sample (100/n) so p ∈ {0, 1} still allows one."""
    if n <= 0:
        raise RobbenchError(f"n_examples must be positive, got {n}")
    p = min(max(recorded_pct / 100.0, 0.0), 1.0)
    return max(100.0 * Z_95_ONE_SIDED * math.sqrt(p * (1.0 - p) / n), 100.0 / n)


def parse_tolerance(text: str) -> float | None:
    """None for 'auto', else a non-negative number of percentage points."""
    if str(text).strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value < 0:
        raise RobbenchError(f"--tolerance must be 'auto' or a number of points >= 0, got {text!r}")
    return value


def find_row(model_id: str, leaderboard: Path | None) -> tuple[Path, dict[str, Any]]:
    """The model's row in `leaderboard`, or by default in leaderboards/<dataset>-Linf.csv
    (then -L2.csv)."""
    if leaderboard is not None:
        candidates = [Path(leaderboard)]
        if not candidates[0].is_file():
            raise RobbenchError(f"leaderboard {leaderboard} does not exist")
    else:
        dataset = MODELS.get(model_id).dataset
        candidates = [Path(LEADERBOARD_DIR) / f"{dataset}-{norm}.csv" for norm in NORMS]
    for path in candidates:
        if not path.is_file():
            continue
        table = read_table(path)
        if "model" not in table.columns:
            raise RobbenchError(f"{path} is not a leaderboard (no model column)")
        rows = table[table["model"] == model_id]
        if len(rows):
            return path, {c: rows.iloc[0][c] for c in table.columns}
    where = " or ".join(str(p) for p in candidates)
    raise RobbenchError(f"no row for model {model_id!r} in {where}; record one with "
                        f"`robbench eval --model {model_id} --attacks ...` or pass --leaderboard CSV")


@dataclass
class Metric:
    metric: str
    recorded: float
    measured: float
    tolerance: float
    ok: bool


@dataclass
class CheckResult:
    model: str
    leaderboard: str
    checkpoint: str
    checkpoint_sha256: str
    recorded_checkpoint_sha256: str
    threat_model: str
    eps: float
    n_examples: int
    seed: int
    attacks: list[str]
    tolerance: str  # "auto" or the points given
    passed: bool
    metrics: list[Metric] = field(default_factory=list)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _required(row: dict[str, Any], column: str, path: Path) -> Any:
    if column not in row or is_missing(row[column]):
        raise RobbenchError(f"the row of {row.get('model')!r} in {path} has no {column}")
    return row[column]


def row_request(row: dict[str, Any], path: Path) -> tuple[list[str], str, float | None, int, int]:
    """(attacks, norm, eps or None for the protocol ε, n_examples, seed) of a row."""
    if row.get("source") == "paper":
        raise RobbenchError(f"the row of {row['model']!r} in {path} is a paper's reported "
                            f"numbers (source=paper); only measured rows can be checked")
    norm = str(_required(row, "threat_model", path))
    if norm not in NORMS:
        raise RobbenchError(f"the row of {row['model']!r} in {path} has threat_model {norm!r}")
    attacks = [c for c in attack_columns(list(row)) if not is_missing(row[c])]
    if not attacks:
        raise RobbenchError(f"the row of {row['model']!r} in {path} records no attack")
    for attack_id in attacks:
        attack = ATTACKS.get(attack_id)
        if attack.norm != norm:
            raise RobbenchError(f"the row of {row['model']!r} in {path} is {norm} but records "
                                f"{attack_id} ({attack.norm})")
    eps = float(_required(row, "eps", path))
    dataset = MODELS.get(row["model"]).dataset
    proto = THREAT_DEFAULTS[dataset].eps(norm)
    if abs(eps - proto) < 1e-6:  # rows round ε to 6 decimals (8/255 -> 0.031373)
        eps = None
    n = _required(row, "n_examples", path)
    seed = _required(row, "seed", path)
    return attacks, norm, eps, int(n), int(seed)


def check(model_id: str, checkpoint: str | None = None, leaderboard: Path | None = None,
          tolerance: float | None = None, device: str = "cpu", data_root: str | None = None,
          batch_size: int = DEFAULT_BATCH_SIZE) -> CheckResult:
    entry = MODELS.get(model_id)
    path, row = find_row(model_id, leaderboard)
    if not is_missing(row.get("dataset")) and row["dataset"] != entry.dataset:
        raise RobbenchError(f"the row of {model_id!r} in {path} is for dataset {row['dataset']!r}, "
                            f"the model is on {entry.dataset!r}")
    attacks, norm, eps, n, seed = row_request(row, path)
    with tempfile.TemporaryDirectory(prefix="robbench-check-") as tmp:
        # a fresh runs dir (nothing cached is reused) and a scratch leaderboard
        summary = evaluate(EvalRequest(
            model_id=model_id, attacks=attacks, n_examples=n, eps=eps, seed=seed,
            batch_size=batch_size, device=device, checkpoint=checkpoint, data_root=data_root,
            runs_dir=Path(tmp) / "runs", leaderboard=Path(tmp) / "leaderboard.csv",
            progress=False))
    measured = {"clean_acc": summary["clean_acc"], "worst_case_acc": summary["worst_case_acc"],
                **{a: summary["attacks"][a]["robust_acc"] for a in attacks}}
    metrics = []
    for name in ["clean_acc", *attacks, "worst_case_acc"]:
        recorded = float(_required(row, name, path))
        tol = auto_tolerance(recorded, n) if tolerance is None else tolerance
        metrics.append(Metric(name, recorded, measured[name], tol,
                              ok=measured[name] >= recorded - tol - 1e-9))
    failed = [m for m in metrics if not m.ok]
    reason = ""
    if failed:
        worst = min(failed, key=lambda m: m.measured - m.recorded + m.tolerance)
        reason = (f"{worst.metric} dropped to {worst.measured:.2f}% from the recorded "
                  f"{worst.recorded:.2f}%, more than the tolerance of {worst.tolerance:.2f} points "
                  f"(n={n}, seed={seed}, {norm} eps={summary['eps']:.6g}, {path})")
        if len(failed) > 1:
            reason += f"; also below: {', '.join(m.metric for m in failed if m is not worst)}"
    return CheckResult(
        model=model_id, leaderboard=str(path),
        checkpoint=str(checkpoint) if checkpoint else str(entry.checkpoint_path),
        checkpoint_sha256=summary["checkpoint_sha256"],
        recorded_checkpoint_sha256="" if is_missing(row.get("checkpoint_sha256"))
        else str(row["checkpoint_sha256"]),
        threat_model=norm, eps=summary["eps"], n_examples=n, seed=seed, attacks=attacks,
        tolerance="auto" if tolerance is None else f"{tolerance:g}", passed=not failed,
        metrics=metrics, reason=reason)
