"""Attack speed against the hardware limit and peer libraries, on the same model and
samples: `python -m benchmarks.attacks --json`.

limit       a bare loop replaying exactly the forward/backward passes robbench's pgd100
            made (same batch shapes, same grad mode), on random inputs
robbench    pgd100 (10 restarts x 100 steps, step ε/4, early stop per sample)
foolbox     LinfPGD, same ε / steps / step size, 10 restarts on the samples still robust
torchattacks PGD, likewise
aa          AutoAttack standard through robbench vs pyautoattack called directly

Each model is measured `--repeats` times (default 5), interleaved (limit, robbench,
foolbox, torchattacks, then the next repeat), repeat r with seed r for every method, so
a burst of load on a shared machine hits one repeat of each rather than one method.
robbench's passes are recorded in an untimed call (the recording hook slows a module
call); a call shorter than `--min-seconds` is timed as the mean of as many calls as
reach it, so a 0.3 s attack is not timed by one reading of a noisy clock.
Reported: the median of each method's seconds and of each per-repeat ratio, and the
ratios' spread (min, max). Strength is reported from each method's own random starts:
`found` (summed over the seeds) and `found_per_seed` are what the timed runs found;
with independent starts these differ, in either direction, on the few samples that
only some starts break, so `borderline` attacks just the samples on which some method
or seed disagreed again, with `--borderline-seeds` fresh seeds per method (own
starts), and sums what each method found there: the comparison of strength.
`consistency_same_starts` is a check of the replay, not evidence of strength: in every
repeat robbench's pgd100 also runs (untimed) from each peer's own starts, replayed
restart by restart; since robbench then checks every iterate where the peer checks
the last, it finds at least what the peer found (`peer_only` 0) by construction,
unless rounding parts a trajectory.

One run covers every default model: the robust mnist-t10k models on their first 200
test points (every sample they leave robust costs 10 x 100 steps, in every method),
the others on 500, and AutoAttack on the models where it takes seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import torch

from benchmarks import run_main
from robbench.zoo.lookup import load_model
from robbench.attacks import ATTACKS
from robbench.attacks.pgd import PGD
from robbench.config import THREAT_DEFAULTS
from robbench.datasets import load_split

DEFAULT_MODELS = ["nominal-digits", "clustr-digits", "at-digits", "trades-digits",
                  "nominal-mnist-t10k", "clustr-mnist-t10k", "at-mnist-t10k", "trades-mnist-t10k"]
DEFAULT_N = {"at-mnist-t10k": 200, "trades-mnist-t10k": 200}  # others: --n
AA_MODELS = {"nominal-digits", "clustr-digits", "nominal-mnist-t10k", "clustr-mnist-t10k"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device, min_seconds: float = 0.0
          ) -> tuple[float, object]:
    """(seconds per call, last output): calls fn until min_seconds have passed (at least
    once) and returns the mean."""
    sync(device)
    calls, start = 0, time.perf_counter()
    while True:
        out = fn()
        sync(device)
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / calls, out


@contextmanager
def recording_passes(model: torch.nn.Module):
    """Records (batch size, grad enabled) of every forward call."""
    passes: list[tuple[int, bool]] = []
    handle = model.register_forward_pre_hook(
        lambda _m, args: passes.append((args[0].shape[0], torch.is_grad_enabled())))
    try:
        yield passes
    finally:
        handle.remove()


def bare_loop(model: torch.nn.Module, passes: list[tuple[int, bool]], shape: tuple[int, ...],
              device: torch.device) -> None:
    """The same passes with nothing else: the limit for this model and hardware."""
    for batch, grad in passes:
        x = torch.rand(batch, *shape, device=device)
        if grad:
            x.requires_grad_(True)
            torch.autograd.grad(model(x).sum(), x)
        else:
            with torch.no_grad():
                model(x)


def restarts_loop(attack_once: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, restarts: int,
                  lives: list[torch.Tensor] | None = None) -> torch.Tensor:
    """A peer's single-start attack repeated `restarts` times on the samples not yet fooled
    (the most favourable way to give a peer restarts). Returns which samples it fooled;
    appends to `lives` the samples each restart ran on."""
    fooled = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    with torch.no_grad():
        fooled |= model(x).argmax(1) != y
    for _ in range(restarts):
        live = (~fooled).nonzero().flatten()
        if len(live) == 0:
            break
        if lives is not None:
            lives.append(live.cpu())
        x_adv = attack_once(x[live], y[live])
        with torch.no_grad():
            fooled[live] |= model(x_adv).argmax(1) != y[live]
    return fooled.cpu()


# How each peer draws its random start (uniform in the ε-box, from the global generator,
# once per restart on the samples still live), replayed to give robbench the same starts.
def foolbox_noise(xs: torch.Tensor, eps: float) -> torch.Tensor:
    import eagerpy as ep

    return ep.uniform(ep.astensor(xs), xs.shape, -eps, eps).raw


def torchattacks_noise(xs: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.empty_like(xs).uniform_(-eps, eps)


PEER_NOISE = {"foolbox": foolbox_noise, "torchattacks": torchattacks_noise}


def replayed_starts(peer: str, seed: int, x: torch.Tensor, lives: list[torch.Tensor], eps: float
                    ) -> dict[tuple[int, int], torch.Tensor]:
    """{(sample, restart): the point the peer's restart started from, before clipping}:
    the peer's own draws, replayed from torch.manual_seed(seed) over the same live sets."""
    torch.manual_seed(seed)
    starts = {}
    for restart, live in enumerate(lives):
        xs = x[live.to(x.device)]
        points = xs + PEER_NOISE[peer](xs, eps)
        starts.update({(int(i), restart): p for i, p in zip(live, points)})
    return starts


@dataclass(frozen=True)
class GivenStartsPGD(PGD):
    """pgd100 started, restart by restart, where a peer's restarts started: paired with
    the peer's run, a difference in what is found is the method's, not restart luck.
    A sample the peer never restarted (fooled earlier) starts at robbench's own draw."""

    given: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def starts(self, x0: torch.Tensor, eps: float, sample_ids: torch.Tensor, restart: int,
               seed: int) -> torch.Tensor:
        own = super().starts(x0, eps, sample_ids, restart, seed)
        for row, i in enumerate(sample_ids.tolist()):
            if (i, restart) in self.given:
                own[row] = self.given[(i, restart)].clamp(0, 1)
        return own


CONSISTENCY_NOTE = ("a consistency check of the start replay, not evidence of strength: from a "
                    "peer's own starts robbench checks every iterate where the peer checks the "
                    "last, so it finds at least what the peer found by construction")


def paired_found(pgd: PGD, peer: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                 eps: float, seed: int, lives: list[torch.Tensor], peer_fooled: torch.Tensor
                 ) -> dict[str, int]:
    """robbench's pgd100 from the peer's starts: samples found, and samples the peer found
    that robbench did not (every iterate robbench checks includes the peer's last one, so
    this is 0 by construction unless the trajectories part, e.g. by float rounding in
    another batch size): a consistency check of the replay, not a measure of strength."""
    given = replayed_starts(peer, seed, x, lives, eps)
    paired = GivenStartsPGD(**{f.name: getattr(pgd, f.name) for f in fields(PGD)}, given=given)
    ours = paired.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)), seed=seed).success
    return {"robbench": int(ours.sum()), "peer": int(peer_fooled.sum()),
            "peer_only": int((peer_fooled & ~ours).sum())}


