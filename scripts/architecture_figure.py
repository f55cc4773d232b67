"""Draw docs/architecture.png: optsched's data flow, boxes and arrows.

    python scripts/architecture_figure.py [--out docs/architecture.png]

The boxes are the layers of docs/architecture.md; each names the module that holds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from optsched.io import atomic_path  # noqa: E402

# name: (x centre, y centre, width, height, title, module line, fill colour)
BOXES = {
    "toml": (16, 93, 26, 8, "scenario TOML + CSV series", "your files", "#eeeeee"),
    "real": (50, 93, 30, 8, "real data CSVs", "data/ readers, pvlib, build", "#eeeeee"),
    "family": (84, 93, 26, 8, "embedded families",
               "scenario/jemas3.py, genai.py\nworkload/ (GenTD26 sampler)",
               "#eeeeee"),
    "load": (50, 78, 44, 8, "scenario loader: the only parser", "scenario/load.py + schema.py",
             "#cfe2f3"),
    "compile": (50, 64, 44, 8, "Compiled: the model's arrays", "scenario/compile.py, physics.py",
                "#cfe2f3"),
    "ablate": (88, 64, 22, 8, "ablations, sweeps", "scenario/ablations.py\n"
               "scenario/sensitivity.py", "#cfe2f3"),
    "oracle": (20, 48, 32, 9, "oracle: MILP / LP", "oracle/ (Pyomo, CVXPY, HiGHS)\n"
               "+ oracle/cache.py", "#fce5cd"),
    "env": (58, 48, 24, 9, "environment", "env/ (numba kernel,\nrepair, reward)", "#fce5cd"),
    "policies": (88, 48, 22, 9, "policies", "policies/ (baselines, MPC)\nlearn/ (agents)",
                 "#fce5cd"),
    "schedule": (39, 32, 34, 7, "Schedule: the decision arrays",
                 "schedule.py; sim/ replays it job by job", "#d9ead3"),
    "evaluate": (39, 20, 34, 7, "evaluator: the only scorer", "evaluator.py", "#d9ead3"),
    "report": (18, 6, 28, 7, "tables, plots, reports", "report/", "#ead1dc"),
    "api": (50, 6, 28, 7, "public Python API", "api.py (days.py)", "#ead1dc"),
    "cli": (82, 6, 26, 7, "command line", "cli.py (thin)", "#ead1dc"),
}

# (from, to, from side, to side, label); labels sit beside the arrow's middle
ARROWS = [
    ("toml", "load", "bottom", "top", ""),
    ("real", "load", "bottom", "top", "scenario build"),
    ("family", "load", "bottom", "top", ""),
    ("load", "compile", "bottom", "top", "Scenario (typed)"),
    ("compile", "ablate", "right", "left", ""),
    ("compile", "oracle", "bottom", "top", ""),
    ("compile", "env", "bottom", "top", ""),
    ("policies", "env", "left", "right", ""),
    ("oracle", "schedule", "bottom", "top", ""),
    ("env", "schedule", "bottom", "top", "repaired"),
    ("schedule", "evaluate", "bottom", "top", ""),
    ("evaluate", "report", "bottom", "top", ""),
    ("evaluate", "api", "bottom", "top", ""),
    ("api", "cli", "right", "left", ""),
]


def _anchor(name: str, side: str) -> tuple[float, float]:
    x, y, w, h = BOXES[name][:4]
    return {"top": (x, y + h / 2), "bottom": (x, y - h / 2), "left": (x - w / 2, y),
            "right": (x + w / 2, y)}[side]


def draw(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 9))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    for x, y, w, h, title, module, colour in BOXES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                    boxstyle="round,pad=0.3,rounding_size=1.2",
                                    facecolor=colour, edgecolor="#444444", linewidth=1.2))
        ax.text(x, y + h * 0.18, title, ha="center", va="center", fontsize=10.5,
                fontweight="bold")
        ax.text(x, y - h * 0.2, module, ha="center", va="center", fontsize=8.5,
                family="monospace", color="#333333")
    for a, b, sa, sb, label in ARROWS:
        start, end = _anchor(a, sa), _anchor(b, sb)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14,
                                     linewidth=1.3, color="#555555",
                                     shrinkA=2, shrinkB=2))
        if label:           # to the right of the arrow's middle
            mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
            ax.text(mx + 1, my, label, fontsize=8.5, style="italic", color="#1f4e79",
                    ha="left", va="center",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    # Labels of arrows that run sideways or aslant, placed clear of their lines.
    ax.text(73.5, 48.8, "actions", fontsize=8.5, style="italic", color="#1f4e79",
            ha="center", va="bottom")
    ax.text(8, 13, "utility, terms, violations", fontsize=8.5, style="italic",
            color="#1f4e79", ha="left", va="center")
    ax.set_title("optsched: data flows one way; each concept lives in one place",
                 fontsize=12.5, loc="left")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "docs" / "architecture.png")
    draw(parser.parse_args().out)


if __name__ == "__main__":
    main()
