"""Figures of a scored schedule: per-site dispatch, and steps/clock/routing over the day;
state of charge, learning curves and sweeps across policies.

Every axis says what it shows and in which unit; legends sit outside the data (above or
below the axes) so that no curve hides behind one; each policy keeps one colour, line style
and marker (policy_styles) across the panels of a figure."""

from __future__ import annotations

from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from optsched.evaluator import Evaluation  # noqa: E402
from optsched.scenario.compile import Compiled  # noqa: E402
from optsched.schedule import Schedule  # noqa: E402

HOURS = "hour of the horizon (h)"
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def policy_styles(names) -> dict[str, dict]:
    """One matplotlib style per policy: tab10's colours (a qualitative palette), with line
    styles and markers cycling at different periods, so two policies differ in colour and
    also in dash or marker: curves that lie on top of each other both stay visible."""
    colours = plt.get_cmap("tab10").colors
    styles = zip(cycle(colours), cycle(LINE_STYLES), cycle(MARKERS))
    return {name: {"color": c, "ls": ls, "marker": m}
            for name, (c, ls, m) in zip(dict.fromkeys(names), styles, strict=False)}


def _hours(c: Compiled) -> np.ndarray:
    return np.arange(c.T) * c.dt_h


def dispatch_figure(c: Compiled, ev: Evaluation, title: str = "") -> plt.Figure:
    """Per site: grid import, battery (charge > 0), PV used, IT and facility power, price."""
    s = ev.site_series
    h = _hours(c)
    fig, axes = plt.subplots(c.I, 1, figsize=(11, 2.8 * c.I + 0.6), sharex=True,
                             squeeze=False, layout="constrained")
    for i, ax in enumerate(axes[:, 0]):
        ax.step(h, s["grid_import_kw"][i], where="post", label="grid import", lw=1.2)
        ax.step(h, s["facility_kw"][i], where="post", label="facility", lw=1.0, alpha=0.8)
        ax.step(h, s["it_kw"][i], where="post", label="IT", lw=0.8, alpha=0.8)
        ax.fill_between(h, s["renewable_kw"][i], step="post", alpha=0.3, label="PV used")
        ax.step(h, s["charge_kw"][i] - s["discharge_kw"][i], where="post",
                label="battery (+charge)", lw=1.0)
        ax.axhline(c.import_cap[i], ls=":", c="k", lw=0.8, label="import cap")
        ax.set_ylabel(f"{c.sites[i]}\npower (kW)")
        twin = ax.twinx()
        twin.step(h, s["price"][i], where="post", c="dimgrey", lw=0.7, alpha=0.7,
                  label="price (right axis)")
        twin.set_ylabel("price ($/MWh)", color="dimgrey")
        twin.tick_params(axis="y", colors="dimgrey")
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
            more = twin.get_legend_handles_labels()
            fig.legend(handles + more[0], labels + more[1], loc="outside lower center",
                       ncol=7, fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel(HOURS)
    fig.suptitle(title or "dispatch per site")
    fig.align_ylabels(axes[:, 0])
    return fig


def decisions_figure(c: Compiled, s: Schedule, title: str = "") -> plt.Figure:
    """Per class: mean denoising steps and clock of served jobs, and where they ran."""
    h = _hours(c)
    fig, axes = plt.subplots(3, 1, figsize=(11, 8.6), sharex=True, layout="constrained")
    served = s.x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(c.K):
            steps = np.einsum("o,ot->t", c.opt_steps.astype(float), s.x[k]) / served[k]
            clock = np.einsum("o,ot->t", c.opt_clock, s.x[k]) / served[k]
            axes[0].plot(h, steps, lw=0.9, label=c.classes[k])
            axes[1].plot(h, clock, lw=0.9)
    at_site = np.einsum("io,kot->it", c.site_of, s.x)
    axes[2].stackplot(h, at_site, labels=[f"served at {n}" for n in c.sites], alpha=0.7)
    axes[2].plot(h, s.y.sum(axis=0), c="k", lw=0.8, label="dropped")
    axes[0].set_ylabel("mean steps\n(denoising steps per job)")
    axes[1].set_ylabel("mean clock\n(fraction of nominal)")
    axes[2].set_ylabel("jobs (per slot)")
    for ax, ncol in ((axes[0], c.K), (axes[2], c.I + 1)):
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=ncol, fontsize=8,
                  frameon=False, borderaxespad=0.2)
    axes[2].set_xlabel(HOURS)
    fig.suptitle(title or "steps, clock and routing")
    fig.align_ylabels(axes)
    return fig


