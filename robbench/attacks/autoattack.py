"""AutoAttack (pyautoattack) and its components: APGD-CE, APGD-DLR, FAB-T, Square.

AutoAttack attacks only clean-correct points; clean-misclassified samples come back
with success True and norm 0. The returned points are clipped into the ε-ball and
[0, 1] and re-classified by the model: success is our own check, not AutoAttack's.

AutoAttack's reliability checks (randomised or probability-valued outputs, zero
gradients, Square beating the white-box attacks, ...) reach the user through three
channels: its 'auto-attack' logger, `warnings.warn` (components built without a
logger) and `print`. All three are captured during the run and turned into short
flags in `AttackResult.flags` (`flag_for`), so none is lost on stderr and none of
AutoAttack's output reaches our stdout.

Pass counts are batch totals split evenly over the samples (see minimum_norm). Like
any library attack, the randomness depends on the batch's composition, not only on
`seed` and the sample ids.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from pyautoattack import AutoAttack
from pyautoattack import checks as aa_checks
from pyautoattack.autopgd_base import APGDAttack

from robbench.attacks.base import Attack, AttackResult, perturbation_norm, register_attack
from robbench.attacks.minimum_norm import PassCounter, rng_devices, split_evenly
from robbench.attacks.pgd import project
from robbench.defenses import DefenseModel

FLAG_PATTERNS: tuple[tuple[str, str], ...] = (
    ("randomized defense", "aa:randomized-output"),
    ("probability distribution", "aa:softmax-output"),
    ("zero gradient", "aa:zero-gradients"),
    ("square attack has decreased", "aa:square-beats-white-box"),
    ("dynamic defense", "aa:dynamic-defense"),
    ("target classes", "aa:too-many-target-classes"),
    ("classes it is not possible", "aa:too-few-classes"),
    ("non-square image", "aa:non-square-image"),
)


def flag_for(message: str) -> str:
    """The flag for one AutoAttack warning; unknown ones keep their first words."""
    lowered = message.lower()
    for pattern, flag in FLAG_PATTERNS:
        if pattern in lowered:
            return flag
    return "aa:warning:" + "-".join(re.findall(r"[a-z0-9]+", lowered)[:5])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_messages() -> Iterator[list[str]]:
    """Collects AutoAttack's warnings from its logger, `warnings` and stdout; the
    list is filled when the block exits."""
    messages: list[str] = []
    logger = logging.getLogger("auto-attack")
    handler, old = _Records(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # drop its debug chatter, keep every warning
    logger.propagate = False
    stdout = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(stdout):
            warnings.simplefilter("always")
            yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old[0])
        logger.propagate = old[1]
    messages += handler.messages + [str(w.message) for w in caught]
    messages += [line for line in stdout.getvalue().splitlines() if line.strip()]


def set_apgd_steps(apgd: APGDAttack, steps: int) -> None:
    """APGD derives its checkpoint schedule from n_iter at construction: redo it."""
    apgd.n_iter = apgd.n_iter_orig = steps
    apgd.n_iter_2 = max(int(0.22 * steps), 1)
    apgd.n_iter_min = max(int(0.06 * steps), 1)
    apgd.size_decr = max(int(0.03 * steps), 1)


@dataclass(frozen=True)
class AutoAttackRun(Attack):
    """pyautoattack's `AutoAttack` with one version, or version="custom" with the
    components in `attacks`. Defaults are AutoAttack's own."""

    version: str = "standard"  # standard | plus | rand | custom
    attacks: tuple[str, ...] = ()  # components for version="custom"
    steps: int = 100  # APGD, APGD-T and FAB iterations
    restarts: int | None = None  # APGD(-CE/-DLR) restarts; None: the version's (1 standard/rand, 5 plus/custom)
    n_queries: int = 5000  # Square queries
    p_init: float = 0.8  # Square's initial square size fraction
    eot_iter: int | None = None  # APGD EOT samples; None: the version's (20 rand, else 1)
    n_target_classes: int = 9  # APGD-T / FAB-T targets (capped at classes - 1)

    @property
    def gradient_free(self) -> bool:
        """Square is a stage of the standard and plus versions (not of rand)."""
        return self.version in ("standard", "plus") or "square" in self.attacks

    @property
    def kind(self) -> str:
        if self.version != "custom" or len(self.attacks) > 1:
            return "ensemble"
        return "score-based" if self.attacks == ("square",) else "gradient"

    def describe(self) -> str:
        if self.version != "custom":
            return f"AutoAttack, {self.version} version"
        restarts = "" if self.restarts is None else f" x {self.restarts}"
        names = {"apgd-ce": f"APGD on cross-entropy, {self.steps} steps{restarts}",
                 "apgd-dlr": f"APGD on the DLR loss, {self.steps} steps{restarts}",
                 "apgd-t": f"targeted APGD, {self.n_target_classes} targets x {self.steps} steps",
                 "fab-t": f"targeted FAB, {self.n_target_classes} targets x {self.steps} steps",
                 "square": f"Square, {self.n_queries} queries"}
        return "AutoAttack's " + " + ".join(names.get(a, a) for a in self.attacks)

    def configure(self, adversary: AutoAttack, seed: int) -> None:
        """A subclass's last word on the configured `adversary` (a method, not a field:
        a new field would change the recorded parameters of every committed AutoAttack
        result)."""

    def run(self, model: DefenseModel, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            sample_ids: torch.Tensor, seed: int) -> AttackResult:
        n = len(y)
        counter = PassCounter(model)
        with torch.no_grad():
            logits = counter(x)
        clean_wrong = (logits.argmax(dim=1) != y).cpu()
        with captured_messages() as messages:
            components = list(self.attacks) if self.version == "custom" else None
            adversary = AutoAttack(counter, attacks=components, device=x.device, eps=eps,
                                   norm=self.norm, seed=seed, version=self.version)
            adversary.verbose = False
            for apgd in (adversary.apgd, adversary.apgd_targeted):
                set_apgd_steps(apgd, self.steps)
                if self.eot_iter is not None:
                    apgd.eot_iter = self.eot_iter
            if self.restarts is not None:
                adversary.apgd.n_restarts = self.restarts
            adversary.fab.n_iter = self.steps
            adversary.square.n_queries, adversary.square.p_init = self.n_queries, self.p_init
            targets = min(self.n_target_classes, logits.shape[1] - 1)
            adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
            self.configure(adversary, seed)
            for name in aa_checks.funcs:  # its dynamic-defense check never resets this global tally
                aa_checks.funcs[name] = 0
            with torch.random.fork_rng(devices=rng_devices(x)):
                returned, _ = adversary.run_standard_evaluation(x.detach(), y, batch_size=n)
        point = project(returned.to(x.device, x.dtype), x.detach(), eps, self.norm)
        with torch.no_grad():
            fooled = (counter(point).argmax(dim=1) != y).cpu()
        keep = fooled & ~clean_wrong
        x_adv = torch.where(keep.to(x.device).view(-1, *[1] * (x.dim() - 1)), point, x.detach())
        flags = list(dict.fromkeys(flag_for(m) for m in messages))
        return AttackResult(x_adv=x_adv, success=clean_wrong | fooled,
                            norm=perturbation_norm(x_adv - x.detach(), self.norm).cpu(),
                            n_forward=split_evenly(counter.forward_passes, n),
                            n_backward=split_evenly(counter.backward_passes, n), flags=flags)


