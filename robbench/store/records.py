"""Record files: typed, self-hashing CSV and JSON, the only way the results store
reads and writes.

Each record carries the sha256 of its own content, so one atomic rename writes data
and hash together and no crash can separate them:

- CSV: line 1 is `# sha256 <hex>`, the hash of every byte after that line (check it by
  hand with `tail -n +2 FILE | sha256sum`); line 2 is `# ` followed by the record's
  metadata as one line of JSON; then the table, with a fixed header.
- JSON: an object whose `record_sha256` is the hash of the canonical dump of its other
  keys (`json.dumps(..., indent=2, sort_keys=True)`).

A read checks the hash, then every cell against the record's schema, and refuses the
whole file with one line naming it and what is wrong: a truncated, hand-edited or
partly deleted record never becomes a number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robbench.errors import RobbenchError
from robbench.store.atomic import write_text_if_changed

HASH_PREFIX = "# sha256 "
META_PREFIX = "# "
JSON_HASH_KEY = "record_sha256"
_INT = re.compile(r"^-?[0-9]+$")


class RecordError(RobbenchError):
    """A record failed validation; the message names the file."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- schemas ------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "bool", "float", "str"
    minimum: float | None = None
    allow_inf: bool = False  # float: +inf allowed (e.g. "no adversarial found")
    allow_empty: bool = False  # a missing value (bool: nullable; str: "")


@dataclass(frozen=True)
class Schema:
    """A table's columns, the columns that identify a row, and whole-table rules (each
    returns a problem or None)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    rules: tuple[Callable[[pd.DataFrame], str | None], ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _parse_cell(column: Column, cell: str) -> Any:
    """The typed value of one CSV cell; ValueError with the reason when it is not one."""
    if cell == "" and column.allow_empty:
        return None if column.kind != "str" else ""
    if column.kind == "str":
        if cell == "":
            raise ValueError("is empty")
        return cell
    if column.kind == "bool":
        if cell not in ("True", "False"):
            raise ValueError(f"{cell!r} is not a boolean (True or False)")
        return cell == "True"
    if column.kind == "int":
        if not _INT.match(cell):
            raise ValueError(f"{cell!r} is not an integer")
        value: Any = int(cell)
    else:
        try:
            value = float(cell)
        except ValueError:
            raise ValueError(f"{cell!r} is not a number") from None
        if math.isnan(value):
            raise ValueError("is NaN")
        if math.isinf(value) and not (column.allow_inf and value > 0):
            raise ValueError(f"{cell!r} is not finite")
    if column.minimum is not None and value < column.minimum:
        raise ValueError(f"{cell!r} is below {column.minimum:g}")
    return value


def _format_cell(column: Column, value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        if column.allow_empty:
            return ""
        raise ValueError("is missing")
    if column.kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{value!r} is not a boolean")
        return "True" if value else "False"
    if column.kind == "int":
        if float(value) != int(value):
            raise ValueError(f"{value!r} is not an integer")
        return str(int(value))
    if column.kind == "float":
        return repr(float(value))
    return str(value)


def _check_rows(schema: Schema, frame: pd.DataFrame) -> str | None:
    if frame.duplicated(list(schema.key)).any():
        dup = frame[frame.duplicated(list(schema.key), keep=False)].iloc[0]
        return f"duplicate row for {', '.join(f'{k}={dup[k]}' for k in schema.key)}"
    for rule in schema.rules:
        problem = rule(frame)
        if problem:
            return problem
    return None


def _typed_frame(schema: Schema, rows: list[list[Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=schema.names)
    for column in schema.columns:
        if column.kind == "int":
            frame[column.name] = frame[column.name].astype("int64")
        elif column.kind == "float":
            frame[column.name] = frame[column.name].astype("float64")
        elif column.kind == "bool":
            frame[column.name] = frame[column.name].astype("boolean" if column.allow_empty else bool)
        else:
            frame[column.name] = frame[column.name].astype(object)
    return frame


# --- CSV records ----------------------------------------------------------------------
def format_csv_record(schema: Schema, frame: pd.DataFrame, meta: dict[str, Any]) -> str:
    """The record's text: hash line, metadata line, table sorted by the key. It is
    parsed back before it is returned, so robbench never writes what it would refuse."""
    missing = [c for c in schema.names if c not in frame.columns]
    if missing:
        raise RecordError(f"{schema.name}: cannot write, missing column(s) {', '.join(missing)}")
    frame = frame[schema.names].sort_values(list(schema.key), kind="stable")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(schema.names)
    for values in frame.itertuples(index=False):
        try:
            writer.writerow([_format_cell(c, v) for c, v in zip(schema.columns, values)])
        except ValueError as exc:
            raise RecordError(f"{schema.name}: cannot write {dict(zip(schema.names, values))}: "
                              f"{exc}") from None
    body = META_PREFIX + json.dumps(meta, sort_keys=True, allow_nan=False) + "\n" + out.getvalue()
    _parse_table(out.getvalue(), schema, f"{schema.name} (not written)")
    return f"{HASH_PREFIX}{sha256_text(body)}\n{body}"


def write_csv_record(path: Path, schema: Schema, frame: pd.DataFrame,
                     meta: dict[str, Any] | None = None) -> bool:
    """Writes atomically (nothing when the content is unchanged); True if written."""
    return write_text_if_changed(path, format_csv_record(schema, frame, meta or {}))


def read_csv_record(path: Path, schema: Schema) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(typed table, metadata) of a record, or RecordError naming the file."""
    meta, table = read_csv_header(path)
    return _parse_table(table, schema, str(path), first_line=3), meta


