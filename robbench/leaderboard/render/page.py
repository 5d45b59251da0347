"""The static leaderboard page, index.html: sortable tables, the plots and the findings.
Its HTML skeleton, style sheet and sorting script are files in templates/."""

from __future__ import annotations

import html
import string
from pathlib import Path

import pandas as pd

from robbench.leaderboard.render.findings import FINDINGS_STYLE
from robbench.leaderboard.render.format import NORM_LABEL, fmt_cell, is_unreliable, table_title
from robbench.store.table import TRAILING, attack_columns, is_missing, parse_name

PAGE = "index.html"

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLE = (TEMPLATES / "page.css").read_text(encoding="utf-8")
SCRIPT = (TEMPLATES / "page.js").read_text(encoding="utf-8")  # click a header to sort
PAGE_TEMPLATE = string.Template((TEMPLATES / "page.html").read_text(encoding="utf-8"))


# The default view: what a reader compares, what each number cost included. Everything
# else is provenance, shown on demand.
SHOWN = ["model", "defense", "clean_acc", "worst_case_acc", "forward_per_point",
         "backward_per_point"]
PROVENANCE = ["dataset", "threat_model", "eps", "architecture",
              *[c for c in TRAILING if c not in SHOWN]]
WIDE_COLUMNS = ("unreliable", "reference")


def _file_order(path: Path) -> tuple[bool, float, str]:
    """The protocol-ε table first, then the others by ε."""
    eps = parse_name(path)[2]
    return eps is not None, eps or 0.0, path.name


def page_columns(table: pd.DataFrame) -> list[tuple[str, bool]]:
    """(column, is provenance): the compact columns, the attacks, then provenance."""
    present = list(table.columns)
    shown = [c for c in SHOWN if c in present] + attack_columns(present)
    rest = [c for c in PROVENANCE if c in present]
    rest += [c for c in present if c not in shown and c not in rest]
    return [(c, False) for c in shown] + [(c, True) for c in rest]


def render_cell(column: str, value, row: dict, provenance: bool) -> str:
    esc = html.escape
    classes, attrs = ["prov"] if provenance else [], []
    if column == "model":
        classes.append("key")
        if is_unreliable(row):
            attrs.append(f'title="unreliable: {esc(str(row["unreliable"]))}"')
    elif column in WIDE_COLUMNS:
        classes.append("wide")
    elif isinstance(value, (int, float)) and not is_missing(value):
        classes.append("num")
        attrs.append(f'data-sort="{float(value)!r}"')
    if column == "checkpoint_sha256" and not is_missing(value):
        attrs.append(f'title="{esc(str(value))}"')
    if classes:
        attrs.insert(0, f'class="{" ".join(classes)}"')
    text = esc(fmt_cell(column, value, row.get("dataset")))
    return f"<td{' ' if attrs else ''}{' '.join(attrs)}>{text}</td>"


def render_table(table_id: str, table: pd.DataFrame) -> str:
    esc = html.escape
    columns = page_columns(table)
    prov_class = ' class="prov"'
    head = "".join(f'<th scope="col" data-col="{esc(c)}"{prov_class if prov else ""}>{esc(c)}</th>'
                   for c, prov in columns)
    body = []
    for row in table.to_dict("records"):
        classes = [c for c, on in (("unreliable", is_unreliable(row)),
                                   ("paper", row.get("source") == "paper")) if on]
        cells = "".join(render_cell(c, row[c], row, prov) for c, prov in columns)
        cls = f' class="{" ".join(classes)}"' if classes else ""
        body.append(f"<tr{cls}>{cells}</tr>")
    return (f'<div class="scroll"><table class="leaderboard sortable" id="table-{esc(table_id)}">'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body)
            + "\n</tbody></table></div>")


def group_section(anchor: str, label: str, paths: list[Path], tables: dict[Path, pd.DataFrame],
                  plot: Path | None, heading: str = "h2", id_suffix: str = "") -> str:
    esc = html.escape
    parts = [f'<section id="{esc(anchor)}"><{heading}>{esc(label)}</{heading}>']
    if plot is not None:
        parts.append(f'<figure><img src="{esc(plot.name)}" '
                     f'alt="{esc(label)}: worst-case robust accuracy against ε"></figure>')
    for path in sorted(paths, key=_file_order):
        _, _, eps = table_title(path)
        n_rows = len(tables[path])
        parts.append(f"<h4>ε = {esc(eps)} <span class=\"legend\">({n_rows} "
                     f"row{'s' if n_rows != 1 else ''}; "
                     f'<a href="{esc(path.name)}">CSV</a>, '
                     f'<a href="{esc(path.with_suffix(".md").name)}">Markdown</a>)</span></h4>')
        parts.append(render_table(path.stem + id_suffix, tables[path]))
    parts.append("</section>")
    return "\n".join(parts)


def split_by_source(tables: dict[Path, pd.DataFrame]) -> tuple[dict[Path, pd.DataFrame],
                                                                dict[Path, pd.DataFrame]]:
    """(measured rows, paper rows) of every table; a table without such rows is left out."""
    measured, paper = {}, {}
    for path, table in tables.items():
        is_paper = table["source"] == "paper"
        if (~is_paper).any():
            measured[path] = table[~is_paper]
        if is_paper.any():
            paper[path] = table[is_paper]
    return measured, paper


def render_html(groups: dict[tuple[str, str], list[Path]], tables: dict[Path, pd.DataFrame],
                plots: dict[tuple[str, str], Path], findings_section: str = "") -> str:
    """Measured leaderboards first, then the findings, then the papers' own numbers in
    a section of their own."""
    esc = html.escape
    measured, paper = split_by_source(tables)
    sections, nav, paper_parts, paper_nav = [], [], [], []
    for (dataset, norm), paths in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] != "Linf")):
        label = f"{dataset} · {NORM_LABEL.get(norm, norm)}"
        mine = [p for p in paths if p in measured]
        if mine:
            anchor = f"{dataset}-{norm}"
            nav.append(f'<a href="#{esc(anchor)}">{esc(label)}</a>')
            sections.append(group_section(anchor, label, mine, measured, plots.get((dataset, norm))))
        theirs = [p for p in paths if p in paper]
        if theirs:
            anchor = f"paper-{dataset}-{norm}"
            paper_nav.append(f'<a href="#{esc(anchor)}">{esc(label)}</a>')
            plot = None if mine else plots.get((dataset, norm))
            paper_parts.append(group_section(anchor, label, theirs, paper, plot, "h3",
                                             "" if not mine else "-paper"))
    if findings_section:
        nav.append('<a href="#findings">findings</a>')
    if paper_parts:
        nav.append(f'<a href="#papers">reported by the papers</a> <span class="legend">'
                   f'({" ".join(paper_nav)})</span>')
    papers = ""
    if paper_parts:
        papers = ('<section id="papers" class="papers"><h2>Reported by the papers, not measured '
                  'here</h2>\n<p class="lead">The numbers the defenses\' papers report for '
                  'paper-scale models (paper_results.csv). robbench has not measured them: no '
                  'per-sample results exist, so each row\'s worst case is the minimum of its '
                  'reported accuracies, an upper bound, and every row is marked ⚠.</p>\n'
                  + "\n".join(paper_parts) + "\n</section>")
    return PAGE_TEMPLATE.substitute(
        style=STYLE + (FINDINGS_STYLE if findings_section else ""), nav=" ".join(nav),
        sections="\n".join(sections), findings=findings_section, papers=papers, script=SCRIPT)