def borderline_rerun(fooled: dict[str, list[torch.Tensor]],
                     fooled_by: Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor],
                     x: torch.Tensor, y: torch.Tensor, seeds: int) -> dict[str, object]:
    """Found counts over the timing seeds are mostly restart noise: they differ only on
    the few samples that some method, some seed, fools and another does not. Those
    samples are attacked again with `seeds` fresh seeds (100, 101, ...), every method:
    an unbiased comparison of strength where it is decided, at a small cost."""
    masks = torch.stack([m for v in fooled.values() for m in v])
    samples = (masks.any(0) & ~masks.all(0)).nonzero().flatten()
    counts = {method: 0 for method in fooled}
    if len(samples) and seeds:
        dev = samples.to(x.device)
        for seed in range(100, 100 + seeds):
            for method in fooled:
                counts[method] += int(fooled_by(method, x[dev], y[dev], samples, seed).sum())
    return {"samples": samples.tolist(), "seeds": seeds, "found": counts}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def bench_model(model_id: str, n: int, device: torch.device, data_root: str | None,
                with_aa: bool, repeats: int, min_seconds: float,
                borderline_seeds: int) -> dict[str, object]:
    import foolbox as fb
    import torchattacks

    model = load_model(model_id, device=device).model
    for p in model.parameters():
        p.requires_grad_(False)
    dataset = model.dataset
    test = load_split(dataset, "test", data_root)
    x, y = test.x[:n].to(device), test.y[:n].to(device)
    eps = THREAT_DEFAULTS[dataset].linf_eps
    pgd = ATTACKS.get("pgd100")
    step, steps, restarts = pgd.step_fraction * eps, pgd.steps, pgd.restarts
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    fb_attack = fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=True)
    ta_attack = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=True)

    def fooled_by(method: str, xs: torch.Tensor, ys: torch.Tensor, ids: torch.Tensor,
                  seed: int, lives: list[torch.Tensor] | None = None) -> torch.Tensor:
        if method == "robbench":
            return pgd.run(model, xs, ys, eps=eps, sample_ids=ids, seed=seed).success
        torch.manual_seed(seed)
        once = ((lambda a, b: fb_attack(fmodel, a, b, epsilons=eps)[1]) if method == "foolbox"
                else ta_attack)
        return restarts_loop(once, model, xs, ys, restarts, lives)

    seconds: dict[str, list[float]] = {"limit": [], "robbench": [], "foolbox": [], "torchattacks": []}
    fooled: dict[str, list[torch.Tensor]] = {"robbench": [], "foolbox": [], "torchattacks": []}
    paired = {peer: {"robbench": [], "peer": [], "peer_only": []} for peer in ("foolbox", "torchattacks")}
    passes_made: list[tuple[int, int]] = []
    ids = torch.arange(n)
    for seed in range(repeats):
        with recording_passes(model) as passes:
            result = pgd.run(model, x, y, eps=eps, sample_ids=ids, seed=seed)
        # the same seed makes the same passes in the timed calls
        t_ours, _ = timed(lambda: fooled_by("robbench", x, y, ids, seed), device, min_seconds)
        t_limit, _ = timed(lambda: bare_loop(model, passes, tuple(x.shape[1:]), device), device,
                           min_seconds)
        lives: dict[str, list[torch.Tensor]] = {"foolbox": [], "torchattacks": []}
        t_fb, fb_fooled = timed(lambda: fooled_by("foolbox", x, y, ids, seed, lives["foolbox"]), device)
        t_ta, ta_fooled = timed(lambda: fooled_by("torchattacks", x, y, ids, seed, lives["torchattacks"]),
                                device)
        for peer, mask in (("foolbox", fb_fooled), ("torchattacks", ta_fooled)):
            counts = paired_found(pgd, peer, model, x, y, eps, seed, lives[peer], mask)
            for key, value in counts.items():
                paired[peer][key].append(value)
        for key, t in (("limit", t_limit), ("robbench", t_ours), ("foolbox", t_fb), ("torchattacks", t_ta)):
            seconds[key].append(t)
        for key, mask in (("robbench", result.success), ("foolbox", fb_fooled), ("torchattacks", ta_fooled)):
            fooled[key].append(mask)
        passes_made.append((int(result.n_forward.sum()), int(result.n_backward.sum())))
    own_starts = {k: [int(m.sum()) for m in v] for k, v in fooled.items()}

    ratios = {f"robbench_vs_{peer}": [o / t for o, t in zip(seconds["robbench"], seconds[peer])]
              for peer in ("limit", "foolbox", "torchattacks")}
    row: dict[str, object] = {
        "model": model_id, "n": n, "eps": eps, "device": str(device), "repeats": repeats,
        "min_seconds": min_seconds,
        "forward_passes": passes_made[0][0], "backward_passes": passes_made[0][1],
        "seconds": {k: median(v) for k, v in seconds.items()},
        **{k: median(v) for k, v in ratios.items()},
        "spread": {k: [min(v), max(v)] for k, v in ratios.items()},
        # strength: each method from its own starts, then the disputed samples re-run
        "found": {k: sum(v) for k, v in own_starts.items()},  # summed over the seeds
        "found_per_seed": own_starts,
        "borderline": borderline_rerun(fooled, fooled_by, x, y, borderline_seeds),
        # not evidence: robbench replaying each peer's starts finds >= the peer by construction
        "consistency_same_starts": {
            "note": CONSISTENCY_NOTE,
            "per_seed": paired,
            "peer_only": {peer: sum(paired[peer]["peer_only"]) for peer in paired}},
    }
    if with_aa and "aa" in ATTACKS:
        row.update(bench_autoattack(model, x, y, eps, device, repeats))
    return row


