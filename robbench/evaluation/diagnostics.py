"""Checks that flag an unreliable evaluation (METHODS §5), run by every `robbench eval`.

Each check is one small function with one behaviour. They come in three kinds:

- model checks, a few extra passes on at most `SUBSAMPLE` (64) test points:
  `check_gradients` (zero or NaN input gradients of the CE loss),
  `check_randomised` (two forward passes disagree), `check_probabilities`
  (outputs are probability vectors, not logits), `check_large_eps` (PGD-CE at a
  very large ε does not bring accuracy down to chance);
- record checks, from the per-sample results on disk: `check_gradient_free` (no
  gradient-free attack on record), `check_black_box` (Square or
  transfer beats the white-box attacks of the run), `check_more_compute` (an attack
  with more steps or restarts leaves a higher accuracy than the same attack with
  fewer);
- a per-batch check made while attacking: the success an attack reports must equal
  "the returned point is misclassified and within ε" (`success_mismatch`). evaluate
  records the re-check with each batch's rows (the attack record's `mismatch`
  column), so a resumed run keeps the checks of its earlier batches, and
  `check_silent_success` reads them.

After the attacks, `run_model_checks` stores the model checks in the run
(`diagnostics.json`: every check's measurements, the flags, the samples with zero or
NaN gradients), keyed by the samples they used. `unreliable_flags` then gives a run's
flags from the store alone — the stored model checks and the record checks — so a
leaderboard row rebuilt later carries exactly the flags its eval reported. They go
into the JSON summary as `unreliable` and, joined with "; ", into the leaderboard
row's `unreliable` column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robbench.attacks.base import ATTACKS, AttackResult, perturbation_norm, sample_generator
from robbench.attacks.pgd import ascent_step, random_start
from robbench.store.runs import RunStore, norm_slack

SUBSAMPLE = 64  # points used by the model checks
ZERO_GRADIENT_SHARE = 0.10  # flag when more than this share of input gradients is exactly 0
RANDOMISED_ATOL, RANDOMISED_RTOL = 1e-5, 1e-4  # looser than float noise, far below any randomisation
PROBABILITY_TOL = 1e-3
LARGE_EPS_LINF = 0.5  # the L2 budget is LARGE_EPS_LINF * sqrt(input size): the Linf ball's corner
LARGE_EPS_STEPS = 20
CHANCE_MARGIN = 0.10  # accuracy at the large ε must be ≤ chance + 10 points
BLACK_BOX_KINDS = ("score-based", "transfer")  # Attack.kind: no gradient of the attacked model
BEAT_MARGIN_POINTS = 1.0



@dataclass
class CheckResult:
    """One check's outcome: what it measured (`details`, always recorded) and one
    short reason per problem found (empty: passed). `skipped` says why it did not run."""

    check: str
    details: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    skipped: str | None = None

    def flags(self) -> list[dict[str, str]]:
        return [{"check": self.check, "reason": r} for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"flagged": bool(self.reasons), **self.details}
        if self.skipped:
            out["skipped"] = self.skipped
        return out


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


# --- model checks --------------------------------------------------------------
def input_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x CE(z(x), y) per sample; all zeros where the output does not depend on x
    through autograd at all (e.g. a hard argmax)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y, reduction="sum")
        if not loss.requires_grad:
            return torch.zeros_like(x)
        grad, = torch.autograd.grad(loss, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def gradient_status(model: torch.nn.Module, x: torch.Tensor,
                    y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(zero, nan) per sample: the CE input gradient is exactly zero / has a NaN."""
    flat = input_gradients(model, x, y).flatten(1)
    nan = flat.isnan().any(dim=1)
    zero = ~nan & (flat == 0).all(dim=1)
    return zero.cpu(), nan.cpu()


