"""Infeasibility diagnosis: which MODEL.md constraint family, at which sites and slots.

A validated scenario is always feasible under MODEL.md v1 (jobs can be dropped, GPUs
powered off, the battery left idle), so infeasibility means inputs that bypassed the
loader or an extension's constraint. The diagnosis solves the elastic version of the
model (every row may be violated at a cost of one per unit) and names the rows that
still need their slack, grouped into runs of consecutive slots.
"""

from __future__ import annotations

import highspy
import numpy as np
import scipy.sparse as sp

from optsched.oracle.highs import highs_lp, new_highs
from optsched.oracle.matrix import MatrixModel


def bound_conflicts(m: MatrixModel) -> list[str]:
    out = []
    for name, sl in m.blocks.items():
        bad = np.flatnonzero(m.col_lo[sl] > m.col_hi[sl] + 1e-9)
        if bad.size:
            out.append(f"bounds of {name}: lower above upper at {bad.size} entries "
                       f"(first flat index {int(bad[0])})")
    return out


def diagnose(m: MatrixModel, tol: float = 1e-6) -> str:
    """A one-paragraph explanation of why the model has no feasible point."""
    conflicts = bound_conflicts(m)
    if conflicts:
        return "; ".join(conflicts)
    rows = m.n_cons
    eye = sp.eye(rows, format="csc")
    A = sp.hstack([m.A.tocsc(), eye, -eye], format="csc")
    n = m.n_vars + 2 * rows
    h = new_highs()
    h.passModel(highs_lp(
        np.concatenate([np.zeros(m.n_vars), np.ones(2 * rows)]),
        np.concatenate([m.col_lo, np.zeros(2 * rows)]),
        np.concatenate([m.col_hi, np.full(2 * rows, np.inf)]),
        m.row_lo, m.row_hi, A, np.zeros(n, bool)))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return f"the elastic model did not solve either ({h.getModelStatus()})"
    v = np.asarray(h.getSolution().col_value)
    slack = v[m.n_vars:m.n_vars + rows] + v[m.n_vars + rows:]
    parts = []
    for fam in m.families:
        s = slack[fam.rows]
        if s.max(initial=0.0) <= tol:
            continue
        n_labels = len(fam.labels)
        per = len(s) // max(n_labels, 1)
        for j, label in enumerate(fam.labels):
            sj = s[j * per:(j + 1) * per]
            bad = np.flatnonzero(sj > tol)
            if not bad.size:
                continue
            where = f"{fam.axis} {label}"
            if fam.per_slot:
                where += f", slots {_runs(bad)}"
            parts.append(f"{fam.name} at {where}: violated by {sj.sum():.6g} in total")
    return "; ".join(parts) or "no single constraint family is to blame (numerical trouble)"


def _runs(idx: np.ndarray) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    runs, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i != prev + 1:
            runs.append(f"{start}-{prev}" if prev > start else f"{start}")
            start = i
        prev = i
    runs.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(runs)
