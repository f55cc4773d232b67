"""Figures of a scored schedule: per-site dispatch, and steps/clock/routing over the day."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from optsched.evaluator import Evaluation  # noqa: E402
from optsched.scenario.compile import Compiled  # noqa: E402
from optsched.schedule import Schedule  # noqa: E402


def _hours(c: Compiled) -> np.ndarray:
    return np.arange(c.T) * c.dt_h


def dispatch_figure(c: Compiled, ev: Evaluation, title: str = "") -> plt.Figure:
    """Per site: grid import, battery (charge > 0), PV used, IT and facility power, price."""
    s = ev.site_series
    h = _hours(c)
    fig, axes = plt.subplots(c.I, 1, figsize=(11, 2.8 * c.I), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.step(h, s["grid_import_kw"][i], where="post", label="grid import", lw=1.2)
        ax.step(h, s["facility_kw"][i], where="post", label="facility", lw=1.0, alpha=0.8)
        ax.step(h, s["it_kw"][i], where="post", label="IT", lw=0.8, alpha=0.8)
        ax.fill_between(h, s["renewable_kw"][i], step="post", alpha=0.3, label="PV used")
        ax.step(h, s["charge_kw"][i] - s["discharge_kw"][i], where="post",
                label="battery (+charge)", lw=1.0)
        ax.axhline(c.import_cap[i], ls=":", c="k", lw=0.8, label="import cap")
        ax.set_ylabel(f"{c.sites[i]}\nkW")
        twin = ax.twinx()
        twin.step(h, s["price"][i], where="post", c="grey", lw=0.7, alpha=0.6)
        twin.set_ylabel("$/MWh", color="grey")
        if i == 0:
            ax.legend(ncol=6, fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("hour of the horizon")
    fig.suptitle(title or "dispatch per site")
    fig.tight_layout()
    return fig


def decisions_figure(c: Compiled, s: Schedule, title: str = "") -> plt.Figure:
    """Per class: mean denoising steps and clock of served jobs, and where they ran."""
    h = _hours(c)
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    served = s.x.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in range(c.K):
            steps = np.einsum("o,ot->t", c.opt_steps.astype(float), s.x[k]) / served[k]
            clock = np.einsum("o,ot->t", c.opt_clock, s.x[k]) / served[k]
            axes[0].plot(h, steps, lw=0.9, label=c.classes[k])
            axes[1].plot(h, clock, lw=0.9)
    at_site = np.einsum("io,kot->it", c.site_of, s.x)
    own = np.zeros((c.I, c.T))
    for k in range(c.K):
        own[c.home[k]] += served[k]
    axes[2].stackplot(h, at_site, labels=[f"served at {n}" for n in c.sites], alpha=0.7)
    axes[2].plot(h, s.y.sum(axis=0), c="k", lw=0.8, label="dropped")
    axes[0].set_ylabel("mean steps")
    axes[1].set_ylabel("mean clock")
    axes[2].set_ylabel("jobs per slot")
    axes[0].legend(ncol=3, fontsize=7)
    axes[2].legend(ncol=4, fontsize=7, loc="upper left")
    axes[2].set_xlabel("hour of the horizon")
    fig.suptitle(title or "steps, clock and routing")
    fig.tight_layout()
    return fig


def save_schedule_plots(c: Compiled, s: Schedule, ev: Evaluation, out: Path,
                        title: str = "") -> list[Path]:
    from optsched.report.output import save_figure

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in (("dispatch.png", dispatch_figure(c, ev, title)),
                      ("decisions.png", decisions_figure(c, s, title))):
        paths.append(save_figure(fig, out / name))
    return paths


def soc_figure(c: Compiled, schedules: dict[str, Schedule]) -> plt.Figure:
    """State of charge per site (kWh) of each policy's schedule."""
    h = _hours(c)
    fig, axes = plt.subplots(1, c.I, figsize=(12, 3.2), sharey=False, squeeze=False)
    for i, ax in enumerate(axes[0]):
        for name, s in schedules.items():
            ax.plot(h, s.soc[i], lw=1.0, label=name)
        ax.set_title(c.sites[i])
        ax.set_xlabel("hour")
    axes[0, 0].set_ylabel("state of charge (kWh)")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def learning_figure(paths: list[Path]) -> plt.Figure:
    """Training episode utility against environment steps, one line per metrics.csv."""
    import pandas as pd

    fig, ax = plt.subplots(figsize=(8, 3.5))
    for path in paths:
        m = pd.read_csv(path)
        ax.plot(m["steps"], m["episode_utility"], lw=1.0, label=Path(path).parent.name)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode utility $ (training days)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
