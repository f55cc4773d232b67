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
        return f"[{inner}{more}] ({len(value)} item{'' if len(value) == 1 else 's'})"
    if isinstance(value, dict):
        return "{" + ", ".join(list(map(str, value))[:4]) + "}"
    return repr(value)


def _rebuild(cls: type, message: str, state: dict) -> OptschedError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class OptschedError(Exception):
    """Base class for errors caused by the user's input (CLI exit code 2)."""

    def __reduce__(self):
        """Rebuilt from its message and attributes: subclasses take their parts, not the
        message, so the default (calling the class with the message) would fail where
        an error travels between processes (a Ray task's error back to the driver)."""
        return _rebuild, (type(self), str(self), dict(self.__dict__))


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


class ModelTooLarge(ScenarioError):
    """An oracle model above the size limit, refused before it is built."""

    def __init__(self, n_vars: int, nnz: int, peak_bytes: int, limit: float, kind: str):
        self.n_vars, self.nnz, self.peak_bytes, self.limit = n_vars, nnz, peak_bytes, limit
        super().__init__(
            "--max-vars",
            f"the oracle's {kind} would have {n_vars:,} variables and {nnz:,} nonzeros "
            f"(about {peak_bytes / 2**30:,.1f} GiB of memory at its peak), above the limit "
            f"of {limit:,.0f} variables; raise it with --max-vars N (solve(max_vars=N) in "
            f"Python, or the environment variable OPTSCHED_MAX_VARS) if the machine has the "
            f"memory, shorten the horizon, or solve the LP by sites with --decompose")
