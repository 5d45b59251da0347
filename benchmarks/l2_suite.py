"""Does `l2-suite` find every break of C&W 9x1000 + DDN, and at what cost?
`python -m benchmarks.l2_suite --json` (writes benchmarks/results-l2-suite.json).

For every mnist-t10k zoo model (or --models), on the first n of the samples of its
committed L2 run (runs/, protocol ε, seed 0; C&W and DDN records read through
RunStore), l2-suite attacks the test points directly (nothing is written to runs/
or leaderboards/) and is compared per sample with the committed records:

cost_ratio        new forward+backward passes / the committed cw + ddn passes, summed
                  over the same n samples
seconds_ratio     new seconds / the committed cw + ddn seconds for those n samples: a
                  record holds one total (`seconds`, over the samples it attacked), so
                  each record's total is scaled by its passes on the n samples over its
                  passes on all; compare only where `device` and `reference_device`
                  (from the records' versions; "unrecorded" in older ones) agree.
                  Where the committed records ran on other hardware, --timing-runs DIR
                  prices them on this machine: a re-run of the same cw + ddn (same
                  parameters, checked), made here with `robbench eval --attacks cw,ddn
                  --runs-dir DIR`, perhaps on fewer samples, gives each attack's seconds
                  per pass, times the committed passes on the n samples; the per-sample
                  results still come from the committed run
missed            samples the committed cw or ddn break within ε (success True) that
                  l2-suite leaves robust: must be 0
missed_full       samples the full reference breaks that l2-suite together with its
                  companions in `standard-l2` (COMPANIONS: every other member,
                  the committed records) leaves robust: must be 0. The full
                  reference is the union of sources of different kinds
                  (`full_reference`): cw, ddn (minimum-norm, gradient), the companions
                  (Square: gradient-free; FAB-T: minimum-norm) and, where
                  benchmarks.oracle covered the same samples, its libraries
                  (results-oracle-mnist-t10k-L2.json). missed_full_suite_alone counts
                  those the suite alone leaves robust: the gradient attacks' blind spot
cost_ratio_with_companions
                  (suite + companions' passes) / (cw + ddn + companions' passes)
worst_case_acc    % of the n samples l2-suite leaves robust (clean misclassification
                  counts as broken); reference_worst_case_acc: likewise for cw + ddn

Extra keys: eps, seconds, reference_seconds, device, reference_device,
broke_by_stage (samples each stage broke), missed_indices, attack_params; with a
timing re-run, also committed_reference_seconds, committed_reference_device,
rerun_n (samples re-run), rerun_disagrees (of those, the samples whose cw + ddn
outcome differs between the re-run and the committed records) and
rerun_breaks_left_robust (those the re-run breaks within ε and l2-suite leaves robust).
With --models, those models' rows replace theirs in the file and the others stay.
`--seed 1` re-draws the suite's randomness; `--first 500 --n-examples 500` judges it
on test points 500-999, which its stage radii were not set on (the store given with
--runs-dir must hold cw, ddn and the companions there: copy the committed run directory
and resume it with `robbench eval --n-examples 1000 --runs-dir DIR`). Write those to
another --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import run_main
from benchmarks.results_file import read_rows, write_rows
from robbench.zoo.lookup import MODELS, load_model
from robbench.attacks import ATTACKS
from robbench.attacks.l2_suite import L2Suite
from robbench.config import (DEFAULT_BATCH_SIZE, DEFAULT_SEED, LEADERBOARD_DIR, RUNS_DIR,
                             STANDARD_ATTACKS, THREAT_DEFAULTS)
from robbench.datasets import load_split
from robbench.store.runs import RunStore, run_dir

DATASET = "mnist-t10k"
REFERENCE = ("cw", "ddn")
# the attacks `standard-l2` runs beside the suite, which the suite is never without
COMPANIONS = tuple(a for a in STANDARD_ATTACKS["standard-l2"] if a not in (*REFERENCE, "l2-suite"))
DEFAULT_OUT = Path("benchmarks/results-l2-suite.json")
ORACLE_FILE = Path(__file__).parent / f"results-oracle-{DATASET}-L2.json"


def zoo_models(dataset: str) -> list[str]:
    return [m for m, entry in MODELS.items() if entry.dataset == dataset and entry.checkpoint_path]


def reference_device(meta: dict[str, Any]) -> str:
    devices = sorted({v.get("device") or "unrecorded" for v in meta["versions"]})
    return ",".join(devices) or "unrecorded"


def records_device(records: dict[str, Any]) -> str:
    return ",".join(sorted({reference_device(r[1]) for r in records.values()}))


def passes(frame: Any) -> int:
    """Forward+backward passes of a record's rows."""
    return int((frame["n_forward"] + frame["n_backward"]).sum())


