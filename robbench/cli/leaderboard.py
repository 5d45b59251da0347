"""`robbench leaderboard build`."""

from __future__ import annotations

from pathlib import Path

import click

from robbench.cli.options import csv_list
from robbench.config import LEADERBOARD_DIR, RUNS_DIR
from robbench.errors import RobbenchError


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Regenerate the leaderboards (CSV, Markdown, HTML) from runs/ and the papers."""


@leaderboard_group.command("build")
@click.option("--dataset", default=None, help="Only this dataset's leaderboards (default: all).")
@click.option("--evaluate", "run_evaluations", is_flag=True,
              help="Evaluate zoo models (with a committed checkpoint) that have no results.")
@click.option("--attacks", default="pgd100", show_default=True, callback=csv_list,
              help="Attacks for --evaluate.")
@click.option("--n-examples", type=int, default=None, help="For --evaluate (default: all).")
@click.option("--device", default="cpu", show_default=True, help="For --evaluate.")
@click.option("--data-root", type=click.Path(), default=None, help="For --evaluate.")
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True)
@click.option("--out", type=click.Path(), default=LEADERBOARD_DIR, show_default=True,
              help="Leaderboard directory to regenerate.")
@click.option("--paper-results", type=click.Path(), default=None,
              help="Papers' reported numbers (default: OUT/paper_results.csv, else "
                   "leaderboards/paper_results.csv).")
@click.option("--prune", is_flag=True,
              help="Delete leaderboard CSVs that no run or paper row supports any more.")
def leaderboard_build_command(dataset, run_evaluations, attacks, n_examples, device, data_root,
                              runs_dir, out, paper_results, prune) -> None:
    """Rebuild every leaderboards/*.csv from the per-sample results, then .md and index.html."""
    from robbench.evaluation.evaluator import resolve_attacks, resolve_device
    from robbench.leaderboard.builder import build
    from robbench.store.paths import check_data_root, check_input_dir, check_input_file, check_output_dir

    if not attacks:
        raise RobbenchError("--attacks is empty; give attack ids, e.g. --attacks pgd100 "
                            "(see `robbench attacks`)")
    check_output_dir(out, "--out")
    check_input_file(paper_results, "--paper-results")
    if run_evaluations:
        resolve_device(device)
        resolve_attacks(attacks)
        if n_examples is not None and n_examples <= 0:
            raise RobbenchError(f"--n-examples must be positive, got {n_examples}")
        check_data_root(data_root)
        check_output_dir(runs_dir, "--runs-dir")  # --evaluate writes its runs there
    elif not Path(runs_dir).exists():
        raise RobbenchError(f"--runs-dir {runs_dir} does not exist (--evaluate evaluates the zoo "
                            f"models into it)")
    else:
        check_input_dir(runs_dir, "--runs-dir")
    report = build(out=Path(out), runs_dir=Path(runs_dir), dataset=dataset,
                   paper_results=Path(paper_results) if paper_results else None,
                   run_evaluations=run_evaluations, attacks=attacks, n_examples=n_examples,
                   device=device, data_root=data_root, prune=prune,
                   log=lambda msg: click.echo(msg, err=True))
    for path in report.written:
        click.echo(f"wrote {path} ({report.rows[path.name]} rows)")
    click.echo(f"rendered {len(report.rendered)} files: {', '.join(p.name for p in report.rendered)}")
    for path in report.removed:
        click.echo(f"removed {path}")
    for path in report.stale:
        click.echo(f"warning: {path} has no current run or paper row; left as is "
                   f"(--prune deletes it)", err=True)
    if report.without_results:
        click.echo(f"note: no results under {runs_dir} for the current checkpoint of "
                   f"{len(report.without_results)} zoo model(s): {', '.join(report.without_results)}"
                   f"{'' if run_evaluations else ' (--evaluate evaluates them)'}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
