"""Per-job simulation of a schedule (docs/model.md, "Per-job simulation"): sampled arrival
and service times, FCFS queues on the powered-on GPUs, cold starts, transfers, deadlines."""

from optsched.sim.jobs import ColdStart, Jobs, poisson_jobs
from optsched.sim.rollout import simulate_days, simulate_policy
from optsched.sim.simulate import PERCENTILES, SimResult, simulate

__all__ = ["PERCENTILES", "ColdStart", "Jobs", "SimResult", "poisson_jobs",
           "simulate", "simulate_days", "simulate_policy"]