def check_gradients(zero: torch.Tensor, nan: torch.Tensor) -> CheckResult:
    """(a) Zero or NaN input gradients of the CE loss: attacks that follow them
    cannot move, and the model looks robust without being so."""
    n = len(zero)
    share = float(zero.float().mean()) if n else 0.0
    result = CheckResult("gradients", {"n": n, "zero_share": share, "nan_count": int(nan.sum())})
    if share > ZERO_GRADIENT_SHARE:
        result.reasons.append(f"zero CE input gradient on {_pct(share)} of {n} clean inputs")
    if nan.any():
        result.reasons.append(f"NaN CE input gradient on {int(nan.sum())} of {n} clean inputs")
    return result


@torch.no_grad()
def check_randomised(model: torch.nn.Module, x: torch.Tensor) -> CheckResult:
    """(b) Randomised outputs: two forward passes on the same inputs differ."""
    first, second = model(x), model(x)
    diff = float((first - second).abs().max()) if first.numel() else 0.0
    result = CheckResult("randomised", {"n": len(x), "max_abs_diff": diff})
    if not torch.allclose(first, second, rtol=RANDOMISED_RTOL, atol=RANDOMISED_ATOL):
        result.reasons.append(f"randomised outputs: two forward passes differ by up to {diff:.3g}")
    return result


@torch.no_grad()
def check_probabilities(model: torch.nn.Module, x: torch.Tensor) -> CheckResult:
    """(c) Probability-valued outputs: every row non-negative and summing to 1. CE on
    probabilities is a squashed loss; the wrapper must return logits (METHODS §2)."""
    z = model(x)
    sums = z.sum(dim=1)
    is_prob = bool((z >= 0).all() and ((sums - 1).abs() <= PROBABILITY_TOL).all()) and len(z) > 0
    result = CheckResult("probabilities", {
        "n": len(x), "min_output": float(z.min()) if z.numel() else None,
        "max_row_sum_error": float((sums - 1).abs().max()) if len(z) else None})
    if is_prob:
        result.reasons.append("outputs are probabilities (rows >= 0, summing to 1), not logits")
    return result


def large_eps(norm: str, input_shape: tuple[int, ...]) -> float:
    return LARGE_EPS_LINF if norm == "Linf" else LARGE_EPS_LINF * math.sqrt(math.prod(input_shape))


def large_eps_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                       norm: str, sample_ids: torch.Tensor, seed: int,
                       steps: int = LARGE_EPS_STEPS) -> float:
    """Share of samples PGD-CE (1 restart, random start, step ε/4) never fools: every
    iterate is checked. Its own loop, not the registered PGD: a diagnostic must not
    spend (or be mistaken for) the run's attack budget."""
    gens = [sample_generator(seed, f"diagnostics-large-eps-{norm}", int(i), 0) for i in sample_ids]
    xk = random_start(x, eps, norm, gens)
    fooled = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    for k in range(steps + 1):
        xk.requires_grad_(k < steps)
        with torch.set_grad_enabled(k < steps):
            logits = model(xk)
            fooled |= logits.argmax(dim=1) != y
            if k == steps:
                break
            loss = F.cross_entropy(logits, y, reduction="sum")
            if not loss.requires_grad:
                break  # nothing to follow: the random start was all PGD could do
            grad, = torch.autograd.grad(loss, xk, allow_unused=True)
        if grad is None:
            break
        grad = torch.nan_to_num(grad)
        xk = ascent_step(xk.detach(), grad, x, eps / 4, eps, norm)
    return 1.0 - float(fooled.float().mean()) if len(y) else 0.0


def check_large_eps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, norm: str,
                    num_classes: int, sample_ids: torch.Tensor, seed: int) -> CheckResult:
    """(e) At a very large ε (Linf 0.5: any image can be turned into a flat grey one)
    PGD on clean-correct points must bring accuracy to chance; if it does not, the
    attack is not working (masked gradients, a broken loss)."""
    if len(y) == 0:
        return CheckResult("large-eps", skipped="no clean-correct sample")
    eps = large_eps(norm, tuple(x.shape[1:]))
    acc = large_eps_accuracy(model, x, y, eps, norm, sample_ids, seed)
    chance = 1.0 / num_classes
    result = CheckResult("large-eps", {"n": len(y), "eps": eps, "norm": norm, "steps": LARGE_EPS_STEPS,
                                       "accuracy": acc, "chance": chance})
    if acc > chance + CHANCE_MARGIN:
        result.reasons.append(f"PGD-CE at {norm} eps={eps:.3g} leaves {_pct(acc)} accuracy "
                              f"(chance {_pct(chance)}, {len(y)} points)")
    return result


