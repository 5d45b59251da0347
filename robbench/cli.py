"""The `robbench` command line. Bad input ends in one `error:` line and exit 1."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click
from tabulate import tabulate

from robbench.config import DEFAULT_BATCH_SIZE, DEFAULT_SEED, RUNS_DIR
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


def _csv_list(ctx, param, value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@cli.command("eval")
@click.option("--model", "model_id", required=True,
              help="Zoo model id (see `robbench models`), or a third-party nn.Module factory: "
                   "PKG.MODULE:FACTORY or path/file.py:FACTORY (with --dataset).")
@click.option("--dataset", default=None,
              help="Dataset id; required for a third-party --model (default: the zoo model's).")
@click.option("--attacks", required=True, callback=_csv_list, help="Comma-separated attack ids.")
@click.option("--n-examples", type=int, default=None, help="First N test images (default: all).")
@click.option("--eps", type=float, default=None, help="Budget (default: METHODS §1 for the dataset).")
@click.option("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, show_default=True)
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--checkpoint", type=click.Path(), default=None, help="Use this checkpoint file.")
@click.option("--data-root", type=click.Path(), default=None, help="Dataset root ($ROBBENCH_DATA).")
@click.option("--download", is_flag=True, help="Download a missing torchvision dataset.")
@click.option("--runs-dir", type=click.Path(), default=None,
              help=f"Results store (default: {RUNS_DIR}; runs-external for a third-party model).")
@click.option("--leaderboard", type=click.Path(), default=None,
              help="Leaderboard CSV to update (default: leaderboards/<dataset>-<norm>.csv for "
                   "runs/, leaderboards-external/... for a third-party model, "
                   "DIR/leaderboards/... for any other --runs-dir DIR).")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: shard each attack's samples over Ray tasks (pip install -e .[ray]).")
@click.option("--shards", type=int, default=2, show_default=True, help="Ray tasks per attack.")
@click.option("--address", default=None, help="A running Ray cluster (default: a local Ray).")
@click.option("--recompute", default="", callback=_csv_list,
              help="Attacks whose rows on record were computed with other parameters: replace "
                   "them (without it such rows are an error, never dropped silently).")
@click.option("--cascade", is_flag=True,
              help="Worst case only: each attack runs on the samples every earlier one left "
                   "robust, cheapest first (one column, the cascade's; no per-attack columns).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_command(model_id, dataset, attacks, n_examples, eps, batch_size, seed, device, checkpoint,
                 data_root, download, runs_dir, leaderboard, backend, shards, address,
                 recompute, cascade, as_json) -> None:
    """Measure clean and robust accuracy of a model under a set of attacks."""
    from robbench.evaluate import EvalRequest, evaluate

    summary = evaluate(EvalRequest(
        model_id=model_id, attacks=attacks, n_examples=n_examples, eps=eps,
        batch_size=batch_size, seed=seed, device=device, checkpoint=checkpoint,
        data_root=data_root, download=download, runs_dir=Path(runs_dir) if runs_dir else None,
        leaderboard=Path(leaderboard) if leaderboard else None,
        backend=backend, shards=shards, address=address, recompute=recompute, cascade=cascade,
        dataset=dataset,
    ))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [["clean", f"{summary['clean_acc']:.2f}", "", ""]]
    for attack_id, res in summary["attacks"].items():
        rows.append([attack_id + (" (earlier run)" if res["from_earlier_run"] else ""),
                     f"{res['robust_acc']:.2f}", res["successes"], res["seconds"]])
    rows.append(["worst case", f"{summary['worst_case_acc']:.2f}", "", ""])
    click.echo(f"{summary['model']} on {summary['dataset']}, {summary['threat_model']} "
               f"eps={summary['eps']:.6g}, n={summary['n_examples']}, seed={summary['seed']}, "
               f"checkpoint {summary['checkpoint_sha256'][:12]}")
    click.echo(tabulate(rows, headers=["", "accuracy %", "successes", "seconds"]))
    click.echo(f"per-sample results: {summary['run_dir']}\nleaderboard: {summary['leaderboard']}")
    for note in summary.get("notes", []):
        click.echo(f"note: {note}")
    for flag in summary.get("unreliable", []):
        if flag["check"] == "adaptive-fallback":
            click.echo(f"unreliable: {flag['reason']}")
    if summary["leaderboard_kept"]:
        click.echo(f"note: the leaderboard row of {summary['leaderboard_model']} was left as it "
                   f"was: {summary['leaderboard_kept']}")
    elif summary["leaderboard_n_examples"] > summary["n_examples"]:
        click.echo(f"note: the leaderboard row of {summary['leaderboard_model']} keeps the larger "
                   f"run on record (n={summary['leaderboard_n_examples']}); the numbers above are "
                   f"over the first {summary['n_examples']} samples only")


@cli.command("train")
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
    from robbench.evaluate import resolve_device

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


@cli.command("import-checkpoint")
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
    from robbench.import_checkpoint import import_checkpoint

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


@cli.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_command(as_json) -> None:
    """List the zoo models."""
    from model_zoo.zoo import MODELS

    rows = [{"id": mid, "dataset": e.dataset, "defense": e.defense, "architecture": e.architecture,
             "checkpoint": e.checkpoint, "checkpoint_sha256": e.checkpoint_sha256,
             "reference": e.reference} for mid, e in MODELS.items()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(tabulate([[r["id"], r["dataset"], r["defense"], r["architecture"],
                              "yes" if r["checkpoint"] else "no"] for r in rows],
                            headers=["model", "dataset", "defense", "architecture", "checkpoint"]))


@cli.command("attacks")
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


from robbench.config import LEADERBOARD_DIR  # noqa: E402 (used by the commands below)


@cli.group("leaderboard")
def leaderboard_group() -> None:
    """Regenerate the leaderboards (CSV, Markdown, HTML) from runs/ and the papers."""


@leaderboard_group.command("build")
@click.option("--dataset", default=None, help="Only this dataset's leaderboards (default: all).")
@click.option("--evaluate", "run_evaluations", is_flag=True,
              help="Evaluate zoo models (with a committed checkpoint) that have no results.")
@click.option("--attacks", default="pgd100", show_default=True, callback=_csv_list,
              help="Attacks for --evaluate.")
@click.option("--n-examples", type=int, default=None, help="For --evaluate (default: all).")
@click.option("--device", default="cpu", show_default=True, help="For --evaluate.")
@click.option("--data-root", type=click.Path(), default=None, help="For --evaluate.")
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True)
@click.option("--out", type=click.Path(), default=LEADERBOARD_DIR, show_default=True,
              help="Leaderboard directory to regenerate.")
@click.option("--paper-results", type=click.Path(), default=None,
              help="Papers' reported numbers (default: OUT/paper_results.csv, else "
                   "leaderboards/paper_results.csv).")
@click.option("--prune", is_flag=True,
              help="Delete leaderboard CSVs that no run or paper row supports any more.")
def leaderboard_build_command(dataset, run_evaluations, attacks, n_examples, device, data_root,
                              runs_dir, out, paper_results, prune) -> None:
    """Rebuild every leaderboards/*.csv from the per-sample results, then .md and index.html."""
    from robbench.evaluate import resolve_attacks, resolve_device
    from robbench.leaderboard_build import build
    from robbench.paths import check_data_root, check_input_dir, check_input_file, check_output_dir

    if not attacks:
        raise RobbenchError("--attacks is empty; give attack ids, e.g. --attacks pgd100 "
                            "(see `robbench attacks`)")
    check_output_dir(out, "--out")
    check_input_file(paper_results, "--paper-results")
    if run_evaluations:
        resolve_device(device)
        resolve_attacks(attacks)
        if n_examples is not None and n_examples <= 0:
            raise RobbenchError(f"--n-examples must be positive, got {n_examples}")
        check_data_root(data_root)
        check_output_dir(runs_dir, "--runs-dir")  # --evaluate writes its runs there
    elif not Path(runs_dir).exists():
        raise RobbenchError(f"--runs-dir {runs_dir} does not exist (--evaluate evaluates the zoo "
                            f"models into it)")
    else:
        check_input_dir(runs_dir, "--runs-dir")
    report = build(out=Path(out), runs_dir=Path(runs_dir), dataset=dataset,
                   paper_results=Path(paper_results) if paper_results else None,
                   run_evaluations=run_evaluations, attacks=attacks, n_examples=n_examples,
                   device=device, data_root=data_root, prune=prune,
                   log=lambda msg: click.echo(msg, err=True))
    for path in report.written:
        click.echo(f"wrote {path} ({report.rows[path.name]} rows)")
    click.echo(f"rendered {len(report.rendered)} files: {', '.join(p.name for p in report.rendered)}")
    for path in report.removed:
        click.echo(f"removed {path}")
    for path in report.stale:
        click.echo(f"warning: {path} has no current run or paper row; left as is "
                   f"(--prune deletes it)", err=True)
    if report.without_results:
        click.echo(f"note: no results under {runs_dir} for the current checkpoint of "
                   f"{len(report.without_results)} zoo model(s): {', '.join(report.without_results)}"
                   f"{'' if run_evaluations else ' (--evaluate evaluates them)'}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


@cli.command("check")
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
    from robbench.check import check, parse_tolerance

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


def _float_list(ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise RobbenchError(f"--eps must be a comma-separated list of numbers, got {value!r}") from None
    if not values or any(not (v >= 0 and v < float("inf")) for v in values):
        raise RobbenchError(f"--eps values must be finite and non-negative, got {value!r}")
    return values


@cli.command("analyze")
@click.option("--model", "model_ids", default="", callback=_csv_list,
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
@click.option("--eps", default=None, callback=_float_list,
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
    from robbench.paths import check_data_root, check_input_file, check_output_dir, check_output_file

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



@cli.command("verify")
@click.option("--runs-dir", type=click.Path(), default=RUNS_DIR, show_default=True)
@click.option("--leaderboards", type=click.Path(), default=LEADERBOARD_DIR, show_default=True,
              help="Leaderboards to compare with a fresh build from the store.")
@click.option("--no-leaderboards", is_flag=True, help="Check the store only.")
def verify_command(runs_dir, leaderboards, no_leaderboards) -> int:
    """Check every record of the results store and the leaderboards built from it."""
    from robbench.verify import verify

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

if __name__ == "__main__":  # python -m robbench.cli
    main()
