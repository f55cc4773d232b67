"""Terminal plumbing of the CLI: where JSON, tables and progress go.

With `--json`, stdout carries one JSON object only: `json_stdout` points fd 1 at stderr
while a command runs (solver banners, which HiGHS prints from C++, and any other writes to
fd 1 land there) and `emit_json` writes to the saved stdout; on exit fd 1 is restored.
Progress is a rich spinner on a terminal and plain log lines otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import numpy as np
from rich.console import Console

err = Console(stderr=True)
_json_fd: ContextVar[int | None] = ContextVar("json_fd", default=None)


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`| head`): rich would exit 1; the CLI exits 0."""
        raise BrokenPipeError


def out() -> Console:
    """The console for results (stdout); 150 columns when it is not a terminal."""
    return _Stdout(width=None if sys.stdout.isatty() else 150)


@contextlib.contextmanager
def json_stdout(active: bool) -> Iterator[None]:
    """While active, fd 1 goes to stderr and `emit_json` writes to the real stdout."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    token = _json_fd.set(saved)
    try:
        yield
    finally:
        sys.stdout.flush()
        _json_fd.reset(token)
        os.dup2(saved, 1)
        os.close(saved)


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _no_nan(obj):
    """NaN and infinities become null: strict JSON, never `NaN`."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj


def to_json(obj, indent: int | None = None) -> str:
    return json.dumps(_no_nan(obj), default=_plain, indent=indent, allow_nan=False)


def emit_json(obj: dict) -> None:
    """One JSON object on stdout (the real one while `json_stdout` is active)."""
    text = to_json(obj) + "\n"
    fd = _json_fd.get()
    if fd is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    data = text.encode()
    while data:                      # os.write may write less than asked
        data = data[os.write(fd, data):]


@contextlib.contextmanager
def status(title: str) -> Iterator[Callable[[str], None]]:
    """Progress of a step: yields `update(message)`. A spinner on a terminal, else one
    log line per message on stderr (none before the first, so that an error raised while
    checking the input stays the only line)."""
    if err.is_terminal:
        with err.status(title) as spin:
            yield lambda msg: spin.update(f"{title}: {msg}")
        return
    yield lambda msg: print(f"optsched: {title}: {msg}", file=sys.stderr, flush=True)
