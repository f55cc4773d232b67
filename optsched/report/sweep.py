"""Sensitivity sweeps: the oracle and every policy as one scenario parameter varies.

One row per (value, day, policy), scored by the evaluator against the oracle of that
variant (cached like the report's, keyed on the compiled scenario), with the gap and the
share of the oracle's gain over local-fixed captured. `sweep.csv` and `sweep.png`
(utility and gap against the value, medians over days) go to `out`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optsched.evaluate import captured, gap


def sweep(scenario: str, days: list, param: str, values: list, policies: list[str],
          out: Path | None = None, cache: Path | None = None, progress=None
          ) -> pd.DataFrame:
    from optsched.policies import get_policy, rollout
    from optsched.report.report import cached_oracle
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.sensitivity import vary

    for name in policies:
        get_policy(name)                                # bad names fail before any work
    variants = {v: [compile_scenario(vary(get_scenario(scenario, d), param, v)) for d in days]
                for v in values}                        # bad values fail before any work
    rows = []
    for v, comp in variants.items():
        if progress:
            progress(f"{param} = {v}: oracle")
        oracle = [cached_oracle(c, cache)[1] for c in comp]
        rolled = {}
        for name in dict.fromkeys(["local-fixed", *policies]):
            if progress:
                progress(f"{param} = {v}: {name}")
            rolled[name] = [ev.utility for _, ev, _ in rollout(get_policy(name), comp)]
        for j, d in enumerate(days):
            base = rolled["local-fixed"][j]
            rows.append({"param": param, "value": v, "day": d, "policy": "oracle",
                         "utility": oracle[j], "gap": 0.0, "captured": 1.0})
            for name, us in rolled.items():
                share = captured(us[j], oracle[j], base)
                rows.append({"param": param, "value": v, "day": d, "policy": name,
                             "utility": us[j], "gap": gap(us[j], oracle[j]),
                             "captured": float("nan") if share is None else share})
    frame = pd.DataFrame(rows)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "sweep.csv", index=False)
        plot_sweep(frame, out / "sweep.png")
    return frame


def plot_sweep(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    med = frame.groupby(["policy", "value"], sort=False)[["utility", "gap"]].median()
    values = list(dict.fromkeys(frame["value"]))
    x = range(len(values))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for policy in dict.fromkeys(frame["policy"]):
        m = med.loc[policy].reindex(values)
        axes[0].plot(x, m["utility"], marker="o", label=policy)
        if policy != "oracle":
            axes[1].plot(x, 100 * m["gap"], marker="o", label=policy)
    param = frame["param"].iloc[0]
    for ax, label in zip(axes, ("utility $ (median over days)", "gap to the oracle %"),
                         strict=True):
        ax.set_xticks(list(x), [str(v) for v in values])
        ax.set_xlabel(param)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
