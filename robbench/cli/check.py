"""`robbench check`: the gate (robbench.evaluation.gate)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from tabulate import tabulate

from robbench.config import DEFAULT_BATCH_SIZE
from robbench.errors import RobbenchError


@click.command("check")
@click.option("--model", "model_id", required=True, help="Zoo model id.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="Checkpoint to check (default: the zoo's committed one).")
@click.option("--leaderboard", type=click.Path(), default=None,
              help="Leaderboard CSV with the model's row (default: leaderboards/<dataset>-Linf.csv).")
@click.option("--tolerance", default="auto", show_default=True,
              help="Allowed drop (and rise) in points, or auto: a one-sided 95% binomial bound for n.")
@click.option("--strong/--no-strong", default=True, show_default=True,
              help="Also run the strongest attacks for the defense that the row lacks: its "
                   "adaptive attacks and AutoAttack (aa, or aa-l2 for L2 rows).")
@click.option("--allow-params", is_flag=True,
              help="Check a checkpoint whose defense parameters (e.g. d_near, alpha) differ "
                   "from the manifest's instead of failing on them.")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--data-root", type=click.Path(), default=None, help="Dataset root ($ROBBENCH_DATA).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check_command(model_id, checkpoint, leaderboard, tolerance, strong, allow_params, batch_size,
                  device, data_root, as_json) -> int:
    """Re-evaluate a checkpoint as its leaderboard row was measured, plus the strongest
    attacks; exit 1 on a drop, the masking signature, a new unreliable flag or a
    configuration that differs from the manifest's."""
    from robbench.evaluation.gate import check, parse_tolerance

    points = parse_tolerance(tolerance)
    if batch_size <= 0:
        raise RobbenchError(f"--batch-size must be positive, got {batch_size}")
    result = check(model_id, checkpoint=checkpoint,
                   leaderboard=Path(leaderboard) if leaderboard else None, tolerance=points,
                   device=device, data_root=data_root, batch_size=batch_size, strong=strong,
                   allow_params=allow_params)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        click.echo(f"{result.model}: {result.threat_model} eps={result.eps:.6g}, "
                   f"n={result.n_examples}, seed={result.seed}, checkpoint "
                   f"{result.checkpoint_sha256[:12]} (row recorded "
                   f"{result.recorded_checkpoint_sha256[:12] or 'none'}), {result.leaderboard}")
        if result.config_differences:
            click.echo(f"configuration differs from the manifest's: "
                       f"{', '.join(result.config_differences)}"
                       f"{' (allowed: --allow-params)' if result.allow_params and result.evaluated else ''}")
        if result.metrics:
            marks = {"ok": "ok", "dropped": "FAIL", "rose": "ROSE", "not recorded": "not recorded"}
            click.echo(tabulate([[m.metric, "-" if m.recorded is None else f"{m.recorded:.2f}",
                                  f"{m.measured:.2f}",
                                  "-" if m.tolerance is None else f"{m.tolerance:.2f}",
                                  marks.get(m.status, m.status)]
                                 for m in result.metrics],
                                headers=["metric", "recorded %", "measured %", "tolerance", ""],
                                disable_numparse=True,
                                colalign=("left", "right", "right", "right", "left")))
        if result.evaluated:
            extra = (", ".join(result.strong_attacks) + " (not in the row)" if result.strong_attacks
                     else "none missing from the row" if result.strong else "off (--no-strong)")
            click.echo(f"strong attacks: {extra}")
            click.echo("unreliable: " + ("; ".join(f["reason"] for f in result.unreliable_measured)
                                         or "none"))
    if not result.passed:
        click.echo(f"check failed: {result.model}: {result.reason}", err=True)
        return 1
    if not as_json:
        click.echo(f"check passed: {result.model}")
    return 0
