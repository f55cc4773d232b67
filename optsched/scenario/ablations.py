"""The paper's ablation switches as transformations of a compiled scenario.

Decision restrictions (no transfer, fixed steps, no DVFS) shrink the eligible options, so
any policy or the oracle on the result is that policy with the lever removed, scored by
the same evaluator. System restrictions (no renewables, no battery) remove the resource.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optsched.scenario.compile import Compiled

ABLATIONS = ("no-transfer", "fixed-steps", "no-dvfs", "no-renewables", "no-battery")
FIXED_STEPS = 30


def _keep(c: Compiled, allowed: np.ndarray) -> np.ndarray:
    """Eligibility restricted to `allowed` [K, O]; a class left with nothing keeps the
    allowed option nearest to eligibility (never an empty class)."""
    keep = c.eligible & allowed
    for k in np.flatnonzero(~keep.any(axis=1)):
        cand = np.flatnonzero(allowed[k])
        keep[k, cand[np.argmax(c.quality[cand])]] = True
    return keep


def ablate(c: Compiled, names: list[str] | tuple[str, ...]) -> Compiled:
    for name in names:
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r} (known: {', '.join(ABLATIONS)})")
    eligible = c.eligible.copy()
    if "no-transfer" in names:
        eligible = _keep(c, c.opt_site[None, :] == c.home[:, None])
    if "fixed-steps" in names:
        steps = c.steps[np.argmin(np.abs(c.steps - FIXED_STEPS))]
        eligible = _keep(dataclasses.replace(c, eligible=eligible),
                         np.broadcast_to(c.opt_steps == steps, eligible.shape))
    if "no-dvfs" in names:
        eligible = _keep(dataclasses.replace(c, eligible=eligible),
                         np.broadcast_to(c.opt_clock == c.clocks.max(), eligible.shape))
    out = dataclasses.replace(c, eligible=eligible)
    if "no-renewables" in names:
        out = dataclasses.replace(out, renewable=np.zeros_like(c.renewable))
    if "no-battery" in names:
        zero = np.zeros_like(c.ch_max)
        out = dataclasses.replace(out, ch_max=zero, dis_max=zero.copy())
    return out
