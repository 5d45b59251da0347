"""The static leaderboard page, index.html: sortable tables, the plots and the findings."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from robbench.leaderboard.render.findings import FINDINGS_STYLE
from robbench.store.table import TRAILING, attack_columns, is_missing, parse_name
from robbench.leaderboard.render.format import NORM_LABEL, fmt_cell, is_unreliable, table_title

PAGE = "index.html"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem 2rem;
       color: #1d2330; background: #fff; }
h1 { margin: 0 0 .3rem; font-size: 1.8rem; }
h2 { margin-top: 2.2rem; border-bottom: 2px solid #dde3ec; padding-bottom: .2rem; }
h3 { margin: 1.2rem 0 .4rem; font-size: 1.05rem; }
p.lead { margin: 0 0 1rem; color: #4a5466; max-width: 70rem; }
nav a { margin-right: 1rem; }
figure { margin: .5rem 0 1rem; }
figure img { max-width: 100%; border: 1px solid #e3e7ee; }
.scroll { overflow-x: auto; }
table.leaderboard { border-collapse: collapse; font-size: .85rem; white-space: nowrap; }
table.leaderboard th, table.leaderboard td { padding: .3rem .55rem; border-bottom: 1px solid #e3e7ee; }
table.leaderboard th { background: #f1f4f9; text-align: left; cursor: pointer; user-select: none;
                       position: sticky; top: 0; }
table.leaderboard th:hover { background: #e2e8f2; }
table.leaderboard th[aria-sort=ascending]::after { content: " ▲"; }
table.leaderboard th[aria-sort=descending]::after { content: " ▼"; }
table.leaderboard td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.leaderboard td.key { font-weight: 600; }
table.leaderboard td.wide { white-space: normal; min-width: 18rem; max-width: 30rem; font-size: .78rem;
                            color: #5a6375; }
table.leaderboard td:first-child { position: sticky; left: 0; background: #fff; }
table.leaderboard th:first-child { position: sticky; left: 0; z-index: 1; }
table.leaderboard tr.unreliable, table.leaderboard tr.unreliable td:first-child { background: #fff6e0; }
table.leaderboard tr.unreliable td:first-child::before { content: "⚠ "; color: #b26a00; }
table.leaderboard tr.paper td:first-child { font-style: italic; }
.legend { font-size: .85rem; color: #4a5466; }
#show-provenance:not(:checked) ~ main .prov { display: none; }
label.toggle { font-size: .9rem; color: #4a5466; margin-left: .3rem; }
section.papers { background: #fafbfd; border-top: 3px solid #c7cedb; margin-top: 3rem;
                 padding: .2rem 1rem 1rem; }
section.papers h3 { margin-top: 1.6rem; }
table.leaderboard tr.unreliable td:first-child { cursor: help; }
.marker { color: #b26a00; }
"""

SCRIPT = """
// Click a header to sort by that column (numbers numerically, empty cells last);
// click again to reverse.
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    if (v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v : n;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, col) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          if (x === null || y === null) { return (x === null) - (y === null); }
          var c = (typeof x === "number" && typeof y === "number") ? x - y
            : String(x).localeCompare(String(y), undefined, {numeric: true});
          return ascending ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

# The default view: what a reader compares. Everything else is provenance, shown on demand.
SHOWN = ["model", "defense", "clean_acc", "worst_case_acc"]
PROVENANCE = ["dataset", "threat_model", "eps", "architecture",
              *[c for c in TRAILING if c != "worst_case_acc"]]
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
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>robbench leaderboards</title>
<style>{STYLE}{FINDINGS_STYLE if findings_section else ""}</style>
</head>
<body>
<h1>robbench leaderboards</h1>
<p class="lead">Clean and robust accuracy (%) of clustering- and prototype-based defenses and
softmax baselines, measured by robbench on the zoo's models. <b>worst_case_acc</b> counts a
sample as robust only if it is classified correctly and every attack on record fails on it;
rows are sorted by it, and the columns after it are the attacks on record. Click a column
header to sort by that column. <span class="marker">⚠</span> marks an unreliable row: hover
over its model for the reason.</p>
<input type="checkbox" id="show-provenance"><label class="toggle" for="show-provenance">show
provenance columns (ε, n, seed, checkpoint, versions, date, source, reason, reference)</label>
<main>
<nav>{' '.join(nav)}</nav>
{chr(10).join(sections)}
{findings_section}
{papers}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""
