"""`robbench check`: a gate that a checkpoint passes only if it still earns its leaderboard
row, and that gradient masking cannot pass.

The checkpoint is re-evaluated with exactly the attacks, seed, ε and samples recorded in
its row, in a fresh temporary runs dir, plus (by default) the strongest attacks for the
defense that the row lacks: its adaptive attacks (`adaptive`) and AutoAttack (`aa`, or
`aa-l2` for L2 rows). It fails, with one reason line, when

(d) the checkpoint's configuration differs from the manifest's (checked from the header
    before anything is attacked, robbench.evaluation.checkpoint_config): architecture, defense, dataset, feature_dim, and the
    defense parameters the manifest fixes, the decision rule included (e.g. ClusTR's
    d_near); `allow_params` lets defense-parameter differences through. Learned
    statistics (centres, σ²) are tensors in the state dict and are not compared;
(a) clean, an attack's or the worst-case accuracy falls below the recorded one by more
    than the tolerance (the measured worst case includes the strong attacks);
(c) the masking signature: a gradient-based attack's accuracy rises beyond the tolerance
    while the worst case does not (an improvement only the weaker attacks see);
(b) the run raises an unreliable flag (robbench.evaluation.diagnostics) of a kind the row did not
    have: kinds, not texts, are compared, so "zero CE input gradient on 92% ..." on
    record covers "... on 93% ...".
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robbench.attacks import ATTACKS
from robbench.attacks.autoattack import AutoAttackRun
from robbench.attacks.transfer import Transfer
from robbench.config import DEFAULT_BATCH_SIZE, LEADERBOARD_DIR, NORMS, THREAT_DEFAULTS
from robbench.errors import RobbenchError
from robbench.evaluation.checkpoint_config import config_check
from robbench.evaluation.evaluator import EvalRequest, evaluate
from robbench.store.table import attack_columns, is_missing, read_table
from robbench.zoo.checkpoints import sha256_file
from robbench.zoo.lookup import MODELS

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


def _row_position(rows: Any, wanted: str | None, zoo: str | None) -> int:
    """A table may hold several rows of one model (one per checkpoint, ε and seed): the
    claim to check is the row the checked checkpoint earned itself, else the zoo
    checkpoint's row (a new checkpoint must still earn what the zoo's did), a measured
    one first; without either, the first row."""
    shas = [None if is_missing(v) else str(v) for v in rows.get("checkpoint_sha256", [None] * len(rows))]
    sources = [None if is_missing(v) else str(v) for v in rows.get("source", [None] * len(rows))]
    ranked = sorted(range(len(rows)), key=lambda i: (wanted is None or shas[i] != wanted,
                                                     zoo is None or shas[i] != zoo,
                                                     sources[i] == "paper", i))
    return ranked[0]


def find_row(model_id: str, leaderboard: Path | None,
             checkpoint_sha256: str | None = None) -> tuple[Path, dict[str, Any]]:
    """The row of the model (or of its checkpoint with this sha256: a user's checkpoint
    earns the row `<model>@<sha256[:12]>`) in `leaderboard`, or by default in
    leaderboards/<dataset>-Linf.csv (then -L2.csv)."""
    zoo = MODELS.get(model_id).checkpoint_sha256
    wanted = checkpoint_sha256 or zoo
    ids = {model_id} | ({f"{model_id}@{wanted[:12]}"} if wanted else set())
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
        rows = table[table["model"].isin(ids)]
        if len(rows):
            return path, {c: rows.iloc[_row_position(rows, wanted, zoo)][c] for c in table.columns}
    where = " or ".join(str(p) for p in candidates)
    raise RobbenchError(f"no row for model {model_id!r} in {where}; record one with "
                        f"`robbench eval --model {model_id} --attacks ...` or pass --leaderboard CSV")


# --- which attacks ----------------------------------------------------------------------
# The strongest attacks for a defense, by family, one id per threat model: its adaptive
# attacks (`adaptive` resolves to the attacks aimed at the defense's own loss) and
# AutoAttack. Ids not registered (there is no L2 adaptive suite) are skipped.
STRONG_ATTACKS: dict[str, tuple[str, ...]] = {"Linf": ("adaptive", "aa"), "L2": ("adaptive-l2", "aa-l2")}


def strong_attacks(norm: str, recorded: list[str]) -> list[str]:
    """The strong attacks for `norm` the row has not recorded, in STRONG_ATTACKS order."""
    return [a for a in STRONG_ATTACKS.get(norm, ()) if a in ATTACKS and a not in recorded
            and ATTACKS.get(a).norm == norm]


def gradient_based(attack_id: str) -> bool:
    """Whether the attack follows the checked model's own gradients: everything but
    Square (score-based) and transfer (gradients of a substitute)."""
    attack = ATTACKS.get(attack_id)
    if isinstance(attack, Transfer):
        return False
    return not (isinstance(attack, AutoAttackRun) and attack.version == "custom"
                and bool(attack.attacks) and set(attack.attacks) <= {"square"})


# --- (b) unreliable flags --------------------------------------------------------------------
# The kind of a diagnostics reason: (check, detail) from its wording, numbers left out, so
# a recorded "zero CE input gradient on 92% of 64 clean inputs" covers "... 93% ...". A
# reason none of these describe is its text with every number replaced by '#'.
FLAG_KINDS: tuple[tuple[str, str, str], ...] = (
    ("gradients", "zero", r"\bzero\b.*\bgradient"),
    ("gradients", "nan", r"\bnan\b.*\bgradient"),
    ("randomised", "", r"\brandomi[sz]ed\b"),
    ("probabilities", "", r"\bprobabilit"),
    ("large-eps", "", r"\bchance\b"),
    ("black-box", "{0}", r"^(?:black-box|transfer)\s+(\S+)\s+beats\b"),
    ("more-compute", "{0}>{1}", r"^(\S+)\s+leaves\b.*\bmore samples robust than\s+(\S+)"),
    ("silent-success", "{0}", r"^(\S+):\s+reported success differs"),
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?", re.IGNORECASE)


def flag_kind(reason: str, check: str | None = None) -> tuple[str | None, str]:
    text = str(reason).strip()
    for name, detail, pattern in FLAG_KINDS:
        found = re.search(pattern, text, re.IGNORECASE)
        if found:
            return name, detail.format(*found.groups())
    return check, _NUMBER.sub("#", text)


def recorded_reasons(row: dict[str, Any]) -> list[str]:
    """The row's `unreliable` cell split into its reasons ("; "-joined)."""
    text = row.get("unreliable")
    if is_missing(text):
        return []
    return [r.strip() for r in str(text).split("; ") if r.strip()]


