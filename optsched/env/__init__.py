"""The environment: the batched numpy core and its Gymnasium faces.

`gymnasium.make("optsched/Jemas3-v0")` gives one copy on jemas-3 training days.
"""

import gymnasium

from optsched.env.bank import DayBank
from optsched.env.core import BatchedCore, EnvConfig

ENV_ID = "optsched/Jemas3-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="optsched.env.gym:OptschedEnv")

__all__ = ["ENV_ID", "BatchedCore", "DayBank", "EnvConfig"]
