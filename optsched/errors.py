"""Errors a user can act on: each names the key path and the bad value, on one line."""

from __future__ import annotations

from typing import Any


def show_value(value: Any) -> str:
    """A short, readable rendering of an offending value for a one-line message."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(show_value(v) for v in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"[{inner}{more}] ({len(value)} items)"
    if isinstance(value, dict):
        return "{" + ", ".join(list(map(str, value))[:4]) + "}"
    return repr(value)


class OptschedError(Exception):
    """Base class for errors caused by the user's input (CLI exit code 2)."""


class ScenarioError(OptschedError):
    """A scenario key with a bad value: `sites[1].battery.eta_c: must be in (0, 1], got 1.7`."""

    def __init__(self, path: str, message: str, value: Any = ..., more: int = 0):
        self.path, self.message, self.value, self.more = path, message, value, more
        text = f"{path}: {message}" if path else message
        if value is not ...:
            text += f", got {show_value(value)}"
        if more:
            text += f" (and {more} more problem{'s' if more > 1 else ''})"
        super().__init__(text)


class InfeasibleError(OptschedError):
    """A scenario or schedule that cannot be satisfied, with the diagnosis in the message."""
