"""The gap report: its rows obey the oracle bound and the baseline's definition; the
terminal shows every row; the HTML needs no network, shows every utility term and fits a
1,400 px window; every figure labels its axes and keeps its legend off the data. (The
oracle cache: test_cache.py.)"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from optsched.reporting.report import build_report


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
    assert "<table" in html and html.count("data:image/png;base64,") == 4
    assert not re.search(r"(src|href)=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html
    assert (out / "report.md").read_text().startswith("# Optimality gaps")
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary files


class _Tables(HTMLParser):
    """The HTML's tables by class: header cells and body rows, as text."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = self.tables.setdefault(dict(attrs).get("class"),
                                                 {"head": [], "rows": []})
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            key = "head" if not self._table["head"] else "rows"
            self._table[key] = self._row if key == "head" else [*self._table["rows"], self._row]
            self._row = None
        elif tag == "table":
            self._table = None


def test_html_shows_every_utility_term_as_the_evaluator_scored_it(report):
    """The terms table has every term of the evaluator and utility for every policy; its
    values are results.csv's term columns (one day: the median is that day's value), and
    each row adds up: utility = revenue - the costs (to the table's cents)."""
    from optsched.evaluator import TERMS

    out, _ = report
    parser = _Tables()
    parser.feed((out / "report.html").read_text())
    terms = parser.tables["terms"]
    assert terms["head"] == ["policy", *TERMS, "utility"]
    csv = pd.read_csv(out / "results.csv").set_index("policy")
    assert sorted(r[0] for r in terms["rows"]) == sorted(csv.index)
    for policy, *cells in terms["rows"]:
        shown = dict(zip([*TERMS, "utility"], (float(c.replace(",", "")) for c in cells),
                         strict=True))
        for term in TERMS:
            assert shown[term] == pytest.approx(csv.loc[policy, f"term_{term}"], abs=0.005)
        assert shown["utility"] == pytest.approx(csv.loc[policy, "utility"], abs=0.005)
        costs = sum(shown[t] for t in TERMS if t != "revenue")
        assert shown["utility"] == pytest.approx(shown["revenue"] - costs, abs=0.06)
    assert "utility = revenue - (" in (out / "report.html").read_text()


def test_latency_table_replays_every_schedule_on_the_same_jobs(report):
    """Every policy (the oracle included) meets the same jobs of the day in the per-job
    simulation; rates are shares; an interactive job never beats the fastest option's
    latency (its GPU seconds plus nothing: no transfer at home); the HTML shows a
    violation and a p95 column per class and the mean gap's standard error table."""
    from optsched.api import compiled

    out, _ = report
    lat = pd.read_csv(out / "latency.csv")
    policies = set(pd.read_csv(out / "results.csv").policy)
    assert set(lat.policy) == policies
    arrived = lat.groupby(["class"])["arrived"].nunique()
    assert (arrived == 1).all()                           # same jobs for every policy
    assert lat.violation_rate.between(0, 1).all() and lat.late_rate.between(0, 1).all()
    assert (lat.late + lat.dropped <= lat.arrived).all()
    c = compiled("jemas-3", 4)
    fastest = float(c.gpu_s.min())
    assert (lat.p50_s >= fastest - 1e-9).all()
    parser = _Tables()
    parser.feed((out / "report.html").read_text())
    heads = parser.tables["latency"]["head"]
    assert heads == ["policy", "all jobs violation",
                     *[h for k in c.classes for h in (f"{k} violation", f"{k} p95 s")]]
    assert len(parser.tables["means"]["rows"]) == len(policies)
    # The all-jobs column pools every class's jobs of every day, from the per-day rows:
    # late + dropped over arrived, not a mean of the class rates.
    shown = {row[0]: float(row[1].rstrip("%")) for row in parser.tables["latency"]["rows"]}
    for policy, rows in lat.groupby("policy"):
        pooled = 100 * (rows.late.sum() + rows.dropped.sum()) / rows.arrived.sum()
        assert shown[policy] == pytest.approx(pooled, abs=0.005)


def test_terminal_tables_keep_bracketed_names():
    """rich reads `[no-transfer]` as markup; the terminal's tables print names as given."""
    from rich.console import Console

    from optsched.reporting import terminal

    buf = io.StringIO()
    Console(file=buf, width=120).print(terminal.table("t", [{"policy": "greedy [no-transfer]",
                                                           "utility": 1.5}]))
    assert "greedy [no-transfer]" in buf.getvalue()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                    "(.ci/run installs it)")