# --- record checks (per-sample results on disk) ------------------------------------
def _successes(store: RunStore, attack_id: str, n: int) -> np.ndarray | None:
    found = store.load_attack(attack_id)
    if found is None:
        return None
    frame = found[0].set_index("index")
    if not set(range(n)) <= set(frame.index):
        return None
    return frame.loc[range(n), "success"].to_numpy(dtype=bool)


def _correct(store: RunStore, n: int) -> np.ndarray:
    return store.load_clean().set_index("index").loc[range(n), "correct"].to_numpy(dtype=bool)


def _has_gradient_free_stage(attack_id: str) -> bool:
    return attack_id in ATTACKS and ATTACKS.get(attack_id).gradient_free


def _is_black_box(attack_id: str) -> bool:
    """Square alone (any draw or length) or transfer: read from the attack's kind, so a
    new Square variant counts without a list to keep."""
    return attack_id in ATTACKS and ATTACKS.get(attack_id).kind in BLACK_BOX_KINDS


def check_black_box(store: RunStore, n: int, attack_ids: list[str]) -> CheckResult:
    """(d) Square or transfer beating the white-box attacks: per sample, the black-box
    attack fools clean-correct points that every white-box attack on record failed on,
    and that lowers the worst case over the white-box attacks by more than 1 point.
    A sign of masked gradients. Runs only when both kinds are on record.

    An attack with a gradient-free stage (AutoAttack, `fast`, a Square-then-APGD
    ensemble) is on neither side: its Square stage would count as white-box and hide
    the very breaks this check looks for."""
    black = [a for a in attack_ids if _is_black_box(a)]
    white = [a for a in attack_ids if not _is_black_box(a) and not _has_gradient_free_stage(a)]
    if not black or not white:
        return CheckResult("black-box", skipped="needs a black-box (square, transfer) and a "
                                                "white-box attack on record")
    correct = _correct(store, n)
    white_robust = correct.copy()
    for a in white:
        white_robust &= ~_successes(store, a, n)
    result = CheckResult("black-box", {"white_box": white, "black_box": black,
                                       "white_box_acc": 100.0 * white_robust.mean()})
    for a in black:
        extra = 100.0 * float((white_robust & _successes(store, a, n)).mean())
        result.details[f"{a}_extra_points"] = extra
        if extra > BEAT_MARGIN_POINTS:
            kind = "transfer" if a == "transfer" else "black-box"
            result.reasons.append(f"{kind} {a} beats the white-box attacks by {extra:.1f} points")
    return result


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("id", "steps", "restarts")}


def check_more_compute(store: RunStore, n: int, attack_ids: list[str]) -> CheckResult:
    """(f) More steps or restarts raising accuracy: two attacks on record identical but
    for steps/restarts (e.g. pgd20 and pgd100), where the one with at least as many of
    both leaves more than one sample more robust. The attacks share their random
    starts, so the stronger one should find everything the weaker one finds."""
    metas = {a: store.load_attack(a)[1].get("params", {}) for a in attack_ids}
    correct = _correct(store, n)
    result = CheckResult("more-compute", {"pairs": []})
    for weak in attack_ids:
        for strong in attack_ids:
            pw, ps = metas[weak], metas[strong]
            if weak == strong or not all(isinstance(p.get(k), int) for p in (pw, ps)
                                         for k in ("steps", "restarts")):
                continue
            if _comparable(pw) != _comparable(ps):
                continue
            if not (ps["steps"] >= pw["steps"] and ps["restarts"] >= pw["restarts"]):
                continue
            if (ps["steps"], ps["restarts"]) == (pw["steps"], pw["restarts"]):
                continue
            robust_weak = int((correct & ~_successes(store, weak, n)).sum())
            robust_strong = int((correct & ~_successes(store, strong, n)).sum())
            result.details["pairs"].append({"weaker": weak, "stronger": strong,
                                            "robust_weaker": robust_weak,
                                            "robust_stronger": robust_strong})
            if robust_strong - robust_weak > 1:
                result.reasons.append(
                    f"{strong} leaves {robust_strong - robust_weak} more samples robust than {weak}")
    if not result.details["pairs"]:
        result.skipped = "no two attacks on record differ only in steps or restarts"
    return result