def priced(rows: dict[str, Any], records: dict[str, Any], frames: dict[str, Any]) -> float:
    """Seconds the rows' passes cost at the records' seconds per pass: a record holds one
    total, over the samples in its frame. Priced by the committed records themselves, this
    is their seconds on the rows' samples; by a timing re-run's, the same passes on the
    re-run's hardware."""
    total = 0.0
    for a, here in rows.items():
        p_all = passes(frames[a])
        total += records[a][1]["seconds"] / p_all * passes(here) if p_all else 0.0
    return total


def rerun_outcomes(model_id: str, records: dict[str, Any], rerun: tuple[dict[str, Any], dict[str, Any]],
                   ref_success: np.ndarray, success: np.ndarray) -> dict[str, Any]:
    """How a timing re-run's per-sample outcomes compare, on the samples it re-ran: those
    whose cw + ddn verdict differs from the committed one, and those it breaks within ε
    that l2-suite leaves robust (a re-run draws other random steps: evidence, not the
    reference `missed` is measured against)."""
    rerun_records, rerun_frames = rerun
    for a in REFERENCE:
        if rerun_records[a][1]["params"] != records[a][1]["params"]:
            raise SystemExit(f"{model_id}: the timing re-run's {a} parameters differ from the committed ones")
    common = sorted(set.intersection(*(set(f.index) for f in rerun_frames.values())) & set(range(len(success))))
    rerun_success = np.zeros(len(common), dtype=bool)
    for frame in rerun_frames.values():
        rerun_success |= frame.loc[common, "success"].to_numpy(dtype=bool)
    return {"rerun_n": len(common), "rerun_disagrees": int((rerun_success != ref_success[common]).sum()),
            "rerun_breaks_left_robust": [i for i, hit in zip(common, rerun_success) if hit and not success[i]]}


