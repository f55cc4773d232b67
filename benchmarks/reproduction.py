"""Reproduction table: the paper's reported claims (NOTES.md section 1) beside ours.

    python benchmarks/reproduction.py --days test:3
    python benchmarks/reproduction.py --days test:7 --learning runs/learning/results.json \
        --shaping runs/shaping-*/results.json

Computed here, on held-out jemas-3 days, all scored by the evaluator: the shipped learned
scheduler's utility gain over the paper's ablation baselines (no transfer, fixed 30
steps, no DVFS, no renewables: the same policy on the scenario with the lever removed),
over local-fixed, its gap to the oracle and its deadline-violation rate. Read from a
learning benchmark's results.json when given: plain SAC's violation rate and held-out
gap, training wall time per variant; from a shaping grid (benchmarks/learning.py
--variants sac+diffusion --grid eta=... / diffusion-steps=... / latent=...): the best
shaping weight, denoising steps and latent size. What is not given is reported as not
run, never filled in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PAPER = {
    "gain_over_ablations": "about +30% utility over its baselines",
    "violation_rate": "7.59% (plain SAC > 90%)",
    "eta": "0.4 best",
    "diffusion-steps": "5 best of 3/5/7",
    "latent": "128 best of 64/128/256",
    "train_time": "107 min (diffusion-aided SAC) vs 45 min (plain SAC)",
}
LEVERS = ("no-transfer", "fixed-steps", "no-dvfs", "no-renewables")


def measure(days: list[int], policy: str) -> dict:
    from optsched.oracle.cache import DEFAULT_CACHE, cached_oracle
    from optsched.policies import get_policy, rollout
    from optsched.scenario import compile_scenario, get_scenario
    from optsched.scenario.ablations import ablate

    comp = [compile_scenario(get_scenario("jemas-3", d)) for d in days]
    oracle = np.array([cached_oracle(c, DEFAULT_CACHE).objective for c in comp])

    def run(name: str, scen) -> list:
        return [ev for _, ev, _ in rollout(get_policy(name), scen)]

    full = run(policy, comp)
    u = np.array([ev.utility for ev in full])
    base = np.array([ev.utility for ev in run("local-fixed", comp)])
    out = {"days": days, "utility": u.tolist(), "oracle": oracle.tolist(),
           "gap": float(np.median((oracle - u) / np.abs(oracle))),
           "captured": float(np.median((u - base) / (oracle - base))),
           "gain_over_local_fixed": float(np.median(u / base - 1)),
           "violation_rate": float(np.median([ev.jobs["late"] / max(ev.jobs["served"], 1)
                                              for ev in full]))}
    for lever in LEVERS:
        ab = np.array([ev.utility for ev in run(policy, [ablate(c, [lever]) for c in comp])])
        out[f"gain_over_{lever}"] = float(np.median(u / ab - 1))
    return out


DEFAULTS = {"eta": "0.4", "diffusion-steps": "5", "latent": "128"}   # TrainConfig's


def best_of(rows: list[dict], key: str) -> str:
    """The grid value with the best median held-out utility, with every value's median.
    Plain `sac+diffusion` runs count at the default value of every key, for the seeds the
    grid ran (a grid of one seed compares with the default's same seed)."""
    diff = [r for r in rows if r["variant"].startswith("sac+diffusion")
            and r.get("heldout_utility") is not None]
    tagged = [r for r in diff if key in r["variant"]]
    if not tagged:
        return "not run"
    seeds = {r["seed"] for r in tagged}
    vals: dict[str, list[float]] = {}
    for r in tagged:
        vals.setdefault(dict(p.split("=") for p in r["variant"].split()[1:])[key],
                        []).append(r["heldout_utility"])
    for r in diff:
        if r["variant"] == "sac+diffusion" and r["seed"] in seeds:
            vals.setdefault(DEFAULTS[key], []).append(r["heldout_utility"])
    med = {k: float(np.median(v)) for k, v in vals.items()}
    best = max(med, key=med.get)
    return f"{best} best (" + ", ".join(f"{k}: ${v:,.2f}" for k, v in
                                        sorted(med.items(), key=lambda kv: float(kv[0])))\
        + f"; mean held-out utility, seed(s) {sorted(seeds)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="test:3")
    ap.add_argument("--policy", default="learned")
    ap.add_argument("--learning", type=Path, help="benchmarks/learning.py results.json")
    ap.add_argument("--shaping", type=Path, nargs="*", default=[],
                    help="results.json files of shaping grids")
    ap.add_argument("--out", type=Path, default=Path("runs/reproduction.json"))
    args = ap.parse_args()
    from optsched.days import parse_days

    days = parse_days(args.days, "jemas-3")
    m = measure(days, args.policy)
    learning = json.loads(args.learning.read_text()) if args.learning else []
    shaping = learning + [r for p in args.shaping for r in json.loads(p.read_text())]

    def variant(name: str, key: str) -> float | None:
        vals = [r[key] for r in learning if r["variant"] == name and r.get(key) is not None]
        return float(np.median(vals)) if vals else None

    sac_late, sac_wall = variant("sac", "late_rate"), variant("sac", "wall_s")
    diff_wall = variant("sac+diffusion", "wall_s")
    gains = ", ".join(f"{lv} {100 * m[f'gain_over_{lv}']:+.2f}%" for lv in LEVERS)
    rows = [
        ("utility gain over the ablation baselines", PAPER["gain_over_ablations"],
         f"{gains}; over local-fixed {100 * m['gain_over_local_fixed']:+.1f}%",
         "our ablations remove one lever from the same policy; revenue dominates utility "
         "and energy is ~0.2% of it at real prices, so energy levers are worth little"),
        ("deadline-violation rate", PAPER["violation_rate"],
         f"{args.policy} {100 * m['violation_rate']:.2f}%"
         + ("" if sac_late is None else f"; plain SAC {100 * sac_late:.2f}%"),
         "late = served past the class deadline (interactive) / served; the repair never "
         "lets a deferrable job wait past its limit"),
        ("shaping weight eta", PAPER["eta"], best_of(shaping, "eta"),
         "sac+diffusion, settlement reward, dispatch-battery action, learning-benchmark "
         "budget; one seed per value, so read it against the seed-to-seed spread of one "
         "setting in the learning benchmark"),
        ("reward-model denoising steps", PAPER["diffusion-steps"],
         best_of(shaping, "diffusion-steps"), "as above"),
        ("reward-model latent size", PAPER["latent"], best_of(shaping, "latent"), "as above"),
        ("training time", PAPER["train_time"],
         "not run" if sac_wall is None or diff_wall is None else
         f"sac+diffusion {diff_wall / 60:.1f} min vs sac {sac_wall / 60:.1f} min",
         "same env-step budget on this 2-core CPU"),
        ("gap to the perfect-foresight oracle (not in the paper)", "-",
         f"{100 * m['gap']:.2f}%, {100 * m['captured']:.1f}% of the oracle's gain over "
         "local-fixed captured", "MILP oracle, median over days"),
    ]
    print(f"Reproduction on jemas-3 days {', '.join(map(str, days))} (medians over days)\n")
    print("| claim | paper | ours | what differs |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"measured": m, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
