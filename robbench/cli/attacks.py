"""`robbench attacks`: one line per attack (id, norm, kind, description) and the presets
with what they expand to, in 100 columns; `--json` or `robbench attacks ID` for the full
parameters."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import click

WIDTH = 100  # columns of the table


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3].rstrip() + "..."


def _table(headers: list[str], rows: list[list[str]], wrap_last: bool) -> list[str]:
    """Left-aligned columns two spaces apart; the last one fills what is left of WIDTH,
    wrapped (presets) or cut with '...' (descriptions)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    indent = sum(widths) + 2 * len(widths)
    room = WIDTH - indent
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers[:-1], widths)) + "  " + headers[-1],
             "  ".join("-" * w for w in widths) + "  " + "-" * room]
    for row in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  "
        parts = textwrap.wrap(row[-1], room) if wrap_last else [_fit(row[-1], room)]
        lines.append(head + (parts[0] if parts else ""))
        lines += [" " * indent + p for p in parts[1:]]
    return lines


def presets() -> list[dict[str, Any]]:
    """STANDARD_ATTACKS (`--attacks standard` runs every attack of the set) and the
    registered cascades (one attack that runs a set cheapest first)."""
    from robbench.attacks import ATTACKS
    from robbench.config import STANDARD_ATTACKS

    found = [{"id": pid, "norm": ATTACKS.get(ids[0]).norm, "expands_to": list(ids),
              "as": "every attack, each on every sample"} for pid, ids in STANDARD_ATTACKS.items()]
    found += [{"id": aid, "norm": a.norm, "expands_to": list(a.attacks),
               "as": "a cascade, in this order"} for aid, a in ATTACKS.items() if a.kind == "cascade"]
    return found


def show_one(attack_id: str, as_json: bool) -> None:
    from robbench.attacks import ATTACKS

    preset = next((p for p in presets() if p["id"] == attack_id), None)
    if preset is not None and attack_id not in ATTACKS:
        if as_json:
            click.echo(json.dumps(preset, indent=2))
            return
        click.echo(f"{attack_id} ({preset['norm']}): a preset, runs {preset['as']}:")
        click.echo(textwrap.fill(", ".join(preset["expands_to"]), WIDTH, initial_indent="  ",
                                 subsequent_indent="  "))
        return
    attack = ATTACKS.get(attack_id)  # an unknown id: RobbenchError with the nearest ids
    row = attack.listing()
    if as_json:
        click.echo(json.dumps(row, indent=2))
        return
    click.echo(textwrap.fill(f"{attack_id}: {attack.describe()}", WIDTH, subsequent_indent="  "))
    click.echo(f"norm {attack.norm}, kind {attack.kind}, class {row['type']}"
               f"{', minimum-norm (norms may exceed eps)' if attack.minimum_norm else ''}")
    click.echo("parameters:")
    for key, value in row.items():
        if key in ("id", "norm", "type"):
            continue
        text = json.dumps(value, indent=2) if isinstance(value, dict) else json.dumps(value)
        click.echo(f"  {key}: " + text.replace("\n", "\n  "))
    if preset is not None:
        click.echo(f"preset: runs {preset['as']}")


@click.command("attacks")
@click.argument("attack_id", required=False, metavar="[ID]")
@click.option("--json", "as_json", is_flag=True, help="Every attack with all its parameters, as JSON.")
def attacks_command(attack_id, as_json) -> None:
    """List the attacks and presets; ID: one attack's parameters."""
    from robbench.attacks import ATTACKS

    if attack_id is not None:
        show_one(attack_id, as_json)
        return
    if as_json:
        click.echo(json.dumps([a.listing() for _, a in ATTACKS.items()], indent=2))
        return
    rows = [[aid, a.norm, a.kind, a.describe()] for aid, a in ATTACKS.items()]
    lines = _table(["attack", "norm", "kind", "description"], rows, wrap_last=False)
    lines += ["", "presets (eval --attacks PRESET; --cascade runs a set cheapest first):"]
    lines += _table(["preset", "norm", "expands to"],
                    [[p["id"], p["norm"], ", ".join(p["expands_to"])] for p in presets()],
                    wrap_last=True)
    lines += ["", "full parameters: robbench attacks ID, or robbench attacks --json"]
    click.echo("\n".join(lines))
