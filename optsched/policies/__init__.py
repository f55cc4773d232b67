"""Policies that produce schedules. Issue 4 moves them onto the batched environment."""

from optsched.policies.rules import POLICIES, local_fixed

__all__ = ["POLICIES", "local_fixed"]