def read_csv_header(path: Path) -> tuple[dict[str, Any], str]:
    """(metadata, the table's text) of a record whose hash holds, without parsing the
    table (the migration reads records of older layouts this way)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RecordError(f"{path}: unreadable ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(f"{path}: not UTF-8 text") from None
    first, sep, body = text.partition("\n")
    if not first.startswith(HASH_PREFIX) or not sep:
        raise RecordError(f"{path}: not a robbench record (no '{HASH_PREFIX.strip()}' first line)")
    if sha256_text(body) != first[len(HASH_PREFIX):].strip():
        raise RecordError(f"{path}: content does not match its sha256 (edited, truncated or "
                          f"partly deleted since robbench wrote it)")
    meta_line, _, table = body.partition("\n")
    try:
        meta = json.loads(meta_line[len(META_PREFIX):])
        assert isinstance(meta, dict)
    except (ValueError, AssertionError):
        raise RecordError(f"{path}: line 2 is not the record's JSON metadata") from None
    return meta, table


def _parse_table(table: str, schema: Schema, where: str, first_line: int = 1) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(table))
    header = next(reader, None)
    if header != schema.names:
        raise RecordError(f"{where}: header {header} is not the {schema.name} columns {schema.names}")
    rows = []
    for line, cells in enumerate(reader, start=first_line + 1):
        if len(cells) != len(schema.columns):
            raise RecordError(f"{where}: line {line} has {len(cells)} cells, expected "
                              f"{len(schema.columns)}")
        values = []
        for column, cell in zip(schema.columns, cells):
            try:
                values.append(_parse_cell(column, cell))
            except ValueError as exc:
                raise RecordError(f"{where}: line {line}, column {column.name}: {exc}") from None
        rows.append(values)
    frame = _typed_frame(schema, rows)
    problem = _check_rows(schema, frame)
    if problem:
        raise RecordError(f"{where}: {problem}")
    return frame


# --- JSON records -----------------------------------------------------------------------
def _canonical(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)


def format_json_record(obj: dict[str, Any]) -> str:
    content = {k: v for k, v in obj.items() if k != JSON_HASH_KEY}
    return _canonical({**content, JSON_HASH_KEY: sha256_text(_canonical(content))}) + "\n"


def write_json_record(path: Path, obj: dict[str, Any]) -> bool:
    return write_text_if_changed(path, format_json_record(obj))


Validator = Callable[[Any], bool]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json_record(path: Path, fields: dict[str, Validator]) -> dict[str, Any]:
    """The record's content (without its hash); each field in `fields` must be present
    and pass its validator."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constant)
    except OSError as exc:
        raise RecordError(f"{path}: unreadable ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError):
        raise RecordError(f"{path}: not valid JSON (truncated or edited?)") from None
    if not isinstance(obj, dict) or not isinstance(obj.get(JSON_HASH_KEY), str):
        raise RecordError(f"{path}: not a robbench record (no {JSON_HASH_KEY})")
    content = {k: v for k, v in obj.items() if k != JSON_HASH_KEY}
    if sha256_text(_canonical(content)) != obj[JSON_HASH_KEY]:
        raise RecordError(f"{path}: content does not match its {JSON_HASH_KEY} (edited since "
                          f"robbench wrote it)")
    return check_fields(path, content, fields)


def check_fields(path: Path, content: dict[str, Any], fields: dict[str, Validator]) -> dict[str, Any]:
    """`content` if each field in `fields` is present and passes its validator."""
    for name, valid in fields.items():
        if name not in content:
            raise RecordError(f"{path}: missing field {name!r}")
        if not valid(content[name]):
            raise RecordError(f"{path}: field {name!r} has an invalid value {content[name]!r}")
    return content


# validators for read_json_record
def is_str(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_positive(v: Any) -> bool:
    return is_number(v) and v > 0


def is_non_negative(v: Any) -> bool:
    return is_number(v) and v >= 0


def is_sha256(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None


def is_date(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None


def is_int_list(v: Any) -> bool:
    return isinstance(v, list) and all(map(is_int, v))


def is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def one_of(*choices: Any) -> Validator:
    return lambda v: v in choices
