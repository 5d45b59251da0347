"""The `robbench` command line (the console script is robbench.cli:main)."""

from robbench.cli.app import cli, main, run

__all__ = ["cli", "main", "run"]
