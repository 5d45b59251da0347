"""Protocol defaults from METHODS.md §1, in one place."""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "0.1.0"  # robbench.__version__, recorded with every result and checkpoint

NORMS = ("Linf", "L2")


@dataclass(frozen=True)
class ThreatDefaults:
    linf_eps: float
    l2_eps: float

    def eps(self, norm: str) -> float:
        return self.linf_eps if norm == "Linf" else self.l2_eps


THREAT_DEFAULTS: dict[str, ThreatDefaults] = {
    "digits": ThreatDefaults(linf_eps=0.2, l2_eps=1.0),
    "mnist-t10k": ThreatDefaults(linf_eps=0.3, l2_eps=2.0),
    "mnist": ThreatDefaults(linf_eps=0.3, l2_eps=2.0),
    "cifar10": ThreatDefaults(linf_eps=8 / 255, l2_eps=0.5),
    "cifar100": ThreatDefaults(linf_eps=8 / 255, l2_eps=0.5),
    "svhn": ThreatDefaults(linf_eps=8 / 255, l2_eps=0.5),
}

# relative slack on ε for float rounding when a perturbation's norm is compared with ε:
# the silent-success re-check (robbench.evaluation.diagnostics) and the records' meaning check
# (robbench.store.runs) use the same one
SUCCESS_TOL = 1e-4

PGD_RESTARTS = 10
PGD_STEP_FRACTION = 0.25  # step = eps / 4 (2/255 at eps = 8/255)
DEFAULT_SEED = 0
DEFAULT_BATCH_SIZE = 256
RUNS_DIR = "runs"
LEADERBOARD_DIR = "leaderboards"
DATA_ROOT_ENV = "ROBBENCH_DATA"

# The leaderboard's standard attack set per threat model, one id each (`--attacks
# standard`): strong white-box attacks on the softmax (PGD-100, untargeted APGD-CE and
# APGD-DLR, AutoAttack), the attacks aimed at the defense's own loss, a score-based and
# a transfer attack. Every set holds a gradient-free attack (METHODS §3): on MAT-style
# heads in L2 every gradient attack (C&W, DDN, the l2-suite) stalls at norms 2.3-2.9
# on samples that Square breaks at 1.97 (ε = 2), and a row with gradient attacks only
# overstated robustness by up to 27 points. The L2 set is C&W, DDN, the l2-suite
# (gradient and minimum-norm), square-l2 (AutoAttack's Square, 5000 queries),
# square-l2-long and square-l2-long2 (two more Square draws, of 20000 queries each: one
# 5000-query draw is far from converged on the MNIST L2 zoo, and the L2 oracle's own
# draw broke samples that square-l2 and one long draw left), fab-t-l2 and apgd-t-l2
# (AutoAttack's targeted FAB and targeted APGD at their own 9 targets x 100 steps; the
# l2-suite runs them only in reduced form, and the oracle's APGD-T broke a mat-digits
# sample every other attack left robust), square-l2-restarts (eight fresh 5000-query
# Square draws, each on the samples the earlier ones left: fresh draws broke a
# mat-mnist-t10k sample that all three earlier draws left robust), apgd-t-l2-restarts
# (a fresh Square draw, then targeted APGD with 20 random restarts per target on what it
# leaves: the L2 oracle's single APGD-T restart broke a mat-bibo-mnist-t10k sample that
# every attack on record left robust, and one restart in twelve breaks it), and
# smoothed-relu-l2 (PGD through a smoothed first ReLU, BPDA: the AT and MAT mnist-t10k
# models threshold pixels in their first layer, which hides the gradient from every
# exact-gradient attack; it broke 2-26 samples of 500 that all the others left on five
# mnist-t10k rows, mat-bibo's worst case 15.2% -> 10.0%).
STANDARD_ATTACKS: dict[str, tuple[str, ...]] = {
    "standard": ("pgd100", "apgd-ce", "apgd-dlr", "aa", "adaptive", "square", "transfer"),
    "standard-l2": ("cw", "ddn", "l2-suite", "square-l2", "square-l2-long", "fab-t-l2",
                    "apgd-t-l2", "square-l2-long2", "square-l2-restarts", "apgd-t-l2-restarts",
                    "smoothed-relu-l2"),
}
