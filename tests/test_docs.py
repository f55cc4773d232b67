"""The project's docs: generated references are current, hand-written pages cover the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import create_model

from optsched.clidoc import cli_reference
from optsched.env.core import REWARD_MODES
from optsched.evaluator import TERMS
from optsched.scenario import loads_scenario
from optsched.scenario.ablations import ABLATIONS
from optsched.scenario.reference import DESCRIPTIONS, scenario_reference
from optsched.scenario.schema import Horizon, Scenario

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_scenario_reference_is_current():
    """docs/scenario.md is exactly what the generator writes from today's schema."""
    assert (DOCS / "scenario.md").read_text() == scenario_reference(), (
        "docs/scenario.md is stale: run python -m optsched.scenario.reference "
        "--out docs/scenario.md")


def test_cli_reference_is_current():
    assert (DOCS / "cli.md").read_text() == cli_reference(), (
        "docs/cli.md is stale: run python -m optsched.clidoc --out docs/cli.md")


def _row(text: str, heading: str, key: str) -> str:
    """The table row of `key` under the section `heading` of a generated page."""
    section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| `{key}` |")]
    assert len(rows) == 1, f"{heading} {key}: {rows}"
    return rows[0]


def test_scenario_reference_states_the_schema_rules():
    """Facts read off schema.py by hand: defaults, ranges, required keys, series forms."""
    text = scenario_reference()
    assert "| `5` |" in _row(text, "`[horizon]`", "slot_minutes")
    assert "`[0.7, 0.85, 1]`" in _row(text, "`[horizon]`", "clocks")
    assert "must be in (0, 1]" in _row(text, "`sites[].battery`", "eta_c")
    assert "required" in _row(text, "`sites[].battery`", "eta_c")
    assert "must be an integer in [1, 100000]" in _row(text, "`[[classes]]`", "max_wait_slots")
    assert "each value must be in [1, 3]" in _row(text, "`[[sites]]`", "pue")
    assert "series or number" in _row(text, "`[[sites]]`", "pue")
    assert "| series |" in _row(text, "`[[classes]]`", "arrivals")
    assert '`"interactive"` or `"deferrable"`' in _row(text, "`[[classes]]`", "kind")
    assert "| omitted |" in _row(text, "`[[sites]]`", "battery")
    assert "`models[].quality`" in text and "| `log_steps` | boolean | `false` |" in text


def _example(text: str) -> str:
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


def test_scenario_reference_example_is_a_valid_scenario(tmp_path):
    """The page's example loads through the one loader, CSV series and hourly lists
    included, and means what the page says (hand-checked numbers)."""
    (tmp_path / "prices.csv").write_text("hour,price\n0,41.5\n1,35.0\n2,28.0\n3,47.0\n")
    sc = loads_scenario(_example(scenario_reference()), base_dir=tmp_path)
    east = sc.sites[0]
    assert sc.horizon.slots == 16 and len(east.price) == 16
    assert east.price[:5] == [41.5] * 4 + [35.0]           # hourly, 4 slots of 15 min
    assert east.pue == [1.25] * 16
    assert sc.classes[1].arrivals[4:8] == [150.0] * 4
    assert east.battery.eta_c == 0.92 and sc.sites[1].battery is None


def test_a_new_schema_key_needs_a_description_and_changes_the_page():
    """Adding a key to the schema breaks the generator until the key is documented, and
    then the page (so the currency test) changes."""
    wider = create_model("Horizon", __base__=Horizon, reserve_share=(float, 0.1))
    scenario = create_model("Scenario", __base__=Scenario, horizon=(wider, wider()))
    with pytest.raises(KeyError, match="horizon.reserve_share"):
        scenario_reference(scenario)
    described = {**DESCRIPTIONS, wider: {"reserve_share": "Share of GPUs held back."}}
    text = scenario_reference(scenario, described)
    assert "| `reserve_share` | number | `0.1` |  | Share of GPUs held back. |" in text
    assert text != scenario_reference()


def test_cli_reference_lists_commands_and_options():
    """Commands and options of the CLI as the README documents them."""
    text = cli_reference()
    for command in ("solve", "evaluate", "train", "report", "sweep", "bench", "demo",
                    "scenario show", "scenario validate", "scenario export",
                    "scenario build"):
        assert f"## `optsched {command}`" in text, command
    solve = text.split("## `optsched solve`", 1)[1].split("\n## ", 1)[0]
    assert "optsched solve [OPTIONS] SCENARIO" in solve
    assert "| `--mip-gap` | number | `0.001` |" in solve
    assert "| `--relax` | flag | off |" in solve
    assert "| `--ablate` | text, repeatable |" in solve


def test_model_page_covers_the_code():
    """Every utility term, ablation and reward mode the code defines is documented."""
    text = (DOCS / "model.md").read_text()
    for name in (*TERMS, *ABLATIONS, *REWARD_MODES):
        assert f"`{name}`" in text, name


def test_docs_are_self_contained():
    """Nothing in docs/ points outside the repository (../shared is not shipped), and
    every relative link resolves."""
    repo = DOCS.parent
    for page in DOCS.glob("*.md"):
        text = page.read_text()
        assert "../shared" not in text and "shared/spec" not in text, page.name
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (page.parent / target).resolve().is_relative_to(repo), (page, target)
            assert (page.parent / target).exists(), (page.name, target)
