"""The oracle's guards: bad arguments and oversized models are refused on one line before
anything is built; the model's size is known in advance; stdout stays clean."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import tomli_w

from benchmarks.instances import INSTANCES, instance
from optsched.errors import ModelTooLarge, ScenarioError
from optsched.oracle import BACKENDS, MAX_VARS, model_size, solve
from optsched.oracle.matrix import build_matrix
from optsched.scenario import compile_scenario, scenario_from_dict
from tests.conftest import TINY, small_scenario, two_sites

ROOT = Path(__file__).resolve().parents[1]


def build(raw):
    return compile_scenario(scenario_from_dict(raw))


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"time_limit": math.nan}, "--time-limit"),
    ({"time_limit": math.inf}, "--time-limit"),
    ({"time_limit": 0.0}, "--time-limit"),
    ({"time_limit": -1.0}, "--time-limit"),
    ({"time_limit": "soon"}, "--time-limit"),
    ({"mip_gap": -1.0}, "--mip-gap"),
    ({"mip_gap": math.nan}, "--mip-gap"),
    ({"mip_gap": math.inf}, "--mip-gap"),
    ({"backend": "gurobi"}, "--backend"),
    ({"backend": "cvxpy-clarabel"}, "--backend"),          # the MILP: Clarabel is LP only
    ({"max_vars": 0}, "--max-vars"),
    ({"max_vars": math.nan}, "--max-vars"),
])
def test_bad_solve_arguments_are_refused_on_one_line(tiny, kwargs, key):
    args = {"backend": "highs", **kwargs}
    with pytest.raises(ScenarioError) as info:
        solve(build(tiny), **args)
    text = str(info.value)
    assert text.startswith(f"{key}: ") and "\n" not in text


def test_bad_cli_numbers_exit_2_with_one_line(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps(TINY))
    for flag, value in (("--time-limit", "nan"), ("--time-limit", "inf"),
                        ("--mip-gap", "-1"), ("--mip-gap", "nan")):
        out = subprocess.run([sys.executable, "-m", "optsched.cli", "solve", str(path),
                              "--backend", "highs", flag, value],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert out.returncode == 2, (flag, value, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0], (flag, value, out.stderr)


@pytest.mark.parametrize("relax", [True, False])
def test_model_size_counts_what_every_backend_builds(relax):
    """The estimate (from dimensions only) against the three built models' own counts."""
    for c in (build(TINY), build(two_sites(TINY)), small_scenario(0), small_scenario(1)):
        size = model_size(c, relax)
        m = build_matrix(c, relax)
        assert (size.n_vars, size.n_cons) == (m.n_vars, m.n_cons)
        # Structural nonzeros: the matrix leaves out coefficients that are zero in this
        # scenario (the tiny site's idle power is 0), so it may hold a few less.
        assert m.A.nnz <= size.nnz <= 1.1 * m.A.nnz
        pyomo, cvxpy = (solve(c, b, relax=relax) for b in ("pyomo", "cvxpy"))
        assert (pyomo.n_vars, pyomo.n_cons) == (size.n_vars, size.n_cons)
        assert cvxpy.n_vars == size.n_vars          # (CVXPY counts bounds as constraints)


def test_tiny_model_size_by_hand():
    # Four options (2 steps x 2 clocks), two slots, one site with a battery:
    # x 4x2, y 2, n 2, r/b/z 3x2, ch/dis/soc 3x2, peak 1, short 1 = 26 (+ u 2 in the MILP).
    assert model_size(build(TINY), relax=True).n_vars == 26
    assert model_size(build(TINY), relax=False).n_vars == 28


def test_a_huge_horizon_is_refused_before_anything_is_built(tiny):
    """A 1e6-slot horizon (13 M variables on the tiny scenario): refused on one line with
    the estimate and the way to raise the limit, without allocating the model."""
    huge = dataclasses.replace(build(tiny), T=10**6)    # the estimate reads dimensions only
    for backend in ("highs", "cvxpy", "pyomo"):
        tracemalloc.start()
        try:
            with pytest.raises(ModelTooLarge) as info:
                solve(huge, backend)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2**20, peak
        text = str(info.value)
        assert "\n" not in text and "13,000,002 variables" in text
        assert "--max-vars" in text and "OPTSCHED_MAX_VARS" in text
        assert info.value.n_vars == 13 * 10**6 + 2


def test_the_size_limit_can_be_raised_or_lowered(tiny, monkeypatch):
    c = build(tiny)                                      # 28 variables in the MILP
    with pytest.raises(ModelTooLarge):
        solve(c, "highs", max_vars=27)
    assert solve(c, "highs", max_vars=28).status == "optimal"
    monkeypatch.setenv("OPTSCHED_MAX_VARS", "27")
    with pytest.raises(ModelTooLarge):
        solve(c, "highs")
    assert solve(c, "highs", max_vars=1e6).status == "optimal"   # the argument wins
    monkeypatch.setenv("OPTSCHED_MAX_VARS", "many")
    with pytest.raises(ScenarioError, match="^OPTSCHED_MAX_VARS: .*got 'many'"):
        solve(c, "highs")


def test_every_benchmark_instance_passes_the_default_limit():
    largest = max(model_size(instance(name), relax=False).n_vars for name in INSTANCES)
    assert 9_000_000 < largest <= MAX_VARS          # 10 sites x 7 days: 9.78 M


def test_solving_prints_nothing_on_stdout():
    """HiGHS's banner must not reach stdout (it would break --json), whichever backend
    creates the process's first HiGHS object."""
    for backend in BACKENDS:
        code = (
            "import json; from optsched.oracle import solve; "
            "from tests.conftest import small_scenario; "
            f"s = solve(small_scenario(3), {backend!r}, relax=True); "
            "print(json.dumps(s.to_dict(), allow_nan=False))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("\n") == 1, (backend, out.stdout)
        assert json.loads(out.stdout)["status"] == "optimal"
