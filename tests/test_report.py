"""The gap report: its rows obey the oracle bound and the baseline's definition; the
terminal shows every row; the HTML needs no network. (The oracle cache: test_cache.py.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from optsched.report.report import build_report


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    frame = build_report("jemas-3", [4], ["greedy"], out, cache=out / "cache",
                         ablations=("no-transfer",), ablated="greedy")
    return out, frame


def test_report_rows_obey_the_oracle_bound_and_the_baseline(report):
    """Invariants, not a second run of the same code: the oracle bounds every policy (to
    its MIP gap), scores gap 0 and captures all of its own gain; local-fixed, the
    baseline, captures none; utility is revenue less every cost."""
    from optsched.evaluator import TERMS
    from optsched.oracle import MIP_GAP

    _, frame = report
    rows = frame.set_index("policy")
    oracle = rows.loc["oracle"]
    assert oracle.gap == 0.0 and oracle.captured == 1.0
    assert rows.loc["local-fixed", "captured"] == 0.0
    assert (rows.utility <= oracle.utility * (1 + MIP_GAP)).all()
    assert (rows.gap >= -MIP_GAP).all()
    costs = rows[[f"term_{k}" for k in TERMS if k != "revenue"]].sum(axis=1)
    assert (rows.utility - (rows.term_revenue - costs)).abs().max() < 1e-6
    assert rows.loc["local-fixed", "jobs_transferred"] == 0.0     # no transfer by design


def test_ablation_rows_lose_their_lever(report):
    _, frame = report
    rows = frame.set_index("policy")
    assert rows.loc["greedy", "jobs_transferred"] > 0
    assert rows.loc["greedy [no-transfer]", "jobs_transferred"] == 0
    assert rows.loc["greedy [no-transfer]", "utility"] <= rows.loc["oracle", "utility"]


def test_terminal_table_keeps_ablation_suffixes(report, tmp_path):
    out, _ = report                                 # its cache holds day 4's oracle
    shown = subprocess.run(
        [sys.executable, "-m", "optsched.cli", "report", "jemas-3", "--days", "4",
         "--policy", "greedy", "--ablate-policy", "greedy", "--cache", str(out / "cache"),
         "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    for lever in ("no-transfer", "no-battery"):
        assert f"| greedy [{lever}] |" in shown.stdout


def test_html_is_self_contained(report):
    out, _ = report
    html = (out / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html
    assert (out / "report.md").read_text().startswith("# Optimality gaps")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary files


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
