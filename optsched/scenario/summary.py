"""A readable summary of a scenario (tables as lists of rows), for `scenario show`."""

from __future__ import annotations

import numpy as np

from optsched.scenario.compile import Compiled
from optsched.scenario.schema import Scenario


def summarize(sc: Scenario, c: Compiled) -> dict:
    h = sc.horizon
    total = c.arrivals.sum(axis=0)
    models = []
    for m in sc.models:
        at = np.flatnonzero(c.opt_site == c.models.index(m.name)) if m.name in c.models \
            else []
        q = c.quality[at] if len(at) else np.array([np.nan])
        models.append({"model": m.name, "s/step": m.step_time_s, "J/step": m.step_energy_j,
                       "idle kW": m.gpu_idle_kw, "Q min": round(float(q.min()), 3),
                       "Q max": round(float(q.max()), 3)})
    sites = []
    for i, s in enumerate(sc.sites):
        bat = s.battery
        sites.append({
            "site": s.name, "model": s.model, "GPUs": s.gpus,
            "PUE": round(float(c.pue[i].mean()), 3), "import cap kW": s.import_cap_kw,
            "battery kWh/kW": f"{bat.capacity_kwh:g}/{bat.ch_max_kw:g}" if bat else "-",
            "PV peak kW": round(float(c.renewable[i].max()), 2),
            "price $/MWh min/mean/max": f"{c.price[i].min():.1f}/{c.price[i].mean():.1f}/"
                                       f"{c.price[i].max():.1f}",
            "demand $/kW": s.demand_charge,
        })
    classes = []
    for k, cl in enumerate(sc.classes):
        limit = f"{cl.deadline_s:g} s" if cl.kind == "interactive" else \
            f"{cl.max_wait_slots} slots"
        classes.append({
            "class": cl.name, "home": cl.home, "kind": cl.kind, "deadline/wait": limit,
            "$/job at Q=1": cl.revenue_per_job, "min Q": cl.min_quality,
            "drop $": cl.drop_penalty, "jobs/day": int(c.arrivals[k].sum()),
            "peak/slot": int(c.arrivals[k].max()),
        })
    return {
        "name": sc.name, "description": sc.description,
        "horizon": {"slots": h.slots, "slot_minutes": h.slot_minutes, "steps": h.steps,
                    "clocks": h.clocks, "carbon_price": h.carbon_price,
                    "options_per_class": c.O},
        "jobs": {"per_day": float(total.sum()), "peak_per_slot": float(total.max()),
                 "mean_per_slot": float(total.mean())},
        "models": models, "sites": sites, "classes": classes,
    }