def new_flags(flags: list[dict[str, str]], recorded: list[str]) -> list[dict[str, str]]:
    """The flags whose kind none of the recorded reasons has."""
    kinds = [flag_kind(r) for r in recorded]
    out = []
    for flag in flags:
        check, detail = flag_kind(flag["reason"], flag.get("check"))
        if not any(d == detail and (c is None or check is None or c == check) for c, d in kinds):
            out.append(flag)
    return out


# --- the check --------------------------------------------------------------------------------
@dataclass
class Metric:
    metric: str
    recorded: float | None  # None: an attack the row did not record (a strong one added)
    measured: float
    tolerance: float | None
    ok: bool
    recorded_in_row: bool = True
    status: str = "ok"  # ok | dropped | rose (the masking signature) | not recorded


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
    attacks: list[str]  # what the row recorded
    tolerance: str  # "auto" or the points given
    passed: bool
    metrics: list[Metric] = field(default_factory=list)
    reason: str = ""
    strong: bool = True
    strong_attacks: list[str] = field(default_factory=list)  # run beyond the row's attacks
    allow_params: bool = False
    config_differences: list[str] = field(default_factory=list)
    unreliable_recorded: list[str] = field(default_factory=list)
    unreliable_measured: list[dict[str, str]] = field(default_factory=list)
    unreliable_new: list[dict[str, str]] = field(default_factory=list)
    checks_fired: list[str] = field(default_factory=list)  # config, accuracy-drop, masking, unreliable
    evaluated: bool = True

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
    dataset = MODELS.get(str(row["model"]).split("@")[0]).dataset
    proto = THREAT_DEFAULTS[dataset].eps(norm)
    if eps == proto:  # rows carry ε exactly
        eps = None
    n = _required(row, "n_examples", path)
    seed = _required(row, "seed", path)
    return attacks, norm, eps, int(n), int(seed)


def _recorded_number(row: dict[str, Any], column: str, path: Path) -> float:
    value = _required(row, column, path)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RobbenchError(f"the row of {row.get('model')!r} in {path} has {column} "
                            f"{value!r}, not a number") from None