def bench_autoattack(model, x, y, eps, device, repeats: int) -> dict[str, object]:
    from pyautoattack import AutoAttack

    ours = ATTACKS.get("aa")

    def direct(seed: int):
        adversary = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed,
                               device=device)
        adversary.verbose = False
        return adversary.run_standard_evaluation(x, y, batch_size=len(y))[0]

    t_ours, t_direct, overheads = [], [], []
    for seed in range(repeats):
        t, result = timed(lambda: ours.run(model, x, y, eps=eps, sample_ids=torch.arange(len(y)),
                                           seed=seed), device)
        d, x_adv = timed(lambda: direct(seed), device)
        t_ours.append(t)
        t_direct.append(d)
        overheads.append(t / d - 1)
    with torch.no_grad():
        found_direct = int((model(x_adv).argmax(1) != y).sum())
    return {"aa_seconds": {"robbench": median(t_ours), "pyautoattack": median(t_direct)},
            "aa_found": {"robbench": int(result.success.sum()), "pyautoattack": found_direct},
            "aa_overhead": median(overheads), "aa_overhead_spread": [min(overheads), max(overheads)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--n", type=int, default=None,
                        help="test samples per model (at most the split; default 500, 200 on "
                             "the robust mnist-t10k models)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-aa", action="store_true", help="skip the AutoAttack comparison")
    parser.add_argument("--aa-everywhere", action="store_true",
                        help="AutoAttack on every model (default: %s)" % ", ".join(sorted(AA_MODELS)))
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="time shorter calls as the mean of repeated calls")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats (seeds 0..R-1)")
    parser.add_argument("--borderline-seeds", type=int, default=30,
                        help="fresh seeds for the samples on which the methods' outcomes differed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for model_id in args.models.split(","):
        n = min(args.n or DEFAULT_N.get(model_id, 500),
                len(load_split(load_model(model_id).model.dataset, "test", args.data_root)))
        with_aa = not args.no_aa and (args.aa_everywhere or model_id in AA_MODELS)
        rows.append(bench_model(model_id, n, device, args.data_root, with_aa, args.repeats,
                                args.min_seconds, args.borderline_seeds))
        r = rows[-1]  # progress on stderr; --json puts the JSON alone on stdout
        print(f"{model_id}: limit {r['seconds']['limit']:.2f}s robbench {r['seconds']['robbench']:.2f}s "
              f"foolbox {r['seconds']['foolbox']:.2f}s torchattacks {r['seconds']['torchattacks']:.2f}s "
              f"| vs limit {r['robbench_vs_limit']:.2f} vs foolbox {r['robbench_vs_foolbox']:.2f} "
              f"vs torchattacks {r['robbench_vs_torchattacks']:.2f} (spread {r['spread']}) "
              f"| found per seed (own starts) {r['found_per_seed']} | borderline {r['borderline']} "
              f"| consistency (same starts, peer_only) {r['consistency_same_starts']['peer_only']}",
              file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    run_main(main)
