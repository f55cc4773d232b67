"""The gap report: its numbers are the evaluator's; the oracle cache follows the scenario;
the HTML needs no network."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import numpy as np
import pytest

from optsched.policies import get_policy, rollout
from optsched.report.report import build_report, cached_oracle, scenario_key
from optsched.scenario import compile_scenario, get_scenario


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    frame = build_report("jemas-3", [4], ["greedy"], out, cache=out / "cache",
                         ablations=("no-transfer",), ablated="greedy")
    return out, frame


def test_report_numbers_equal_the_evaluator(report):
    out, frame = report
    c = compile_scenario(get_scenario("jemas-3", 4))
    _, ev, _ = rollout(get_policy("greedy"), [c])[0]
    row = frame[(frame.policy == "greedy") & (frame.day == 4)].iloc[0]
    assert row.utility == pytest.approx(ev.utility, rel=1e-12)
    for k, v in ev.terms.items():
        assert row[f"term_{k}"] == pytest.approx(v, rel=1e-12, abs=1e-12)
    oracle = frame[frame.policy == "oracle"].iloc[0]
    assert oracle.gap == pytest.approx(0.0, abs=1e-6)
    assert row.gap == pytest.approx((oracle.utility - ev.utility) / oracle.utility)


def test_ablation_rows_are_the_policy_on_the_ablated_scenario(report):
    from optsched.scenario.ablations import ablate

    _, frame = report
    c = compile_scenario(get_scenario("jemas-3", 4))
    _, ev, _ = rollout(get_policy("greedy"), [ablate(c, ["no-transfer"])])[0]
    row = frame[frame.policy == "greedy [no-transfer]"].iloc[0]
    assert row.utility == pytest.approx(ev.utility, rel=1e-12)
    assert row.jobs_transferred == 0
    full = frame[frame.policy == "oracle"].iloc[0].utility
    assert row.gap == pytest.approx((full - ev.utility) / full)


def test_html_is_self_contained(report):
    out, _ = report
    html = (out / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html
    assert (out / "report.md").read_text().startswith("# Optimality gaps")


def test_oracle_cache_is_keyed_on_the_scenario_contents(tmp_path):
    c = compile_scenario(get_scenario("jemas-3", 4))
    changed = dataclasses.replace(c, price=c.price + np.eye(c.I, c.T))
    assert scenario_key(c, "highs") != scenario_key(changed, "highs")
    assert scenario_key(c, "highs") == scenario_key(
        compile_scenario(get_scenario("jemas-3", 4)), "highs")
    _, u1, _ = cached_oracle(c, tmp_path)
    assert len(list(tmp_path.glob("oracle-*.json"))) == 1
    _, u1_again, _ = cached_oracle(c, tmp_path)          # a hit: no new file
    assert u1_again == u1 and len(list(tmp_path.glob("oracle-*.json"))) == 1
    _, u2, _ = cached_oracle(changed, tmp_path)           # a miss: solved again
    assert len(list(tmp_path.glob("oracle-*.json"))) == 2 and u2 != u1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it)")
def test_html_renders_every_figure_in_headless_chromium(report, tmp_path):
    """Chromium with its network switched off loads the report; a probe appended to a
    copy counts the images that decoded (complete, with a width)."""
    out, _ = report
    html = (out / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => {const im = [...document.images];"
             "document.body.setAttribute('data-loaded', im.filter(i => i.complete && "
             "i.naturalWidth > 0).length + '/' + im.length);});</script>")
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-loaded="(\d+)/(\d+)"', dom)
    assert loaded, dom[-500:]
    n_ok, n_all = map(int, loaded.groups())
    assert n_all == html.count("data:image/png;base64,") and n_ok == n_all
