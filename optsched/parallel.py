"""Fan-out of independent tasks (days, (policy, day) pairs, training runs) over Ray.

    results = fan_out(fn, items, workers=2)          # a local Ray runtime with 2 CPUs
    results = fan_out(fn, items, ray_address="auto") # an existing Ray cluster
    with runtime(workers=4):                          # one runtime for many fan-outs:
        api.compare(...); api.compare(...)            # workers=None means "this one"

With one worker and no address the tasks run here, one after another, and nothing of Ray
is imported: Ray is an optional extra (`pip install "optsched[ray]"`). Otherwise every
task is a Ray task retried by Ray itself (`max_retries` for a worker that dies,
`retry_exceptions` for the transient errors listed in RETRY_EXCEPTIONS); results come back
in the order of `items`, and a task that still fails fails the whole call: no partial list
is ever returned. A runtime this module started is shut down when the call (or the
`runtime` block) ends; one it found running (a cluster, a caller's `ray.init`) is left
alone. Tasks must be deterministic functions of their item (policies are seeded per day
by policies.base.day_rng), so the results equal the serial run's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from optsched.errors import OptschedError, ScenarioError

T = TypeVar("T")
R = TypeVar("R")

INSTALL = 'pip install "optsched[ray]"'
RETRIES = 2                      # Ray retries of a task (a crashed worker or a listed error)
# Errors worth a second try on another worker; anything else (bad input, an infeasible
# model, a bug) would fail the same way again and is raised at once.
RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (OSError, MemoryError)


class RayMissing(OptschedError):
    """--workers > 1 or --ray-address without Ray installed."""

    def __init__(self, key: str):
        super().__init__(f"{key}: needs Ray, which is not installed; install the extra "
                         f"with: {INSTALL}")


class TaskFailed(RuntimeError):
    """A task that failed on every attempt (its worker died each time): the command fails
    rather than report the other tasks' results as complete."""


@dataclass(frozen=True)
class Settings:
    """How fan-outs run: `workers` CPUs of a local runtime, or the cluster at `address`."""

    workers: int = 1
    address: str | None = None

    @property
    def serial(self) -> bool:
        return self.workers == 1 and self.address is None


_current = Settings()


# What ray.init takes: "auto", a GCS address HOST:PORT or a client address ray://HOST:PORT.
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9._\[\]:-]+:[0-9]{1,5})$")


def check_workers(workers: int | None, ray_address: str | None = None) -> Settings:
    """The settings of `workers` and `ray_address` (None: those of the enclosing `runtime`
    block, else serial), checked: workers >= 1, an address that is not blank."""
    if workers is None and ray_address is None:
        return _current
    workers = 1 if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ScenarioError("--workers", "must be an integer >= 1", workers)
    if ray_address is not None and not _ADDRESS.match(str(ray_address)):
        raise ScenarioError("--ray-address", "must be auto, HOST:PORT or ray://HOST:PORT",
                            ray_address)
    settings = Settings(workers, ray_address)
    if not settings.serial and importlib.util.find_spec("ray") is None:
        raise RayMissing(_key(settings))              # before any work, not after it
    return settings


def _key(settings: Settings) -> str:
    return "--ray-address" if settings.address else "--workers"


def _ray(settings: Settings):
    """The ray module, or RayMissing naming the option that asked for it."""
    try:
        import ray
    except ImportError:
        raise RayMissing(_key(settings)) from None
    return ray


@contextlib.contextmanager
def runtime(workers: int | None = 1, ray_address: str | None = None) -> Iterator[Settings]:
    """A block whose fan-outs (with workers=None) use these settings and share one Ray
    runtime, started here (and shut down at the end) unless Ray is already initialised."""
    global _current
    settings = check_workers(workers, ray_address)
    outer = _current
    _current = settings
    try:
        if settings.serial:
            yield settings
        else:
            with started(settings):
                yield settings
    finally:
        _current = outer


