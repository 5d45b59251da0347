"""`robbench verify`."""

from __future__ import annotations

from pathlib import Path

import click

from robbench.config import LEADERBOARD_DIR, RUNS_DIR


@click.command("verify")
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True)
@click.option("--leaderboards", type=click.Path(), default=LEADERBOARD_DIR, show_default=True,
              help="Leaderboards to compare with a fresh build from the store.")
@click.option("--no-leaderboards", is_flag=True, help="Check the store only.")
def verify_command(runs_dir, leaderboards, no_leaderboards) -> int:
    """Check every record of the results store and the leaderboards built from it."""
    from robbench.leaderboard.verification import verify

    report = verify(Path(runs_dir), None if no_leaderboards else Path(leaderboards))
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    summary = (f"{report.runs} runs, {report.records} records, {report.leaderboards} "
               f"leaderboards compared")
    if report.problems:
        click.echo(f"verify failed: {len(report.problems)} problem(s); {summary}", err=True)
        return 1
    click.echo(f"verified: {summary}; no problem found")
    return 0
