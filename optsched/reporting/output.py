"""Report files written atomically (optsched.io): a crash leaves the old file or none,
never half of one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optsched.io import atomic_path, atomic_write_text


def write_csv(frame: pd.DataFrame, path: Path, index: bool = False) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=index)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def save_figure(fig, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path


def write_solution(c, sol, out: Path, title: str, result_json: str) -> None:
    """`solve --out`: the schedule as Parquet and CSV (jobs in long form, sites per slot),
    the evaluator's slots, plots and solution.json."""
    from optsched.reporting.plots import save_schedule_plots

    out.mkdir(parents=True, exist_ok=True)
    jobs, sites = sol.schedule.frames(c)
    for name, frame in (("jobs", jobs), ("sites", sites)):
        write_parquet(frame, out / f"{name}.parquet")
        write_csv(frame, out / f"{name}.csv")
    write_csv(sol.evaluation.slots_frame(), out / "slots.csv", index=True)
    save_schedule_plots(c, sol.schedule, sol.evaluation, out, title)
    atomic_write_text(out / "solution.json", result_json + "\n")


def write_evaluation(summary: dict, evaluations: list, out: Path, summary_json: str
                     ) -> None:
    """`evaluate --out`: per day the evaluator's slots and sites tables, and summary.json."""
    out.mkdir(parents=True, exist_ok=True)
    for day, ev in zip((d["day"] for d in summary["days"]), evaluations, strict=True):
        tag = "" if day is None else f"_day{day:03d}"
        write_csv(ev.slots_frame(), out / f"slots{tag}.csv", index=True)
        write_csv(ev.sites_frame(), out / f"sites{tag}.csv", index=True)
    atomic_write_text(out / "summary.json", summary_json + "\n")