@contextlib.contextmanager
def started(settings: Settings) -> Iterator[Any]:
    """Ray, initialised for `settings` unless it already is; shut down on leaving only if
    initialised here."""
    ray = _ray(settings)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"address": settings.address} if settings.address else {
        "num_cpus": settings.workers, "include_dashboard": False}
    # Ray says on stderr, at every start, that it turned on token authentication (its
    # default for a local runtime, kept): a notice, not a warning to our users. (Setting
    # RAY_AUTH_MODE=token instead left the driver without its token.)
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        with _environment(_thread_env() if not settings.address else {}):
            ray.init(**kwargs, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=True)
    finally:
        notice.setLevel(level)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (where unset) while Ray starts its processes, which
    inherit it, and as it was afterwards. (A runtime_env with the same env_vars made Ray
    start a second set of workers: 0.7 s before the first task could run.)"""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _thread_env() -> dict[str, str]:
    """The driver's BLAS thread count for local workers: Ray would set OMP_NUM_THREADS=1 in
    them, and a dot product summed on another number of threads differs in its last bits
    (the LP relaxation's objective did), so the tasks would not reproduce the serial run."""
    return {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS",
                                              str(len(os.sched_getaffinity(0))))}


def fan_out(fn: Callable[[T], R], items: Sequence[T], workers: int | None = None,
            ray_address: str | None = None, *, retries: int = RETRIES,
            retry_exceptions: Sequence[type[BaseException]] = RETRY_EXCEPTIONS,
            describe: Callable[[T], str] | None = None,
            progress: Callable[[str], object] | None = None,
            cost: Callable[[T], float] | None = None) -> list[R]:
    """[fn(item) for item in items], serially in this process (one worker, no address;
    Ray is not imported) or as Ray tasks (each retried up to `retries` times if its worker
    dies or it raises one of `retry_exceptions`), in the order of `items` either way.
    `progress(describe(item))` is said before each serial task and after each parallel
    one. An error a task raises is raised here (after its retries); a task whose worker
    died on every attempt raises TaskFailed. `cost(item)`, a guess of a task's run time
    in any unit, sets the order of submission in parallel: longest first (LPT), so that no
    long task starts last while the other workers idle (a sweep whose shaped runs take 5x
    the plain ones did). `fn` and the items must pickle."""
    settings = check_workers(workers, ray_address)
    items = list(items)
    say = progress or (lambda _msg: None)
    name = describe or (lambda item: repr(item))
    if settings.serial or not items:
        out = []
        for item in items:
            say(name(item))
            out.append(fn(item))
        return out
    with started(settings) as ray:
        task = ray.remote(num_cpus=1, max_retries=retries,
                          retry_exceptions=list(retry_exceptions) or False)(_call)
        fn_ref = ray.put(fn)                          # shipped once, not once per task
        order = submission_order(items, cost)
        refs = [task.remote(fn_ref, items[i]) for i in order]
        index = {ref: i for ref, i in zip(refs, order, strict=True)}
        results: dict[int, Any] = {}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                i = index[done[0]]
                results[i] = _get(ray, done[0], name(items[i]), retries)
                say(f"{name(items[i])} ({len(results)}/{len(items)} done)")
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    return [results[i] for i in range(len(items))]


def submission_order(items: Sequence[T], cost: Callable[[T], float] | None) -> list[int]:
    """Indices of `items` in the order to submit them: by decreasing cost, ties (and no
    cost at all) in the order given. Ray starts queued tasks in the order submitted."""
    if cost is None:
        return list(range(len(items)))
    costs = [float(cost(item)) for item in items]
    return sorted(range(len(items)), key=lambda i: -costs[i])


def _call(fn: Callable[[T], R], item: T) -> R:
    """One task on a Ray worker (any callable: a function, a partial, a method); its
    errors travel as raised (OptschedError pickles by its message: errors.py)."""
    return fn(item)


def _get(ray, ref, label: str, retries: int):
    """The task's result; its own exception as raised (unwrapped from Ray's), TaskFailed
    when the worker died on every attempt."""
    from ray.exceptions import RayTaskError, WorkerCrashedError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, BaseException):
            raise cause from None
        raise
    except WorkerCrashedError as exc:
        raise TaskFailed(f"task {label} failed: its worker died on all {retries + 1} "
                         f"attempts ({type(exc).__name__}); no results were reported"
                         ) from None


__all__ = ["INSTALL", "RETRIES", "RETRY_EXCEPTIONS", "RayMissing", "Settings", "TaskFailed",
           "check_workers", "fan_out", "runtime", "submission_order"]