# --- silent success: checked per batch while attacking ---------------------------------
@torch.no_grad()
def success_mismatch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                     result: AttackResult, eps: float, norm: str,
                     minimum_norm: bool = False) -> torch.Tensor:
    """(g) Per sample: the reported success differs from "the returned x_adv is
    misclassified and within ε". A success reported on a correctly classified (or
    out-of-budget) point is a false success; a misclassified in-budget point reported
    as a failure is a silent success (an adversarial example found but not counted).
    "Within ε" allows float rounding (SUCCESS_TOL, relative); for minimum-norm attacks,
    whose points may lie just beyond ε, a failure is only questioned when the point
    is inside ε by more than that margin."""
    x_adv = result.x_adv.to(x.device, x.dtype)
    fooled = (model(x_adv).argmax(dim=1) != y).cpu()
    size = perturbation_norm(x_adv - x, norm).cpu()
    slack = norm_slack(eps)
    inside = size <= eps + slack
    surely_inside = size <= eps - slack if minimum_norm else inside
    reported = result.success.cpu().bool()
    false_success = reported & ~(fooled & inside)
    silent = ~reported & fooled & surely_inside
    return false_success | silent


def _success_checks(store: RunStore, n: int, attack_id: str) -> tuple[int, list[int]]:
    """(samples < n whose success was re-checked, those whose check failed) of one attack."""
    rows = store.load_attack(attack_id)[0]
    rows = rows[rows["index"] < n]
    bad = rows[rows["mismatch"].fillna(False).astype(bool)]
    return int(rows["mismatch"].notna().sum()), sorted(bad["index"].tolist())


def success_mismatches(store: RunStore, n: int, attack_ids: list[str]) -> dict[str, list[int]]:
    """attack id -> sample indices (< n) whose reported success was not reproduced."""
    found = {a: _success_checks(store, n, a)[1] for a in attack_ids}
    return {a: bad for a, bad in found.items() if bad}


def check_silent_success(store: RunStore, n: int, attack_ids: list[str]) -> CheckResult:
    checks = {a: _success_checks(store, n, a) for a in attack_ids}
    result = CheckResult("silent-success", {
        "checked": {a: checked for a, (checked, _) in checks.items()},
        "mismatches": {a: len(bad) for a, (_, bad) in checks.items()}})
    for a, (_, bad) in checks.items():
        if bad:
            result.reasons.append(f"{a}: reported success differs from re-classification of its "
                                  f"returned points on {len(bad)} samples")
    return result


NO_GRADIENT_FREE = {"check": "gradient-free", "reason": "no gradient-free attack (Square) on record: "
                    "gradient attacks alone can all stall on the same masked loss"}


def check_gradient_free(attack_ids: list[str]) -> CheckResult:
    """A worst case with no gradient-free attack behind it is unchecked: on clustering
    heads every gradient attack can stop far outside ε where Square breaks the sample
    (METHODS §3), so such a row is flagged until one is on record."""
    free = [a for a in attack_ids if _has_gradient_free_stage(a)]
    result = CheckResult("gradient-free", {"gradient_free_attacks": free})
    if not free:
        result.reasons.append(NO_GRADIENT_FREE["reason"])
    return result


