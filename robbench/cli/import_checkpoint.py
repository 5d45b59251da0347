"""`robbench import-checkpoint`."""

from __future__ import annotations

import json

import click


@click.command("import-checkpoint")
@click.option("--model", "model_id", required=True, help="Zoo model id whose architecture to fill.")
@click.option("--from", "source", required=True, type=click.Path(),
              help="PyTorch state dict (.pth), read with torch.load(weights_only=True) only.")
@click.option("--key-map", type=click.Path(), default=None,
              help="JSON: select, strip_prefixes, prefix_rules, rename, fill (default: strip module.).")
@click.option("--out", required=True, type=click.Path(), help="The safetensors checkpoint to write.")
@click.option("--allow-nonfinite", is_flag=True,
              help="Import tensors holding NaN or infinite values (refused by default; such a "
                   "checkpoint cannot be evaluated).")
@click.option("--force", is_flag=True,
              help="Replace an existing --out file (never a zoo checkpoint).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_checkpoint_command(model_id, source, key_map, out, allow_nonfinite, force,
                              as_json) -> None:
    """Convert a reference implementation's state dict into a robbench checkpoint."""
    from robbench.evaluation.checkpoint_import import import_checkpoint

    report = import_checkpoint(model_id, source, out, key_map, allow_nonfinite=allow_nonfinite,
                               force=force)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(f"wrote {report.out} for {report.model}: {report.mapped} tensors mapped, "
               f"sha256 {report.sha256}")
    click.echo(f"source sha256 {report.source_sha256}")
    for label, keys in (("unmatched source keys (dropped)", report.unmatched),
                        ("filled", report.filled), ("cast to the model's dtype", report.converted)):
        if keys:
            click.echo(f"{label}: {len(keys)}: {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}")
    click.echo(f"evaluate: robbench eval --model {report.model} --checkpoint {report.out} ...")