@dataclass(frozen=True)
class SquareDraws(AutoAttackRun):
    """Square with a long query schedule, in `draws` restarts (pyautoattack's own: one
    random stream, each restart on the samples the earlier ones left unbroken).

    Why: on the MNIST L2 zoo one 5000-query draw (`square-l2`, AutoAttack's setting) is
    far from converged: other draws, and on mnist-t10k longer ones, break samples it left
    robust (results-square-draws.json; the square-l2 and square-l2-long columns of the L2
    leaderboards). `seed_offset` keeps these draws apart from square-l2's, which would
    repeat on the same batch and seed."""

    version: str = "custom"
    attacks: tuple[str, ...] = ("square",)
    n_queries: int = 20000
    draws: int = 1
    seed_offset: int = 1

    def describe(self) -> str:
        draws = "1 draw" if self.draws == 1 else f"{self.draws} draws"
        return f"Square, {self.n_queries} queries, {draws}, seed offset {self.seed_offset}"

    def configure(self, adversary: AutoAttack, seed: int) -> None:
        adversary.square.n_restarts = self.draws
        adversary.seed = seed + self.seed_offset


@dataclass(frozen=True)
class TargetedRestarts(AutoAttackRun):
    """A fresh Square draw, then targeted APGD with `draws` random restarts per target on
    the samples Square left (pyautoattack runs a custom version's components in order,
    each on what the earlier ones left unbroken); with `attacks=("apgd-t",)`, the
    targeted restarts alone.

    Why: one targeted APGD restart (`apgd-t-l2`, AutoAttack's setting) leaves borderline
    samples that another random start breaks: on mat-bibo-mnist-t10k the L2 oracle's
    APGD-T broke a sample every other attack on record left robust, and only 1 of 12
    seeds of a single restart breaks it (benchmarks/README.md). Square first, because on
    the MAT and AT heads it breaks most of what APGD-T leaves: the restarts go only to
    the samples neither a gradient nor a gradient-free attack has broken."""

    version: str = "custom"
    attacks: tuple[str, ...] = ("square", "apgd-t")
    n_queries: int = 5000
    draws: int = 20
    seed_offset: int = 4

    def describe(self) -> str:
        square = f"Square, {self.n_queries} queries, then " if "square" in self.attacks else ""
        return (f"{square}targeted APGD, {self.n_target_classes} targets x {self.steps} steps x "
                f"{self.draws} restarts, seed offset {self.seed_offset}")

    def configure(self, adversary: AutoAttack, seed: int) -> None:
        adversary.apgd_targeted.n_restarts = self.draws
        adversary.seed = seed + self.seed_offset