def check_adaptive_fallback(store: RunStore, n: int, attack_ids: list[str]) -> CheckResult:
    """A third-party model that exposes no training loss or features gets `adaptive` as
    CE, DLR and margin PGD on its logits only (robbench.evaluation.external); on a clustering
    defense those can miss what an attack on its own loss finds, so the run says so."""
    if "adaptive" not in attack_ids:
        return CheckResult("adaptive-fallback", skipped="adaptive is not on record")
    flags = store.load_attack("adaptive")[1]["flags"]
    result = CheckResult("adaptive-fallback", {"fallback": "adaptive:fallback" in flags})
    if result.details["fallback"]:
        result.reasons.append("adaptive fell back to CE, DLR and margin PGD: the model exposes no "
                              "training loss or features to attack")
    return result


# --- driver ---------------------------------------------------------------------------
def checked_samples(store: RunStore, n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """The samples the model checks use for a run of n: the first SUBSAMPLE, and the
    first SUBSAMPLE clean-correct ones; and the key their results are stored under."""
    sub = torch.arange(min(n, SUBSAMPLE))
    chosen = torch.tensor(_correct(store, n)).nonzero().squeeze(1)[:SUBSAMPLE]
    return sub, chosen, f"first{len(sub)}-correct{len(chosen)}"


def run_model_checks(model: torch.nn.Module, store: RunStore, x: torch.Tensor, y: torch.Tensor,
                     *, norm: str, seed: int, num_classes: int, device: torch.device,
                     keep: bool = True) -> list[dict[str, str]]:
    """Gradients, randomness, probabilities and large ε on the checked samples of the
    first len(y); returns their flags. With `keep` they are stored in the run
    (diagnostics.json) for the leaderboard row; stored results for the same samples
    are reused, so an eval that computes nothing new writes nothing."""
    sub, chosen, key = checked_samples(store, len(y))
    stored = store.load_model_checks().get(key)
    if stored is not None:
        return stored["flags"]
    model.eval()
    zero, nan = gradient_status(model, x[sub].to(device), y[sub].to(device))
    results = [
        check_gradients(zero, nan),
        check_randomised(model, x[sub].to(device)),
        check_probabilities(model, x[sub].to(device)),
        check_large_eps(model, x[chosen].to(device), y[chosen].to(device), norm, num_classes,
                        chosen, seed),
    ]
    flags = [f for r in results for f in r.flags()]
    if keep:
        store.save_model_checks(key, {
            "checks": {r.check: r.as_dict() for r in results}, "flags": flags,
            "zero_grad": sub[zero].tolist(), "nan_grad": sub[nan].tolist()})
    return flags


def record_checks(store: RunStore, n: int, attack_ids: list[str]) -> list[CheckResult]:
    """The checks computed from the per-sample records alone."""
    attack_ids = sorted(attack_ids)
    return [check_black_box(store, n, attack_ids), check_more_compute(store, n, attack_ids),
            check_silent_success(store, n, attack_ids), check_adaptive_fallback(store, n, attack_ids),
            check_gradient_free(attack_ids)]


MISSING_MODEL_CHECKS = {"check": "model-checks", "reason": "the model checks (gradients, "
                        "randomness, probabilities, large eps) are not on record for these samples"}


def unreliable_flags(store: RunStore, n: int, attack_ids: list[str],
                     model_flags: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """Every flag for the first n samples under these attacks: the model checks (given,
    or as stored; a flag saying so where none are) and the record checks. A leaderboard
    row's flags come from the store alone, whether `robbench eval` or `leaderboard
    build` writes it."""
    if model_flags is None:
        _, _, key = checked_samples(store, n)
        stored = store.load_model_checks().get(key)
        model_flags = list(stored["flags"]) if stored is not None else [MISSING_MODEL_CHECKS]
    return model_flags + [f for r in record_checks(store, n, attack_ids) for f in r.flags()]


def unreliable_text(flags: list[dict[str, str]]) -> str:
    """The leaderboard's `unreliable` cell: the short reasons, "; "-joined."""
    return "; ".join(f["reason"] for f in flags)
