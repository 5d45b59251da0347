"""`robbench attacks`."""

from __future__ import annotations

import json

import click
from tabulate import tabulate


@click.command("attacks")
@click.option("--json", "as_json", is_flag=True)
def attacks_command(as_json) -> None:
    """List the registered attacks and their parameters."""
    from robbench.attacks import ATTACKS

    rows = [{"id": aid, "type": type(a).__name__, **a.params()} for aid, a in ATTACKS.items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(tabulate([[r["id"], r["norm"], r["type"],
                              ", ".join(f"{k}={v}" for k, v in r.items()
                                        if k not in ("id", "norm", "type"))] for r in rows],
                            headers=["attack", "norm", "type", "parameters"]))
