"""`robbench eval`."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tabulate import tabulate

from robbench.cli.options import csv_list
from robbench.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED, RUNS_DIR


@click.command("eval")
@click.option("--model", "model_id", required=True,
              help="Zoo model id (see `robbench models`), or a third-party nn.Module factory: "
                   "PKG.MODULE:FACTORY or path/file.py:FACTORY (with --dataset).")
@click.option("--dataset", default=None,
              help="Dataset id; required for a third-party --model (default: the zoo model's).")
@click.option("--attacks", required=True, callback=csv_list, help="Comma-separated attack ids.")
@click.option("--n-examples", type=int, default=None, help="First N test images (default: all).")
@click.option("--eps", type=float, default=None, help="Budget (default: METHODS §1 for the dataset).")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--checkpoint", type=click.Path(), default=None, help="Use this checkpoint file.")
@click.option("--data-root", type=click.Path(), default=None, help="Dataset root ($ROBBENCH_DATA).")
@click.option("--download", is_flag=True, help="Download a missing torchvision dataset.")
@click.option("--runs-dir", type=click.Path(), default=None,
              help=f"Results store (default: {RUNS_DIR}; runs-external for a third-party model).")
@click.option("--leaderboard", type=click.Path(), default=None,
              help="Leaderboard CSV to update (default: leaderboards/<dataset>-<norm>.csv for "
                   "runs/, leaderboards-external/... for a third-party model, "
                   "DIR/leaderboards/... for any other --runs-dir DIR).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: shard each attack's samples over Ray tasks (pip install -e .[ray]).")
@click.option("--shards", type=int, default=2, show_default=True, help="Ray tasks per attack.")
@click.option("--address", default=None, help="A running Ray cluster (default: a local Ray).")
@click.option("--recompute", default="", callback=csv_list,
              help="Attacks whose rows on record were computed with other parameters: replace "
                   "them (without it such rows are an error, never dropped silently).")
@click.option("--cascade", is_flag=True,
              help="Worst case only: each attack runs on the samples every earlier one left "
                   "robust, cheapest first (one column, the cascade's; no per-attack columns).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_command(model_id, dataset, attacks, n_examples, eps, batch_size, seed, device, checkpoint,
                 data_root, download, runs_dir, leaderboard, backend, shards, address,
                 recompute, cascade, as_json) -> None:
    """Measure clean and robust accuracy of a model under a set of attacks."""
    from robbench.evaluation.evaluator import EvalRequest, evaluate

    summary = evaluate(EvalRequest(
        model_id=model_id, attacks=attacks, n_examples=n_examples, eps=eps,
        batch_size=batch_size, seed=seed, device=device, checkpoint=checkpoint,
        data_root=data_root, download=download, runs_dir=Path(runs_dir) if runs_dir else None,
        leaderboard=Path(leaderboard) if leaderboard else None,
        backend=backend, shards=shards, address=address, recompute=recompute, cascade=cascade,
        dataset=dataset,
    ))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [["clean", f"{summary['clean_acc']:.2f}", "", ""]]
    for attack_id, res in summary["attacks"].items():
        rows.append([attack_id + (" (earlier run)" if res["from_earlier_run"] else ""),
                     f"{res['robust_acc']:.2f}", res["successes"], res["seconds"]])
    rows.append(["worst case", f"{summary['worst_case_acc']:.2f}", "", ""])
    click.echo(f"{summary['model']} on {summary['dataset']}, {summary['threat_model']} "
               f"eps={summary['eps']:.6g}, n={summary['n_examples']}, seed={summary['seed']}, "
               f"checkpoint {summary['checkpoint_sha256'][:12]}")
    click.echo(tabulate(rows, headers=["", "accuracy %", "successes", "seconds"]))
    spent = summary["cost"]
    click.echo(f"cost: {spent['forward_per_point']:.0f} forward + {spent['backward_per_point']:.0f} "
               f"backward passes per point, {spent['seconds']:.0f} s"
               + (f" on {spent['device']}" if spent["device"] else ""))
    click.echo(f"per-sample results: {summary['run_dir']}\nleaderboard: {summary['leaderboard']}")
    for note in summary.get("notes", []):
        click.echo(f"note: {note}")
    for flag in summary.get("unreliable", []):
        if flag["check"] == "adaptive-fallback":
            click.echo(f"unreliable: {flag['reason']}")
    if summary["leaderboard_kept"]:
        click.echo(f"note: the leaderboard row of {summary['leaderboard_model']} was left as it "
                   f"was: {summary['leaderboard_kept']}")
    elif summary["leaderboard_n_examples"] > summary["n_examples"]:
        click.echo(f"note: the leaderboard row of {summary['leaderboard_model']} keeps the larger "
                   f"run on record (n={summary['leaderboard_n_examples']}); the numbers above are "
                   f"over the first {summary['n_examples']} samples only")