def check(model_id: str, checkpoint: str | None = None, leaderboard: Path | None = None,
          tolerance: float | None = None, device: str = "cpu", data_root: str | None = None,
          batch_size: int = DEFAULT_BATCH_SIZE, strong: bool = True,
          allow_params: bool = False) -> CheckResult:
    entry = MODELS.get(model_id)
    sha = sha256_file(checkpoint) if checkpoint and Path(checkpoint).is_file() else None
    path, row = find_row(model_id, leaderboard, sha)
    if not is_missing(row.get("dataset")) and row["dataset"] != entry.dataset:
        raise RobbenchError(f"the row of {model_id!r} in {path} is for dataset {row['dataset']!r}, "
                            f"the model is on {entry.dataset!r}")
    attacks, norm, eps, n, seed = row_request(row, path)
    recorded = {name: _recorded_number(row, name, path)
                for name in ["clean_acc", *attacks, "worst_case_acc"]}
    extras = strong_attacks(norm, attacks) if strong else []
    base = dict(
        model=model_id, leaderboard=str(path),
        recorded_checkpoint_sha256="" if is_missing(row.get("checkpoint_sha256"))
        else str(row["checkpoint_sha256"]),
        threat_model=norm, n_examples=n, seed=seed, attacks=attacks,
        tolerance="auto" if tolerance is None else f"{tolerance:g}", strong=strong,
        strong_attacks=extras, allow_params=allow_params,
        unreliable_recorded=recorded_reasons(row))

    # (d) before anything is attacked
    config = config_check(entry, checkpoint)
    base.update(checkpoint=config.checkpoint, config_differences=config.fixed + config.params)
    refused = config.fixed + ([] if allow_params else config.params)
    if refused:
        reason = (f"checkpoint configuration differs from the manifest's: {', '.join(refused)}"
                  + ("" if config.fixed or not config.params
                     else "; pass --allow-params to check it anyway"))
        return CheckResult(**base, checkpoint_sha256=config.sha256,
                           eps=THREAT_DEFAULTS[entry.dataset].eps(norm) if eps is None else eps,
                           passed=False, reason=reason, checks_fired=["config"], evaluated=False)

    with tempfile.TemporaryDirectory(prefix="robbench-check-") as tmp:
        # a fresh runs dir (nothing cached is reused) and a scratch leaderboard
        summary = evaluate(EvalRequest(
            model_id=model_id, attacks=[*attacks, *extras], n_examples=n, eps=eps, seed=seed,
            batch_size=batch_size, device=device, checkpoint=checkpoint, data_root=data_root,
            runs_dir=Path(tmp) / "runs", leaderboard=Path(tmp) / "leaderboard.csv",
            progress=False))
    measured = {"clean_acc": summary["clean_acc"], "worst_case_acc": summary["worst_case_acc"],
                **{a: summary["attacks"][a]["robust_acc"] for a in [*attacks, *extras]}}

    def tol(name: str) -> float:
        return auto_tolerance(recorded[name], n) if tolerance is None else tolerance

    metrics = []
    for name in ["clean_acc", *attacks]:
        metrics.append(Metric(name, recorded[name], measured[name], tol(name),
                              ok=measured[name] >= recorded[name] - tol(name) - 1e-9))
    for name in extras:
        metrics.append(Metric(name, None, measured[name], None, ok=True, recorded_in_row=False,
                              status="not recorded"))
    worst = Metric("worst_case_acc", recorded["worst_case_acc"], measured["worst_case_acc"],
                   tol("worst_case_acc"),
                   ok=measured["worst_case_acc"] >= recorded["worst_case_acc"] - tol("worst_case_acc") - 1e-9)
    metrics.append(worst)
    for m in metrics:
        if m.recorded_in_row and not m.ok:
            m.status = "dropped"

    parts, fired = [], []
    eps_text = f"n={n}, seed={seed}, {norm} eps={summary['eps']:.6g}, {path}"
    # (a) drops
    failed = [m for m in metrics if m.status == "dropped"]
    if failed:
        fired.append("accuracy-drop")
        low = min(failed, key=lambda m: m.measured - m.recorded + m.tolerance)
        text = (f"{low.metric} dropped to {low.measured:.2f}% from the recorded "
                f"{low.recorded:.2f}%, more than the tolerance of {low.tolerance:.2f} points "
                f"({eps_text})")
        if not worst.ok and extras:
            text += (" — the worst case includes the strong attacks the row lacks ("
                     + ", ".join(f"{a} {measured[a]:.2f}%" for a in extras) + ")")
        if len(failed) > 1:
            text += f"; also below: {', '.join(m.metric for m in failed if m is not low)}"
        parts.append(text)
    # (c) the masking signature
    if measured["worst_case_acc"] <= recorded["worst_case_acc"] + tol("worst_case_acc") + 1e-9:
        rose = [m for m in metrics if m.recorded_in_row and m.metric in attacks
                and gradient_based(m.metric) and m.measured > m.recorded + m.tolerance + 1e-9]
        for m in rose:
            m.ok, m.status = False, "rose"
        if rose:
            fired.append("masking")
            parts.append(
                "masking signature: " + ", ".join(
                    f"{m.metric} rose to {m.measured:.2f}% from the recorded {m.recorded:.2f}% "
                    f"(tolerance {m.tolerance:.2f})" for m in rose)
                + f" while the worst case did not rise ({worst.measured:.2f}%, recorded "
                  f"{worst.recorded:.2f}%): an improvement only the weaker attacks see")
    # (b) unreliable flags the row did not have
    flags = [{"check": str(f.get("check", "")), "reason": str(f.get("reason", ""))}
             for f in summary.get("unreliable") or []]
    new = new_flags(flags, base["unreliable_recorded"])
    if new:
        fired.append("unreliable")
        parts.append("unreliable evaluation the row did not flag: "
                     + ", ".join(f"[{f['check']}] {f['reason']}" for f in new))
    return CheckResult(**base, checkpoint_sha256=summary["checkpoint_sha256"], eps=summary["eps"],
                       passed=not parts, metrics=metrics, reason="; ".join(parts),
                       unreliable_measured=flags, unreliable_new=new, checks_fired=fired)
