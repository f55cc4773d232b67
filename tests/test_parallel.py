"""optsched.parallel: the serial path imports no Ray; on Ray (a local runtime with 2 CPUs)
the results are the serial run's, a task whose worker dies is retried, and one that keeps
dying fails the call instead of leaving a partial result."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from optsched import parallel
from optsched.errors import OptschedError, ScenarioError

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (the optional "
                               "extra: pip install 'optsched[ray]')")
DAYS = [4, 9]                    # two held-out days of jemas-3


def test_the_serial_path_imports_no_ray(tmp_path):
    """workers=1 and no address: evaluate, simulate and the solve of many days run here,
    and `ray` never enters sys.modules (a fresh interpreter: this one may hold it)."""
    code = (
        "import sys\n"
        "from optsched import api\n"
        "api.evaluate_policy('jemas-3', 'local-fixed', [4], oracle=False, workers=1)\n"
        f"api.simulate('jemas-3', 'local-fixed', {DAYS[:1]!r}, workers=1)\n"
        "print('ray' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)          # `import ray` fails
    with pytest.raises(parallel.RayMissing) as exc:
        parallel.fan_out(abs, [1, 2], workers=2)
    msg = str(exc.value)
    assert isinstance(exc.value, OptschedError) and "\n" not in msg
    assert msg.startswith("--workers:") and 'pip install "optsched[ray]"' in msg
    with pytest.raises(parallel.RayMissing, match="^--ray-address: "):
        parallel.check_workers(1, "auto")
    assert parallel.fan_out(abs, [-1, 2, -3], workers=1) == [1, 2, 3]   # serial needs none


def test_costliest_tasks_are_submitted_first_ties_in_given_order():
    assert parallel.submission_order(["a", "b", "c"], None) == [0, 1, 2]
    costs = {"a": 1.0, "b": 5.0, "c": 1.0, "d": 3.0}
    assert parallel.submission_order(list(costs), costs.get) == [1, 3, 0, 2]


def test_the_cost_guess_orders_the_paper_variants_as_measured():
    """The runs measured one at a time (train.UPDATE_COST's comment) took, in seconds,
    ppo 1.5 < sac 22.3 < sac+mlp 47.2 < sac+potential 90.1 < sac+diffusion 99.6: the
    guess must rank them the same way, and more steps must cost more."""
    from optsched.learn.train import TrainConfig, estimated_cost

    def cfg(algo, shaping, steps=2_304):
        return TrainConfig(algo=algo, shaping=shaping, steps=steps, num_envs=4,
                           learning_starts=steps // 2)

    ranked = [cfg("ppo", "none"), cfg("sac", "none"), cfg("sac", "mlp"),
              cfg("sac", "potential"), cfg("sac", "diffusion")]
    costs = [estimated_cost(c) for c in ranked]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)
    assert estimated_cost(cfg("sac", "mlp", 4_608)) > estimated_cost(cfg("sac", "mlp"))


@pytest.mark.parametrize("workers", [0, -2, 1.5, True])
def test_bad_worker_counts_are_refused(workers):
    with pytest.raises(ScenarioError, match="^--workers: must be an integer >= 1"):
        parallel.check_workers(workers)


# ----------------------------------------------------------------- on a Ray runtime


@pytest.fixture(scope="module")
def ray_runtime():
    """One local runtime (2 CPUs) for every test below; shut down after the last."""
    if not HAS_RAY:
        pytest.skip("Ray is not installed")
    import ray

    with parallel.runtime(workers=2) as settings:
        assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2
        yield settings
    assert not ray.is_initialized()                   # what it started, it shut down


def _crash_once(marker: Path, x: int) -> tuple[int, int]:
    """x squared and the pid that computed it; the first attempt for x = 2 kills its worker
    (os._exit, no exception, no clean-up) after leaving a marker."""
    flag = marker / f"attempted-{x}"
    if x == 2 and not flag.exists():
        flag.write_text(str(os.getpid()))
        os._exit(1)
    return x * x, os.getpid()


def _always_crash(x: int) -> int:
    os._exit(1)


def _bad_input(x: int) -> int:
    if x == 3:
        raise ScenarioError("--days", "no such day", x)
    return x


@needs_ray
def test_a_killed_task_is_retried_and_its_result_is_right(ray_runtime, tmp_path):
    out = parallel.fan_out(partial(_crash_once, tmp_path), [1, 2, 3, 4], workers=2,
                           retries=2)
    assert [v for v, _ in out] == [1, 4, 9, 16]            # in input order
    killed = int((tmp_path / "attempted-2").read_text())    # the crash did happen ...
    assert out[1][1] != killed                              # ... and another worker redid it


@needs_ray
def test_results_come_back_in_item_order_whatever_the_submission_order(ray_runtime):
    items = [3, -1, 7, -5, 2]
    assert parallel.fan_out(abs, items, workers=2, cost=lambda x: x) == [3, 1, 7, 5, 2]


@needs_ray
def test_a_task_that_keeps_dying_fails_the_call(ray_runtime):
    with pytest.raises(parallel.TaskFailed, match="died on all 2 attempts"):
        parallel.fan_out(_always_crash, [1], workers=2, retries=1)


@needs_ray
def test_a_task_error_arrives_as_raised_in_serial(ray_runtime):
    """A bad input inside a task is the same one-line ScenarioError (CLI exit 2), and
    not retried: it would fail the same way again."""
    with pytest.raises(ScenarioError, match=r"^--days: no such day, got 3$"):
        parallel.fan_out(_bad_input, [1, 2, 3, 4], workers=2)


def _numbers(frame):
    """Every number of compare's table but the wall-clock columns."""
    return frame.drop(columns=["seconds", "decision_s_per_slot"])


@needs_ray
def test_evaluate_in_parallel_equals_serial(ray_runtime, tmp_path):
    """(policy, day) and oracle tasks on two workers: every number is the serial run's,
    bit for bit (each run solves its own oracle: separate caches)."""
    from optsched import api

    serial = api.compare_runs("jemas-3", ["greedy"], DAYS, cache=tmp_path / "a", workers=1)
    a = _numbers(serial.table)
    assert list(a.policy) == ["oracle", "greedy"] * 2 and list(a.day) == [4, 4, 9, 9]
    summary, evs = api.evaluate_policy("jemas-3", "greedy", DAYS, cache=tmp_path / "b",
                                       workers=2)
    greedy = a[a.policy == "greedy"]
    for key in ("utility", "oracle_utility", "gap", "captured"):
        assert [d[key] for d in summary["days"]] == list(greedy[key]), key
    for day, ev in zip(DAYS, evs, strict=True):
        run = serial.runs["greedy", day]
        assert ev.terms == run.evaluation.terms and ev.jobs == run.evaluation.jobs
        np.testing.assert_array_equal(ev.slots_frame().to_numpy(),
                                      run.evaluation.slots_frame().to_numpy())


@needs_ray
def test_forecasting_policies_in_parallel_equal_serial(ray_runtime):
    """On jemas-3-genai a policy plans on forecasts from the family's earlier days: a
    worker must know which day it plays, or it forecasts by persistence and differs (it
    did: dispatch on day 4 scored 5346.76 on a worker, 5336.62 serially)."""
    from optsched import api

    serial = api.compare_runs("jemas-3-genai", ["dispatch"], [4], oracle=False, workers=1)
    par = api.compare_runs("jemas-3-genai", ["dispatch"], [4], oracle=False, workers=2)
    assert par.runs["dispatch", 4].evaluation.terms == \
        serial.runs["dispatch", 4].evaluation.terms


@needs_ray
def test_simulate_and_solve_days_in_parallel_equal_serial(ray_runtime):
    from optsched import api

    one = api.simulate("jemas-3", "greedy", DAYS, seed=3, workers=1)
    two = api.simulate("jemas-3", "greedy", DAYS, seed=3, workers=2)
    assert json.dumps([r.to_dict() for r in one]) == json.dumps([r.to_dict() for r in two])
    lp1 = api.solve_days("jemas-3", DAYS, relax=True, workers=1)
    lp2 = api.solve_days("jemas-3", DAYS, relax=True, workers=2)
    assert [s.day for s in lp2] == DAYS
    assert [s.solution.objective for s in lp1] == [s.solution.objective for s in lp2]


def _cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter, after `prelude` (e.g. one that hides Ray)."""
    argv = ["optsched", *args]
    code = f"{prelude}import sys\nfrom optsched.cli import main\nsys.argv = {argv!r}\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_cli_refuses_bad_workers_and_a_missing_ray_in_one_line():
    bad = _cli("evaluate", "jemas-3", "--workers", "0")
    assert bad.returncode == 2
    assert bad.stderr == "optsched: --workers: must be an integer >= 1, got 0\n"
    missing = _cli("simulate", "jemas-3", "--workers", "2",
                   prelude="import sys\nsys.modules['ray'] = None\n")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith("optsched: --workers: needs Ray")
    assert missing.stderr.count("\n") == 1


def test_cli_solves_many_days():
    """`solve --days`: one solution per day, in order, each the day's own LP."""
    from optsched import api

    out = _cli("solve", "jemas-3", "--days", "4,9", "--relax", "--backend", "highs", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["day"] for d in data["days"]] == DAYS
    assert [d["scenario"] for d in data["days"]] == ["jemas-3/day-004", "jemas-3/day-009"]
    assert data["days"][0]["utility"] == api.solve(api.compiled("jemas-3", 4),
                                                   relax=True).objective