def test_html_renders_in_headless_chromium_and_fits_1400_px(report, tmp_path):
    """Chromium with its network switched off loads the report in a 1,400 px window; a
    probe appended to a copy counts the images that decoded (complete, with a width) and
    measures the layout: the page does not scroll sideways, no table needs its own scroll
    bar (no column cut off) and every table ends inside the window."""
    out, _ = report
    html = (out / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => {const im = [...document.images];"
             "const b = document.body; b.setAttribute('data-loaded', im.filter(i => i.complete"
             " && i.naturalWidth > 0).length + '/' + im.length);"
             "const wide = [...document.querySelectorAll('.wide')];"
             "const right = [...document.querySelectorAll('table')].map("
             "t => t.getBoundingClientRect().right);"
             "b.setAttribute('data-layout', [document.documentElement.scrollWidth, innerWidth,"
             " wide.filter(w => w.scrollWidth > w.clientWidth).length, right.length,"
             " Math.ceil(Math.max(...right))].join(' '));});</script>")
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--proxy-server=127.0.0.1:9", "--virtual-time-budget=5000", "--dump-dom",
         "--window-size=1400,1000", "--hide-scrollbars",
         page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-loaded="(\d+)/(\d+)"', dom)
    assert loaded, dom[-500:]
    n_ok, n_all = map(int, loaded.groups())
    assert n_all == html.count("data:image/png;base64,") and n_ok == n_all
    layout = re.search(r'data-layout="(\d+) (\d+) (\d+) (\d+) (\d+)"', dom)
    assert layout, dom[-500:]
    page_width, window, scrolled, n_tables, right = map(int, layout.groups())
    assert window == 1400 and n_tables == 4
    assert page_width <= 1400 and scrolled == 0 and right <= 1400


# Figures: drawn from a real day (jemas-3, day 4: local-fixed and greedy, no oracle).


@pytest.fixture(scope="module")
def day():
    from optsched.api import compiled, rollout

    c = compiled("jemas-3", 4)
    return c, {p: rollout("jemas-3", p, 4) for p in ("local-fixed", "greedy")}


def _figures(day, tmp_path):
    from optsched.reporting import plots

    c, runs = day
    metrics = tmp_path / "run" / "metrics.csv"
    metrics.parent.mkdir()
    pd.DataFrame({"steps": [0, 288, 576], "episode_utility": [1.0, 2.0, 2.5]}).to_csv(
        metrics, index=False)
    sweep = pd.DataFrame([{"param": "load", "value": v, "day": 4, "policy": p,
                           "utility": u * v, "gap": g, "captured": 0.5}
                          for v in (0.5, 1.0) for p, u, g in (("oracle", 10, 0.0),
                                                                 ("local-fixed", 8, 0.2),
                                                                 ("greedy", 9, 0.1))])
    return {"dispatch": plots.dispatch_figure(c, runs["greedy"].evaluation),
            "decisions": plots.decisions_figure(c, runs["greedy"].schedule),
            "soc": plots.soc_figure(c, {f"policy {j} [no-battery]": runs[
                "local-fixed" if j % 3 else "greedy"].schedule for j in range(9)}),
            "learning": plots.learning_figure([metrics]), "sweep": plots.sweep_figure(sweep)}


def _inside(box, fig_box) -> bool:
    return (box.x0 >= fig_box.x0 - 1 and box.y0 >= fig_box.y0 - 1
            and box.x1 <= fig_box.x1 + 1 and box.y1 <= fig_box.y1 + 1)


def test_figures_label_their_axes_with_units_inside_the_picture(day, tmp_path):
    """Every axes has a y label with a unit (in brackets, or `per`), each bottom axes an x
    label with one, and every label and legend lies wholly inside the saved figure (none
    clipped at the edge); no legend covers any axes' data area."""
    import matplotlib.pyplot as plt

    unit = re.compile(r"\(.+\)|\bper\b", re.S)
    for name, fig in _figures(day, tmp_path).items():
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        for ax in fig.axes:
            assert unit.search(ax.get_ylabel()), (name, ax.get_ylabel())
            assert _inside(ax.yaxis.label.get_window_extent(r), fig.bbox), ax.get_ylabel()
            twin = ax.yaxis.get_label_position() == "right"     # its x axis is its host's
            if ax.get_subplotspec().is_last_row() and not twin:
                assert unit.search(ax.get_xlabel()), (name, ax.get_xlabel())
                assert _inside(ax.xaxis.label.get_window_extent(r), fig.bbox), name
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(r)
            assert _inside(box, fig.bbox), name
            assert not any(box.overlaps(ax.get_window_extent(r)) for ax in fig.axes), name
        plt.close(fig)


def test_soc_and_sweep_give_each_policy_its_own_style(day, tmp_path):
    """Policies on the same curve stay distinguishable: each state-of-charge line has its
    own colour and marker, and neighbours differ in dash too; a sweep draws a policy alike
    in both panels."""
    import matplotlib.pyplot as plt

    figs = _figures(day, tmp_path)
    for ax in figs["soc"].axes:
        styles = [(tuple(np.round(plt.matplotlib.colors.to_rgb(line.get_color()), 3)),
                   line.get_marker(), line.get_linestyle()) for line in ax.get_lines()]
        assert len(styles) == 9
        for part in range(2):
            assert len({s[part] for s in styles}) == 9, styles
        assert all(a[2] != b[2] for a, b in zip(styles, styles[1:], strict=False)), styles
    left, right = ({line.get_label(): (line.get_color(), line.get_linestyle(), line.get_marker())
                    for line in ax.get_lines()} for ax in figs["sweep"].axes)
    assert set(right) == {"local-fixed", "greedy"} and "oracle" in left
    assert all(left[p] == right[p] for p in right)
    plt.close("all")


def test_a_report_without_simulation_leaves_no_earlier_latency_table(report, tmp_path):
    """`api.report` takes a str folder (it failed on .mkdir after all the work), refuses a
    file there before any work, and a report without the per-job simulation removes
    the latency.csv an earlier report left (whose rows the new report lacks)."""
    import shutil

    import optsched
    from optsched.errors import ScenarioError

    out, _ = report
    again = tmp_path / "again"
    shutil.copytree(out, again)
    assert (again / "latency.csv").is_file()
    optsched.report("jemas-3", [4], ["greedy"], str(again), cache=again / "cache",
                    simulate=False)
    assert not (again / "latency.csv").exists() and (again / "report.md").is_file()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ScenarioError, match="^--out: must be a folder"):
        optsched.report("jemas-3", [4], ["greedy"], tmp_path / "a-file")
