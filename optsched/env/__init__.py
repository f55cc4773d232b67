"""The environment: the batched numpy core and its Gymnasium faces.

`gymnasium.make("optsched/Jemas3-v0")` gives one copy on jemas-3 training days.
"""

from optsched import ENV_ID
from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig

__all__ = ["ENV_ID", "BatchedCore", "DayBank", "EnvConfig"]
