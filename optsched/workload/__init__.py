"""The AIGC workload model fitted on the GenTD26 text-to-image trace (data card genai.md):
a strict trace reader (trace.py), the fitted parameters (model.py, genai_params.json,
written by scripts/fit_workload.py) and a seeded day sampler and real-day replay
(sampler.py)."""

from optsched.workload.model import CLASSES, WorkloadModel, load_default
from optsched.workload.sampler import DayWorkload, day_from_trace, sample_day
from optsched.workload.trace import is_genai_trace, read_genai_trace

__all__ = ["CLASSES", "DayWorkload", "WorkloadModel", "day_from_trace", "is_genai_trace",
           "load_default", "read_genai_trace", "sample_day"]
