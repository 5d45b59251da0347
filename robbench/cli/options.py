"""Option callbacks the commands share."""

from __future__ import annotations

from robbench.errors import RobbenchError


def csv_list(ctx, param, value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def float_list(ctx, param, value: str | None) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise RobbenchError(f"--eps must be a comma-separated list of numbers, got {value!r}") from None
    if not values or any(not (v >= 0 and v < float("inf")) for v in values):
        raise RobbenchError(f"--eps values must be finite and non-negative, got {value!r}")
    return values
