"""The CIFAR-10 path end to end on CPU: a short-budget `clustr-cifar10` (ResNet-18)
checkpoint evaluated three ways, each into its own fresh store, timed:

1. `robbench eval --model clustr-cifar10 --checkpoint CKPT --attacks ATTACKS`;
2. the same through the Python API (`robbench.evaluate`);
3. the checkpoint's state dict saved as a reference `.pth` (`module.` prefix, the trunk
   renamed `features.`), brought back by `robbench import-checkpoint` with a key map,
   then evaluated as in 1.

    python -m benchmarks.fake_cifar DATA                       # CIFAR-10 layout from mnist-t10k
    robbench train --model clustr-cifar10 --data-root DATA --output CKPT \\
        --train-subset 1000 --set warm_epochs=1 --set epochs=1
    python -m benchmarks.cifar_path --data-root DATA --checkpoint CKPT --n-examples 200 \\
        --json benchmarks/results-cifar-path-cpu.json

The data is digits in CIFAR-10's format: the numbers are of the pipeline, not of CIFAR-10."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import run_main

MODEL = "clustr-cifar10"


def cli(*args: str) -> tuple[dict, float]:
    """Runs `python -m robbench ARGS --json`; (summary, wall seconds)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "robbench", *args, "--json"], capture_output=True,
                          text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"robbench {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout), round(time.perf_counter() - start, 1)


def brief(summary: dict, seconds: float) -> dict:
    return {"clean_acc": summary["clean_acc"], "worst_case_acc": summary["worst_case_acc"],
            "robust_acc": {a: r["robust_acc"] for a, r in summary["attacks"].items()},
            "attack_seconds": {a: r["seconds"] for a, r in summary["attacks"].items()},
            "unreliable": [f["reason"] for f in summary["unreliable"]],
            "checkpoint_sha256": summary["checkpoint_sha256"], "n_examples": summary["n_examples"],
            "wall_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--attacks", default="pgd100,adaptive")
    parser.add_argument("--n-examples", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    common = ["--data-root", args.data_root, "--n-examples", str(args.n_examples)]
    results: dict = {"model": MODEL, "attacks": args.attacks, "device": "cpu",
                     "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                     "torch": torch.__version__, "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def store(name: str) -> list[str]:
            return ["--runs-dir", str(tmp / name / "runs"), "--leaderboard", str(tmp / name / "b.csv")]

        summary, seconds = cli("eval", "--model", MODEL, "--checkpoint", args.checkpoint,
                               "--attacks", args.attacks, *common, *store("cli"))
        results["cli"] = brief(summary, seconds)
        print("cli", results["cli"], flush=True)

        import robbench

        start = time.perf_counter()
        result = robbench.evaluate(MODEL, checkpoint=args.checkpoint, attacks=args.attacks.split(","),
                                   n_examples=args.n_examples, data_root=args.data_root,
                                   runs_dir=tmp / "api" / "runs", leaderboard=tmp / "api" / "b.csv")
        results["api"] = brief(result.summary, round(time.perf_counter() - start, 1))
        results["api"]["per_sample_rows"] = len(result.per_sample)
        print("api", results["api"], flush=True)

        from safetensors.torch import load_file

        state = load_file(args.checkpoint)
        reference = {"module." + k.replace("body.trunk.", "features."): v for k, v in state.items()
                     if not k.endswith("num_batches_tracked")}
        torch.save({"state_dict": reference, "epoch": 1}, tmp / "reference.pth")
        (tmp / "map.json").write_text(json.dumps({"strip_prefixes": ["module."],
                                                  "prefix_rules": {"features.": "body.trunk."}}))
        report, seconds = cli("import-checkpoint", "--model", MODEL, "--from", str(tmp / "reference.pth"),
                              "--key-map", str(tmp / "map.json"), "--out", str(tmp / "imported.safetensors"))
        results["import"] = {"mapped": report["mapped"], "filled": report["filled"],
                             "unmatched": report["unmatched"], "wall_seconds": seconds}
        summary, seconds = cli("eval", "--model", MODEL, "--checkpoint", str(tmp / "imported.safetensors"),
                               "--attacks", args.attacks, *common, *store("imported"))
        results["imported_eval"] = brief(summary, seconds)
        print("imported", results["imported_eval"], flush=True)
    results["same_numbers_three_ways"] = len({json.dumps([r["clean_acc"], r["robust_acc"]], sort_keys=True)
                                              for r in (results["cli"], results["api"],
                                                        results["imported_eval"])}) == 1
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    run_main(main)