def save_schedule_plots(c: Compiled, s: Schedule, ev: Evaluation, out: Path,
                        title: str = "") -> list[Path]:
    from optsched.reporting.output import save_figure

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (("dispatch.png", dispatch_figure(c, ev, title)),
                      ("decisions.png", decisions_figure(c, s, title))):
        paths.append(save_figure(fig, out / name))
    return paths


def soc_figure(c: Compiled, schedules: dict[str, Schedule]) -> plt.Figure:
    """State of charge per site (kWh) of each policy's schedule. Policies often share a
    curve (a battery left idle at its initial charge), so each has its own colour, dash
    and markers placed at offset slots, and the legend sits below the panels."""
    h = _hours(c)
    styles = policy_styles(schedules)
    fig, axes = plt.subplots(1, c.I, figsize=(12, 3.6), squeeze=False, layout="constrained")
    every = max(1, c.T // 8)
    for i, ax in enumerate(axes[0]):
        for j, (name, s) in enumerate(schedules.items()):
            ax.plot(h, s.soc[i], lw=1.4, ms=5, mfc="none", label=name, **styles[name],
                    markevery=(j * every // max(1, len(schedules)), every))
        ax.set_title(c.sites[i])
        ax.set_xlabel(HOURS)
        ax.set_ylabel("state of charge (kWh)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5),
               fontsize=9, frameon=False)
    return fig


def read_metrics(path: Path):
    """A training run's metrics.csv (`optsched train`) as a DataFrame; anything else is
    refused in one line naming the file."""
    import pandas as pd

    from optsched.errors import ScenarioError

    try:
        m = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ScenarioError("--metrics", f"not a training metrics.csv ({type(e).__name__})",
                            str(path)) from None
    missing = sorted({"steps", "episode_utility"} - set(m.columns))
    if missing:
        raise ScenarioError("--metrics", "not a training metrics.csv (no column "
                            f"{', '.join(missing)})", str(path))
    for col in ("steps", "episode_utility"):         # what the curves plot
        v = pd.to_numeric(m[col], errors="coerce").to_numpy(dtype=float)
        if not len(v) or not np.isfinite(v).all() or (col == "steps" and (
                (v < 0).any() or (v > 1e12).any())):
            raise ScenarioError("--metrics", f"not a training metrics.csv (column {col}: "
                                "finite numbers expected" + (", 0 to 1e12 steps"
                                                             if col == "steps" else "") + ")",
                                str(path))
        m[col] = v
    return m


def learning_figure(paths: list[Path]) -> plt.Figure:
    """Training episode utility against environment steps, one line per metrics.csv."""
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for path in paths:
        m = read_metrics(path)
        ax.plot(m["steps"], m["episode_utility"], lw=1.0, label=Path(path).parent.name)
    ax.set_xlabel("environment steps (slots simulated)")
    ax.set_ylabel("episode utility ($ per day,\ntraining days)")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=min(len(paths), 4), fontsize=8,
               frameon=False)
    return fig


def sweep_figure(frame) -> plt.Figure:
    """A sweep's medians over days against the parameter's value: utility (every policy
    and the oracle) and gap to the oracle, each policy in the same style in both panels."""
    med = frame.groupby(["policy", "value"], sort=False)[["utility", "gap"]].median()
    values = list(dict.fromkeys(frame["value"]))
    x = range(len(values))
    styles = policy_styles(frame["policy"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for policy, style in styles.items():
        m = med.loc[policy].reindex(values)
        axes[0].plot(x, m["utility"], label=policy, **style)
        if policy != "oracle":
            axes[1].plot(x, 100 * m["gap"], label=policy, **style)
    param = frame["param"].iloc[0]
    for ax, label in zip(axes, ("utility ($ per day, median over days)",
                                "gap to the oracle (%, median over days)"), strict=True):
        ax.set_xticks(list(x), [str(v) for v in values])
        ax.set_xlabel(f"{param} (value swept)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center",
               ncol=min(len(styles), 6), fontsize=8, frameon=False)
    return fig
