"""`robbench models`."""

from __future__ import annotations

import json

import click
from tabulate import tabulate


@click.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_command(as_json) -> None:
    """List the zoo models."""
    from robbench.zoo.lookup import MODELS

    rows = [{"id": mid, "dataset": e.dataset, "defense": e.defense, "architecture": e.architecture,
             "checkpoint": e.checkpoint, "checkpoint_sha256": e.checkpoint_sha256,
             "reference": e.reference} for mid, e in MODELS.items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(tabulate([[r["id"], r["dataset"], r["defense"], r["architecture"],
                              "yes" if r["checkpoint"] else "no"] for r in rows],
                            headers=["model", "dataset", "defense", "architecture", "checkpoint"]))
