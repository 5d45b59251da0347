"""Rendering the leaderboard CSVs for people: Markdown beside each CSV
(robbench.leaderboard.render.markdown), one robust-accuracy-vs-ε plot per dataset and norm
(robbench.leaderboard.render.plots), findings.md (robbench.leaderboard.render.findings) and one static HTML
page (robbench.leaderboard.render.page).

The output is a function of the CSVs and the findings only: fixed number formatting,
no timestamp, plots without metadata dates, so rendering twice gives byte-identical
files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from robbench.leaderboard.findings import Finding
from robbench.leaderboard.render.findings import FINDINGS, render_findings_html, render_findings_markdown
from robbench.leaderboard.render.markdown import render_markdown
from robbench.leaderboard.render.page import PAGE, render_html
from robbench.leaderboard.render.plots import plot_group
from robbench.store.atomic import write_text_if_changed
from robbench.store.table import parse_name, read_table


def leaderboard_files(out: Path) -> list[Path]:
    return sorted(p for p in Path(out).glob("*.csv") if parse_name(p) is not None)


def render_all(out: Path, findings: list[Finding] | None = None) -> tuple[list[Path], list[Path]]:
    """Markdown per leaderboard CSV in `out`, one plot per dataset and norm, findings.md
    and index.html; Markdown and plots whose CSV is gone are removed. (written, removed)"""
    files = leaderboard_files(out)
    tables = {p: read_table(p) for p in files}
    groups: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in files:
        dataset, norm, eps = parse_name(path)
        groups[(dataset, norm)].append(path)
    written: list[Path] = []

    plots: dict[tuple[str, str], Path] = {}
    for (dataset, norm), paths in sorted(groups.items()):
        rows = [r for p in paths for r in tables[p].to_dict("records")]
        svg = plot_group(rows, dataset, norm)
        if svg is not None:
            plot = out / f"{dataset}-{norm}.svg"
            write_text_if_changed(plot, svg)
            plots[(dataset, norm)] = plot
            written.append(plot)
    for path in files:
        dataset, norm, _ = parse_name(path)
        md = path.with_suffix(".md")
        write_text_if_changed(md, render_markdown(path, tables[path], plots.get((dataset, norm))))
        written.append(md)
    section = ""
    if findings:
        write_text_if_changed(out / FINDINGS, render_findings_markdown(findings))
        written.append(out / FINDINGS)
        section = render_findings_html(findings)
    page = out / PAGE
    write_text_if_changed(page, render_html(groups, tables, plots, section))
    written.append(page)

    keep, removed = set(written), []
    for orphan in sorted([*out.glob("*.md"), *out.glob("*.svg")]):
        if orphan not in keep and parse_name(orphan) is not None:
            orphan.unlink()
            removed.append(orphan)
    return written, removed