register_attack(AutoAttackRun(id="aa", norm="Linf", version="standard"))
register_attack(AutoAttackRun(id="aa-plus", norm="Linf", version="plus"))
register_attack(AutoAttackRun(id="aa-rand", norm="Linf", version="rand"))
register_attack(AutoAttackRun(id="apgd-ce", norm="Linf", version="custom", attacks=("apgd-ce",)))
register_attack(AutoAttackRun(id="apgd-dlr", norm="Linf", version="custom", attacks=("apgd-dlr",)))
register_attack(AutoAttackRun(id="square", norm="Linf", version="custom", attacks=("square",)))
register_attack(AutoAttackRun(id="aa-l2", norm="L2", version="standard"))
register_attack(AutoAttackRun(id="square-l2", norm="L2", version="custom", attacks=("square",)))
register_attack(SquareDraws(id="square-l2-long", norm="L2"))
register_attack(SquareDraws(id="square-l2-long2", norm="L2", seed_offset=2))
# Eight fresh 5000-query draws, each on the samples the earlier ones left: pyautoattack's
# Square shrinks its squares on a schedule fixed in fractions of n_queries, so a fresh
# short draw searches anew where a long one only refines (results-square-draws.json: a
# mat-mnist-t10k sample that three long draws left, two of four fresh draws broke).
register_attack(SquareDraws(id="square-l2-restarts", norm="L2", n_queries=5000, draws=8,
                            seed_offset=3))
register_attack(AutoAttackRun(id="apgd-t-l2", norm="L2", version="custom", attacks=("apgd-t",)))
register_attack(AutoAttackRun(id="fab-t-l2", norm="L2", version="custom", attacks=("fab-t",)))
register_attack(TargetedRestarts(id="apgd-t-l2-restarts", norm="L2"))
