"""The `robbench` command line: the click group, one module per command (robbench.cli.*).
Bad input ends in one `error:` line and exit 1. Commands import what they run on first
use, so `robbench --help` stays fast."""

from __future__ import annotations

import os
import signal
import sys

import click

from robbench.cli.analyze import analyze_command
from robbench.cli.attacks import attacks_command
from robbench.cli.check import check_command
from robbench.cli.eval import eval_command
from robbench.cli.import_checkpoint import import_checkpoint_command
from robbench.cli.leaderboard import leaderboard_group
from robbench.cli.migrate import migrate_command
from robbench.cli.models import models_command
from robbench.cli.train import train_command
from robbench.cli.verify import verify_command
from robbench.errors import RobbenchError


def _raise_interrupt(signum, frame):  # SIGTERM behaves like Ctrl-C
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _raise_interrupt)
    sys.exit(run(sys.argv[1:]))


def run(argv: list[str]) -> int:
    """Runs the CLI and returns its exit code; every failure is one line on stderr."""
    try:
        result = cli.main(argv, prog_name="robbench", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except RobbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted: finished results are kept under runs/; run the same "
                   "command again to resume", err=True)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line, traceback on request
        if os.environ.get("ROBBENCH_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} "
                   f"(set ROBBENCH_DEBUG=1 for the traceback)", err=True)
        return 3


@click.group()
@click.version_option(package_name="robbench")
def cli() -> None:
    """Robustness evaluation for clustering- and prototype-based defenses."""


for _command in (eval_command, train_command, import_checkpoint_command, models_command,
                 attacks_command, leaderboard_group, check_command, analyze_command, verify_command,
                 migrate_command):
    cli.add_command(_command)