def reference_records(store: RunStore, model_id: str, n: int | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(records, frames indexed by sample) of cw and ddn in store; None if it has neither;
    an error if it has one only, or (given n) one that does not cover samples 0..n-1."""
    records = {a: store.load_attack(a) for a in REFERENCE}
    missing = [a for a, r in records.items() if r is None]
    if len(missing) == len(REFERENCE):
        return None
    if missing:
        raise SystemExit(f"{model_id}: no {', '.join(missing)} record under {store.root}")
    frames = {a: r[0].set_index("index").sort_index() for a, r in records.items()}
    for a, frame in frames.items():
        if n is not None and not set(range(n)) <= set(frame.index):
            raise SystemExit(f"{model_id}: the {a} record under {store.root} does not cover "
                             f"samples 0..{n - 1}")
    return records, frames


def oracle_breaks(model_id: str, n: int, first: int, oracle_file: Path | None) -> np.ndarray | None:
    """Per sample: the independent libraries of benchmarks.oracle broke it within ε (its
    file for this model, when it covers exactly these samples); None where it does not."""
    if oracle_file is None or first != 0:
        return None
    row = next((r for r in read_rows(oracle_file) if r["model"] == model_id), None)
    if row is None or row["n"] != n or "library_broken_samples" not in row:
        return None
    broken = np.zeros(n, dtype=bool)
    broken[row["library_broken_samples"]] = True
    return broken


def compare(model_id: str, attack: L2Suite, n_examples: int | None, device: str, batch_size: int,
            data_root: str | None, runs: Path, timing_runs: Path | None = None, *,
            seed: int = DEFAULT_SEED, first: int = 0, oracle_file: Path | None = None) -> dict[str, Any]:
    """One model's row (see the module docstring): l2-suite run with `seed` on samples
    first..first+n-1, judged against the records of the store `runs` on those samples."""
    entry = MODELS.get(model_id)
    eps = THREAT_DEFAULTS[entry.dataset].eps("L2")
    loaded = load_model(model_id, device=device)
    model = loaded.model.eval()
    store = RunStore(run_dir(runs, model_id, loaded.sha256, "L2", eps, DEFAULT_SEED))
    committed = reference_records(store, model_id)
    if committed is None:
        raise SystemExit(f"{model_id}: no committed cw or ddn record under {store.root}")
    n_ref = min(len(f) for f in committed[1].values()) - first
    n = n_ref if n_examples is None else min(n_examples, n_ref)
    if n <= 0:
        raise SystemExit(f"{model_id}: the records under {store.root} end before sample {first}")
    ids = range(first, first + n)
    records, frames = reference_records(store, model_id, first + n)
    rows = {a: f.loc[ids] for a, f in frames.items()}
    companion_rows = {}
    for companion in COMPANIONS:
        record = store.load_attack(companion)
        here = record[0].set_index("index").reindex(ids) if record is not None else None
        if here is not None and not here["success"].isna().any():  # the record covers these samples
            companion_rows[companion] = here
    clean = store.load_clean().set_index("index").loc[ids]

    test = load_split(entry.dataset, "test", data_root)
    x, y = test.x[first:first + n], test.y[first:first + n]
    if not torch.equal(y, torch.tensor(clean["label"].to_numpy())):
        raise SystemExit(f"{model_id}: test labels differ from the run's clean record")
    started = time.perf_counter()
    results = [attack.run_detailed(model, xb.to(device), yb.to(device), eps=eps, sample_ids=sids,
                                   seed=seed)
               for sids, xb, yb in batches(x, y, batch_size, first)]
    seconds = time.perf_counter() - started
    success = torch.cat([r.success for r, _ in results]).numpy()
    suite_passes = int(sum(int((r.n_forward + r.n_backward).sum()) for r, _ in results))
    stage = torch.cat([d.stage for _, d in results])
    names = results[0][1].stages if results else ()
    broke = {name: int((stage == i).sum()) for i, name in enumerate(names)}

    ref_success = np.zeros(n, dtype=bool)
    for here in rows.values():
        ref_success |= here["success"].to_numpy(dtype=bool)
    ref_passes = sum(passes(here) for here in rows.values())
    ref_seconds, ref_device = priced(rows, records, frames), records_device(records)
    timing = {}
    rerun = (reference_records(RunStore(run_dir(timing_runs, model_id, loaded.sha256, "L2", eps,
                                                DEFAULT_SEED)), model_id)
             if timing_runs is not None else None)
    if rerun is not None:
        timing = {"committed_reference_seconds": round(ref_seconds, 1),
                  "committed_reference_device": ref_device,
                  **rerun_outcomes(model_id, records, rerun, ref_success, success)}
        ref_seconds, ref_device = priced(rows, *rerun), records_device(rerun[0])
    missed = np.flatnonzero(ref_success & ~success)

    # The full reference: every kind of source on record for these samples.
    full = ref_success.copy()
    sources = list(REFERENCE)
    companion_success, companion_passes = np.zeros(n, dtype=bool), 0
    for companion, here in companion_rows.items():
        companion_success |= here["success"].to_numpy(dtype=bool)
        companion_passes += passes(here)
        sources.append(companion)
    full |= companion_success
    library = oracle_breaks(model_id, n, first, oracle_file)
    if library is not None:
        full |= library
        sources.append("oracle")
    with_companions = success | companion_success
    missed_full = np.flatnonzero(full & ~with_companions)
    return {
        "model": model_id, "n": n, "first": first, "seed": seed,
        "cost_ratio": round(suite_passes / ref_passes, 4) if ref_passes else None,
        "seconds_ratio": round(seconds / ref_seconds, 4) if ref_seconds else None,
        "missed": int(len(missed)),
        "worst_case_acc": round(100.0 * float((~success).mean()), 2),
        "reference_worst_case_acc": round(100.0 * float((~ref_success).mean()), 2),
        "full_reference": sources,
        "full_reference_worst_case_acc": round(100.0 * float((~full).mean()), 2),
        "missed_full_suite_alone": int((full & ~success).sum()),
        "missed_full": int(len(missed_full)),
        "missed_full_indices": [first + int(i) for i in missed_full],
        "companions": list(companion_rows),
        "worst_case_acc_with_companions": round(100.0 * float((~with_companions).mean()), 2),
        "cost_ratio_with_companions": (
            round((suite_passes + companion_passes) / (ref_passes + companion_passes), 4)
            if companion_rows and ref_passes else None),
        "eps": eps, "seconds": round(seconds, 1), "reference_seconds": round(ref_seconds, 1),
        "device": device_name(device), "reference_device": ref_device,
        "broke_by_stage": broke, "missed_indices": [first + int(i) for i in missed],
        "attack_params": attack.params(), **timing,
    }


def batches(x: torch.Tensor, y: torch.Tensor, size: int, first: int = 0):
    """(sample ids, x, y) per batch; ids count from `first`, the test index of x[0]."""
    for start in range(0, len(y), size):
        rows = slice(start, start + size)
        yield first + torch.arange(len(y))[rows], x[rows], y[rows]


def device_name(device: str) -> str:
    dev = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else dev.type


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=None, help=f"comma-separated (default: every {DATASET} zoo model)")
    parser.add_argument("--n-examples", type=int, default=None, help="default: the committed run's n")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs-dir", default=RUNS_DIR)
    parser.add_argument("--timing-runs", default=None,
                        help="a results store holding re-runs of cw + ddn made on this machine: "
                             "reference seconds from there, for the models it holds")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the suite's seed (the "
                        "reference records are the store's, seed 0)")
    parser.add_argument("--first", type=int, default=0,
                        help="first test index: 500 judges the suite on points it was not tuned on "
                             "(the store in --runs-dir must then hold cw, ddn and the companions there)")
    parser.add_argument("--oracle-file", default=str(ORACLE_FILE),
                        help="benchmarks.oracle's L2 results: their breaks join the full reference")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    for guarded in (RUNS_DIR, LEADERBOARD_DIR):
        if out.is_relative_to(Path(guarded).resolve()):
            raise SystemExit(f"--out {args.out}: never write into {guarded}/")
    attack = ATTACKS.get("l2-suite")
    assert isinstance(attack, L2Suite)
    models = args.models.split(",") if args.models else zoo_models(DATASET)
    results = []
    for model_id in models:
        row = compare(model_id, attack, args.n_examples, args.device, args.batch_size,
                      args.data_root, Path(args.runs_dir),
                      Path(args.timing_runs) if args.timing_runs else None, seed=args.seed,
                      first=args.first, oracle_file=Path(args.oracle_file))
        results.append(row)
        print(f"{model_id}: n={row['n']} missed={row['missed']} cost_ratio={row['cost_ratio']} "
              f"seconds_ratio={row['seconds_ratio']} ({row['seconds']}s on {row['device']} vs "
              f"{row['reference_seconds']}s on {row['reference_device']}) worst_case_acc="
              f"{row['worst_case_acc']} reference={row['reference_worst_case_acc']} "
              f"missed_full={row['missed_full']} (suite alone {row['missed_full_suite_alone']}; "
              f"reference {'+'.join(row['full_reference'])}) broke={row['broke_by_stage']}", file=sys.stderr, flush=True)
        write_rows(out, results, merge=bool(args.models))
    if args.json:
        print(json.dumps(results, indent=2))
    bad = [r["model"] for r in results if r["missed"] or r["missed_full"]]
    print(f"missed by l2-suite (+ its companions against the full reference): "
          f"{', '.join(bad) if bad else 'none'}", file=sys.stderr)
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    run_main(main)
