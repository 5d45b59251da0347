"""`robbench train`: the one command that imports model_zoo (its recipes)."""

from __future__ import annotations

import json

import click

from robbench.errors import RobbenchError


@click.command("train")
@click.option("--model", "model_id", required=True, help="Zoo model id.")
@click.option("--epochs", type=int, default=None, help="Override the recipe's epochs.")
@click.option("--output", type=click.Path(), default=None,
              help="Write the checkpoint here instead of the zoo (manifest left untouched).")
@click.option("--data-root", type=click.Path(), default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe argument (JSON value), e.g. --set warm_epochs=1; "
                   "with --output only; recorded in the checkpoint.")
@click.option("--train-subset", type=int, default=None,
              help="Train on the first N training images only (with --output; recorded).")
def train_command(model_id, epochs, output, data_root, device, overrides, train_subset) -> None:
    """Train a zoo model with its recipe and seed."""
    from model_zoo.train import train_model
    from robbench.evaluation.evaluator import resolve_device

    if epochs is not None and epochs <= 0:
        raise RobbenchError(f"--epochs must be positive, got {epochs}")
    train_model(model_id, output=output, epochs=epochs, data_root=data_root,
                device=str(resolve_device(device)), log=lambda msg: click.echo(msg, err=True),
                overrides=_parse_overrides(overrides), train_subset=train_subset)


def _parse_overrides(pairs: tuple[str, ...]) -> dict[str, object]:
    """KEY=VALUE pairs, VALUE as JSON (a bare word stays a string)."""
    found: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RobbenchError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set epochs=1")
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found
