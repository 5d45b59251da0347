"""`robbench migrate`."""

from __future__ import annotations

from pathlib import Path

import click

from robbench.config import RUNS_DIR


@click.command("migrate")
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True)
def migrate_command(runs_dir) -> int:
    """Upgrade a results store to the store format this robbench reads (idempotent)."""
    import robbench.attacks  # noqa: F401  (the records' meaning check needs the minimum-norm attacks)
    from robbench.store.migration import migrate_store

    for line in migrate_store(Path(runs_dir)):
        click.echo(line)
    return 0
