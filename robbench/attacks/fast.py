"""`fast` and `fast-l2`: one worst-case evaluation aiming at AutoAttack standard's
strength for a fraction of its model passes (forward + backward).

Each is a cascade (robbench.attacks.cascade): every stage runs only on the samples the
earlier ones left robust, so a sample broken in a few steps costs a few passes, and the
passes saved there go to the samples that need them. The stages, cheapest first, and
why each is there:

1. A short attack on the right objective, to drop the easy samples: in L∞ the
   defense's own adaptive attacks (MAT loss, magnet loss, prototype distance, KL for
   TRADES, CE and DLR for softmax models, each followed by the C&W margin), 10 steps,
   one restart, every iterate checked; on a clustering head an attack on the softmax
   aims at the wrong objective. Then, in L∞, AutoAttack's APGD-CE (100 steps, one
   restart), AutoAttack's own first stage, on every sample the adaptive stage leaves:
   without it fast missed more of the standard set's breaks (the "ce" trial in
   benchmarks/README.md).
   In L2, where robbench has no adaptive losses, PGD on the cross-entropy, 10 steps;
   then PGD through a smoothed first ReLU (robbench.attacks.smoothed_relu), 100 steps,
   one restart at each of its three β. The AT and MAT heads on MNIST threshold pixels
   in their first layer, which zeroes the exact gradient of every later stage
   (AutoAttack's included) on most of their robust samples; smoothing that ReLU's
   backward reaches them for a few hundred passes, where a Square search of
   AutoAttack's length had been the only stage that did.
2. AutoAttack's targeted APGD, 9 targets x 25 steps: on its DLR-targeted loss, which
   does not depend on the logits' scale. All nine targets, not the few most likely (in
   trials while the stages were chosen, three left robust samples that nine broke on
   the robust digits models); 25 steps instead of 100 keep the cost. In L∞, two random
   restarts per target, its own draws (seed offset 7): one draw left robust samples that
   the standard set breaks at both seeds it was run at (atc-digits 271 and 319, which
   one draw broke in 3 of 8 runs by hand); with the second, fast left fewer of the
   standard set's breaks robust on the robust heads, for a few hundredths of
   AutoAttack's passes more (benchmarks/README.md).
   In L2, then AutoAttack's targeted FAB, 9 targets x 100 steps (AutoAttack's own): it
   steps to the linearised boundary where gradient ascent stalls, and on the TRADES and
   ATC heads it breaks far more than targeted APGD; without it fast-l2 stayed far above
   AutoAttack-L2 (which runs it) there, and toward only the 3 most likely classes it
   left ATC samples that nine targets break.
3. Restarts where a sample came close (robbench.attacks.close_restarts, A3's
   discarding): a 20-step DLR probe, then more attacks only on the samples whose best
   DLR loss came above -0.3. Past stage 2, the samples left are mostly ones nothing
   breaks and a few borderline ones that only some random start breaks; the probe tells
   most of them apart (not all: in L∞ it puts some samples AutoAttack breaks below the
   threshold, and on the thresholding L2 heads its exact gradient sees almost none as
   close). In L∞ the close samples get APGD-CE at 8 restarts, APGD-DLR at 4, targeted
   APGD at AutoAttack's 9 x 100 and Square at 1000 queries: a borderline sample there is
   typically one a single restart breaks with probability 0.05-0.2, or one only the full
   targeted run or a search breaks; with two restarts each and no APGD-CE stage, fast
   missed more than twice as many of the standard set's breaks and was above
   AutoAttack's worst case on more models. In L2, APGD-CE and APGD-DLR at 2 restarts x
   100 steps each; then two stages on what is left, which the probe cannot route:
   - seven of l2-suite's stages (robbench.attacks.l2_suite), with the suite's own
     random streams: its DDN stages (ddn, ddn-walks, ddn-restarts), a minimum-norm walk
     that steps in a random direction where the gradient vanishes, and more walks only
     where the first ended near ε (within 1.2 and 1.1 ε); DDN on the C&W margin from ε
     (ddn-margin); its FAB-T and its targeted APGD toward the most likely classes, the
     latter only where the best point so far lies within 1.1 ε; and APGD from the best
     point beyond ε projected onto the ball (apgd-warm). The l2-suite broke over half
     of the samples an earlier fast-l2 missed; on the ten of mat-mnist-t10k checked,
     the three DDN stages broke each one. With the DDN stages alone, fast-l2 still left
     51 of the standard set's breaks robust over the 28 L2 entries; run on the samples
     it left, the four stages added broke 23 of them (the whole suite 27, for two to
     three times the passes), and one sample of drp-mnist-t10k that every attack on
     record had left robust.
   - smoothed-ReLU PGD's restarts 1-3 at each β (the starts of smoothed-relu-l2's
     restarts 1-3; stage 1 ran restart 0): on the thresholding heads, the samples
     fast-l2 missed were mostly ones only the standard set's four restarts broke. On the
     other heads it adds cost and breaks little, and no per-sample signal tried told
     the two kinds of sample apart (the exact gradient at x is nonzero on every head
     measured; on the probe through the smoothed ReLU and on DDN's norm, the samples it
     breaks and the robust ones overlap).
4. A gradient-free stage: Square (200 queries in L∞, 500 in L2). Masked or flat
   gradients cannot fool it; without it a worst case is not trusted (METHODS §3). In L2
   it ran AutoAttack's own 5000 queries while it was the only stage that reached the
   thresholding heads' samples; with the smoothed-ReLU stage before it, Square checks
   what the gradient stages leave instead of doing most of the work, and a tenth of the
   queries keeps the cost down.

AutoAttack's stages draw their randomness per batch, and a stage's batch is what the
earlier stages left: a sample's verdict under `fast` can depend on the batch it ran in
(as under `aa`), unlike robbench's own attacks. What each (model, norm) costs and misses
against AutoAttack and the full standard set, and the schedules tried before these:
benchmarks/README.md (`python -m benchmarks.fast`)."""

