"""`robbench analyze`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from robbench.cli.options import csv_list, float_list
from robbench.config import DEFAULT_SEED, RUNS_DIR
from robbench.errors import RobbenchError


@click.command("analyze")
@click.option("--model", "model_ids", default="", callback=csv_list,
              help="Zoo model id; curve takes several (a,b,...).")
@click.option("--what", required=True, type=click.Choice(
    ["radius", "match-rate", "cosine", "weight-corr", "feature-dist", "confusion", "curve",
     "kmeans-head"]),
    help="Which analysis (METHODS §4).")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write the plot to FILE.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="Analyse this checkpoint of the (one) --model instead of the zoo's.")
@click.option("--n-examples", type=int, default=None, help="First N test images (default: 100).")
@click.option("--data-root", type=click.Path(), default=None, help="Dataset root ($ROBBENCH_DATA).")
@click.option("--eps", default=None, callback=float_list,
              help="radius: radii to report; curve: the eps grid; match-rate/cosine/confusion: "
                   "the attack's eps (default: the protocol's).")
@click.option("--synthetic", type=click.Choice(["moons", "circles"]), default=None,
              help="radius only: the 2D experiment (random init vs warm start) instead of a zoo model.")
@click.option("--epochs", type=int, default=30, show_default=True, help="--synthetic training epochs.")
@click.option("--lipschitz", type=click.Choice(["power", "fft"]), default="power", show_default=True,
              help="radius: conv norms by power iteration (METHODS) or a certified FFT bound.")
@click.option("--steps", type=int, default=None, help="Override the attacks' steps (quick runs).")
@click.option("--restarts", type=int, default=None, help="Override the attacks' restarts.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True,
              help="kmeans-head: where its record is kept (the leaderboards' findings read it).")
def analyze_command(model_ids, what, plot, as_json, checkpoint, n_examples, data_root, eps, synthetic,
                    epochs, lipschitz, steps, restarts, seed, device, runs_dir) -> None:
    """Certified radius, feature clustering, linearised-network and robustness-curve analyses."""
    from robbench.analysis import run_analysis
    from robbench.analysis.common import AnalysisOptions, check_plot_path
    from robbench.store.paths import check_data_root, check_input_file, check_output_dir, check_output_file

    check_plot_path(plot)
    if plot is not None:
        check_output_file(plot, "--plot")
    check_data_root(data_root)
    if what == "kmeans-head":
        check_output_dir(runs_dir, "--runs-dir")
    if checkpoint is not None:
        if synthetic:
            raise RobbenchError("--checkpoint goes with --model, not --synthetic")
        if len(model_ids) != 1:
            raise RobbenchError(f"--checkpoint goes with one --model; got {len(model_ids)}")
        check_input_file(checkpoint, "--checkpoint")
    for name, value in (("--steps", steps), ("--restarts", restarts), ("--epochs", epochs)):
        if value is not None and value <= 0:
            raise RobbenchError(f"{name} must be positive, got {value}")
    options = AnalysisOptions(n_examples=n_examples, data_root=data_root, eps=eps, seed=seed,
                              device=device, plot=Path(plot) if plot else None, steps=steps,
                              restarts=restarts, checkpoint=checkpoint, runs_dir=Path(runs_dir))
    if synthetic:
        if what != "radius" or model_ids:
            raise RobbenchError("--synthetic goes with --what radius and no --model")
        from robbench.analysis.synthetic import experiment

        report = experiment(synthetic, epochs=epochs, seed=seed, plot=options.plot, radii=eps)
    elif not model_ids:
        raise RobbenchError("--model is required (or --synthetic moons|circles with --what radius)")
    elif what == "radius":
        from robbench.analysis.radius import analyze

        report = analyze(model_ids, options, lipschitz_method=lipschitz)
    else:
        report = run_analysis(what, model_ids, options)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo("\n".join(report.lines))
    click.echo(f"plot: {report.plot}" if report.plot else "plot: none (pass --plot FILE.png)")
