"""Golden outputs: every listed command on the default scenario prints what it printed
before the API refactor (commit 273e46d), apart from run-dependent fields (timings, paths).

Regenerate (only when an intended fix changes an output, in its own commit):
    PYTHONPATH=$PWD python tests/test_golden.py
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
ROOT = Path(__file__).resolve().parents[1]

# name -> (arguments, kind): kind "json" reads stdout as JSON, "file" reads the file given
# after --out as text.
COMMANDS: dict[str, tuple[list[str], str]] = {
    "scenario_show": (["scenario", "show", "jemas-3", "--json"], "json"),
    "scenario_validate": (["scenario", "validate", "jemas-3", "--json"], "json"),
    "scenario_export": (["scenario", "export", "jemas-3", "--day", "4", "--out", "{tmp}/x.toml"],
                        "file"),
    "solve_relax": (["solve", "jemas-3", "--day", "4", "--backend", "highs", "--relax",
                     "--json"], "json"),
    "evaluate_dispatch": (["evaluate", "jemas-3", "--day", "4", "--policy", "dispatch",
                           "--json", "--no-oracle"], "json"),
    "evaluate_greedy_oracle": (["evaluate", "jemas-3", "--days", "4,9", "--policy", "greedy",
                                "--json"], "json"),
    "demo": (["demo", "--policy", "local-fixed", "--policy", "greedy", "--json"], "json"),
}

# Fields that depend on the run (wall times), not on the question asked.
VOLATILE = {"seconds", "build_s", "solve_s", "wall_s", "decision_s_per_slot"}


def strip(obj):
    """`obj` without the run-dependent fields, at any depth."""
    if isinstance(obj, dict):
        return {k: strip(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip(v) for v in obj]
    return obj


def run_command(name: str, tmp: Path):
    args, kind = COMMANDS[name]
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "optsched.cli", *args], capture_output=True,
                         text=True, cwd=tmp, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    if kind == "json":
        return strip(json.loads(out.stdout))
    return Path(args[args.index("--out") + 1]).read_text()


def close(a, b, path: str = "") -> list[str]:
    """Differences between `a` and `b`; floats compared to 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} != {list(b)}"]
        return [d for k in a for d in close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(
                a, bool) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            return []
        return [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_output_matches_golden(name, tmp_path):
    kind = COMMANDS[name][1]
    golden = GOLDEN / f"{name}.{'json' if kind == 'json' else 'txt'}"
    want = json.loads(golden.read_text()) if kind == "json" else golden.read_text()
    got = run_command(name, tmp_path)
    if kind == "json":
        assert close(got, want) == []
    else:
        assert got == want


if __name__ == "__main__":
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    for name, (_, kind) in COMMANDS.items():
        with tempfile.TemporaryDirectory() as tmp:
            got = run_command(name, Path(tmp))
        path = GOLDEN / f"{name}.{'json' if kind == 'json' else 'txt'}"
        path.write_text(json.dumps(got, indent=1) + "\n" if kind == "json" else got)
        print(f"wrote {path}")