from __future__ import annotations

from robbench.attacks.adaptive import AdaptiveSuite
from robbench.attacks.autoattack import AutoAttackRun, SquareDraws, TargetedRestarts
from robbench.attacks.base import Attack, register_attack
from robbench.attacks.cascade import Cascade
from robbench.attacks.close_restarts import CloseRestarts
from robbench.attacks.l2_suite.schedule import L2Suite
from robbench.attacks.pgd import PGD
from robbench.attacks.smoothed_relu import SmoothedReLUPGD, SmoothedReLUPGDFrom


CLOSENESS = -0.3  # stage 3's probe threshold (DLR loss; 0 is the boundary), in both norms


def _component(id: str, norm: str, name: str, **kw: int) -> Attack:
    """One of AutoAttack's attacks (apgd-ce, apgd-dlr, apgd-t, fab-t, square) alone, registered."""
    return register_attack(AutoAttackRun(id=id, norm=norm, version="custom", attacks=(name,), **kw))


def _linf_stages() -> tuple[Attack, ...]:
    adaptive = register_attack(AdaptiveSuite(id="fast-adaptive", norm="Linf", steps=10, restarts=1))
    apgd_ce = _component("fast-apgd-ce", "Linf", "apgd-ce", steps=100, restarts=1)
    targeted = register_attack(TargetedRestarts(id="fast-apgd-t", norm="Linf", attacks=("apgd-t",),
                                                steps=25, n_target_classes=9, draws=2, seed_offset=7))
    where_close = (_component("fast-apgd-ce-restarts", "Linf", "apgd-ce", steps=100, restarts=8),
                   _component("fast-apgd-dlr-restarts", "Linf", "apgd-dlr", steps=100, restarts=4),
                   _component("fast-apgd-t-close", "Linf", "apgd-t", steps=100, n_target_classes=9),
                   _component("fast-square-close", "Linf", "square", n_queries=1000))
    close = register_attack(CloseRestarts(id="fast-close", norm="Linf", closeness=CLOSENESS,
                                          attacks=tuple(a.id for a in where_close)))
    square = _component("fast-square", "Linf", "square", n_queries=200)
    return adaptive, apgd_ce, targeted, close, square


def _l2_stages() -> tuple[Attack, ...]:
    first = (register_attack(PGD(id="fast-pgd-l2", norm="L2", steps=10, restarts=1)),
             register_attack(SmoothedReLUPGD(id="fast-smoothed-relu-l2", norm="L2", restarts=1)))
    targeted = _component("fast-apgd-t-l2", "L2", "apgd-t", steps=25, n_target_classes=9)
    fab = _component("fast-fab-t-l2", "L2", "fab-t", steps=100, n_target_classes=9)
    restarts = (_component("fast-apgd-ce-restarts-l2", "L2", "apgd-ce", steps=100, restarts=2),
                _component("fast-apgd-dlr-restarts-l2", "L2", "apgd-dlr", steps=100, restarts=2))
    close = register_attack(CloseRestarts(id="fast-close-l2", norm="L2", closeness=CLOSENESS,
                                          attacks=tuple(a.id for a in restarts)))
    suite = register_attack(L2Suite(id="fast-suite-l2", norm="L2",
                                    stages=("ddn", "ddn-margin", "fab-t", "apgd-t", "ddn-walks",
                                            "apgd-warm", "ddn-restarts")))
    smoothed = register_attack(SmoothedReLUPGDFrom(id="fast-smoothed-relu-restarts-l2", norm="L2",
                                                   restarts=3, first_restart=1))
    square = register_attack(SquareDraws(id="fast-square-l2", norm="L2", n_queries=500, draws=1,
                                         seed_offset=10))
    return *first, targeted, fab, close, suite, smoothed, square


FAST_STAGES = {"Linf": _linf_stages(), "L2": _l2_stages()}
register_attack(Cascade(id="fast", norm="Linf", attacks=tuple(a.id for a in FAST_STAGES["Linf"])))
register_attack(Cascade(id="fast-l2", norm="L2", attacks=tuple(a.id for a in FAST_STAGES["L2"])))
