"""The oracle cache: solved schedules on disk, keyed on the scenario and the solver settings.

An entry is two files, `oracle-KEY.npz` (the schedule, no pickles) written first and
`oracle-KEY.json` (schema, scenario digest, solver settings, objective, seconds) written
last, each atomically. An entry is believed only after a check: its schema and the digest
of the scenario it was made for match, its objective is finite, and the evaluator's utility
of the stored schedule equals that objective (1e-6 relative). Anything else (a corrupt,
truncated, edited or foreign entry) is solved again with a warning; the cache can make a
run slower, never wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from optsched.oracle.highs import MIP_GAP
from optsched.oracle.solution import OBJECTIVE_RTOL
from optsched.scenario.compile import Compiled
from optsched.schedule import Schedule

if TYPE_CHECKING:
    from optsched.evaluator import Evaluation

DEFAULT_CACHE = Path(".optsched-cache")
SCHEMA = 1


class CachedSolution(NamedTuple):
    schedule: Schedule
    objective: float
    seconds: float          # the solve's wall time (when it was solved, not now)
    evaluation: Evaluation  # the evaluator's score of the schedule (checked = objective)


def scenario_key(c: Compiled) -> str:
    """A digest of everything the oracle reads: arrays, scalars and names."""
    h = hashlib.sha256()
    for name, value in sorted(c.arrays().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(value).tobytes() if isinstance(value, np.ndarray)
                 else repr(value).encode())
    return h.hexdigest()[:24]


def solver_config(backend: str = "highs", relax: bool = False, mip_gap: float = MIP_GAP,
                  time_limit: float | None = None) -> dict:
    """The settings that change the answer, as stored in (and keyed into) an entry."""
    return {"backend": backend, "relax": bool(relax), "mip_gap": float(mip_gap),
            "time_limit": None if time_limit is None else float(time_limit)}


def entry_key(digest: str, config: dict) -> str:
    h = hashlib.sha256(digest.encode())
    h.update(json.dumps(config, sort_keys=True).encode())
    return h.hexdigest()[:24]


def cached_oracle(c: Compiled, cache: Path | None = DEFAULT_CACHE, backend: str = "highs",
                  relax: bool = False, mip_gap: float = MIP_GAP,
                  time_limit: float | None = None) -> CachedSolution:
    """The oracle's (schedule, objective, seconds) for `c`: from `cache` when a checked
    entry exists, else solved (and stored when `cache` is not None)."""
    from optsched.errors import InfeasibleError
    from optsched.oracle import solve

    config = solver_config(backend, relax, mip_gap, time_limit)
    digest = scenario_key(c)
    path = None if cache is None else Path(cache) / f"oracle-{entry_key(digest, config)}"
    if path is not None and path.with_suffix(".json").exists():
        hit = _read(c, path, digest, config)
        if hit is not None:
            return hit
    t0 = time.perf_counter()
    sol = solve(c, backend, relax=relax, time_limit=time_limit, mip_gap=mip_gap)
    seconds = time.perf_counter() - t0
    if sol.schedule is None or sol.objective is None or not math.isfinite(sol.objective):
        raise InfeasibleError(f"oracle {sol.status}: {sol.diagnosis}")
    if path is not None:
        try:
            _write(path, sol.schedule, {"schema": SCHEMA, "scenario": digest, **config,
                                        "objective": float(sol.objective),
                                        "seconds": seconds})
        except OSError as exc:       # the cache saves time; the solve is not lost for it
            warnings.warn(f"oracle cache entry {path.name} not stored: {exc}", stacklevel=2)
    return CachedSolution(sol.schedule, float(sol.objective), seconds, sol.evaluation)


def _write(path: Path, schedule: Schedule, meta: dict) -> None:
    """The schedule first, the metadata that vouches for it last; both atomic."""
    from optsched.io import atomic_write_text

    schedule.save(path.with_suffix(".npz"))                   # atomic itself
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, allow_nan=False) + "\n")


def _read(c: Compiled, path: Path, digest: str, config: dict) -> CachedSolution | None:
    """A checked entry, or None (with a warning saying why) when it cannot be believed."""
    from optsched.evaluator import evaluate

    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        problem = _check_meta(meta, digest, config)
        if problem is None:
            schedule = Schedule.load(path.with_suffix(".npz"))
            ev = evaluate(c, schedule, tol=1e-5, milp=not config["relax"])
            objective = float(meta["objective"])
            if abs(ev.utility - objective) > OBJECTIVE_RTOL * max(1.0, abs(objective)):
                problem = (f"stored objective {objective!r} != evaluator utility "
                           f"{ev.utility!r} of the stored schedule")
            elif not ev.feasible:
                problem = "the stored schedule violates the scenario's constraints"
    except Exception as exc:  # noqa: BLE001 - any unreadable entry is re-solved
        problem = f"unreadable ({type(exc).__name__}: {exc})"
    if problem is not None:
        warnings.warn(f"oracle cache entry {path.name} not used: {problem}; solving again",
                      stacklevel=3)
        return None
    return CachedSolution(schedule, objective, float(meta["seconds"]), ev)


def _check_meta(meta, digest: str, config: dict) -> str | None:
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        return "unknown schema"
    if meta.get("scenario") != digest:
        return "made for another scenario"
    if any(meta.get(k) != v for k, v in config.items()):
        return "made with other solver settings"
    objective = meta.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, (int, float)) \
            or not math.isfinite(objective):
        return f"objective {objective!r} is not a finite number"
    seconds = meta.get("seconds")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return f"seconds {seconds!r} is not a finite number"
    return None
