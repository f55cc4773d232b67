"""Model and checkpoint files that cannot run code.

A `.pt` file from anywhere (`--policy FILE.pt`, `train --resume`) is loaded with torch's
restricted unpickler (`weights_only=True`): it may hold tensors, numbers, strings, None,
lists, tuples and dicts, nothing else, so no class can be constructed and no function
called while reading it. numpy arrays are stored as `{"__ndarray__": tensor}` and come
back as arrays. Every file carries `format` ("optsched"), `version` and `kind` ("policy":
an actor to evaluate; "training": the whole state of a run to resume), so a file of the
wrong kind is named as such. Every load goes through `load_checkpoint`, which turns any
failure (refused, corrupt, truncated, wrong kind, missing or mismatched keys) into one
`ScenarioError` line; every save is atomic.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from optsched.errors import ScenarioError
from optsched.io import atomic_path

FORMAT, VERSION = "optsched", 2
FLAGS = {"policy": "--policy", "training": "--resume"}
_ARRAY = "__ndarray__"
T = TypeVar("T")


def encode(obj: Any) -> Any:
    """`obj` with numpy arrays and scalars replaced by what the restricted loader allows."""
    if isinstance(obj, np.ndarray):
        return {_ARRAY: torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(encode(v) for v in obj)
    return obj


def decode(obj: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY} and isinstance(obj[_ARRAY], torch.Tensor):
            return obj[_ARRAY].numpy()
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(decode(v) for v in obj)
    return obj


def save_checkpoint(path: str | Path, kind: str, payload: dict) -> None:
    """Write `payload` (tensors, numpy arrays, numbers, strings, containers) atomically."""
    if kind not in FLAGS:
        raise ValueError(f"kind must be one of {tuple(FLAGS)}, got {kind!r}")
    blob = {"format": FORMAT, "version": VERSION, "kind": kind, **encode(payload)}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: str | Path, kind: str,
                    apply: Callable[[dict], T] | None = None) -> T | dict:
    """The payload of an optsched file of `kind`, read without running any code in it;
    with `apply`, the result of `apply(payload)` (building or restoring from it), where a
    missing key or a mismatched shape is reported the same way. Any failure: one
    `ScenarioError` naming the flag that gave the file (--policy, --resume)."""
    flag, shown = FLAGS[kind], str(path)

    def fail(problem: str) -> ScenarioError:
        return ScenarioError(flag, problem, shown)

    try:
        with warnings.catch_warnings():     # torch's notes on odd files: the error says it
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise fail("file not found") from None
    except IsADirectoryError:
        raise fail("is a folder, not a .pt file") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise fail(_refusal(e)) from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise fail("not an optsched model file (no format tag)")
    if blob.get("version") != VERSION:
        raise fail(f"file format version {_one_line(repr(blob.get('version')), 40)}, this "
                   f"optsched reads {VERSION}")
    if blob.get("kind") != kind:
        theirs = f"a {blob['kind']}" if blob.get("kind") in FLAGS else "an unknown"
        hint = " (use the policy.pt beside it)" if theirs == "a training" else ""
        raise fail(f"{theirs} file, not a {kind} file{hint}")
    try:
        payload = decode({k: v for k, v in blob.items()
                          if k not in ("format", "version", "kind")})
        return payload if apply is None else apply(payload)
    except KeyError as e:
        raise fail(f"incomplete {kind} file: no {e}") from None
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise fail(f"inconsistent {kind} file: {_one_line(e)}") from None


def _one_line(e: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _refusal(e: BaseException) -> str:
    """Why torch would not load a file, on one line: the object it would have had to
    import (refused), or that it is no readable tensor file."""
    m = re.search(r"GLOBAL ([\w.]*\w)", str(e)) if isinstance(e, pickle.UnpicklingError) else None
    if m:
        what = _one_line(m.group(1), 80)
        hint = (" (a policy from before the safe format? convert it with "
                "optsched.learn.checkpoint.upgrade_policy)" if what.startswith("numpy") else "")
        return (f"refused: the file would load {what}; model files may hold only "
                f"tensors, numbers and strings (nothing in it was run){hint}")
    detail = "" if isinstance(e, pickle.UnpicklingError) else f": {_one_line(e)}"
    return f"not a readable .pt file (corrupt, truncated, or not only tensors){detail}"


def upgrade_policy(src: str | Path, dst: str | Path) -> None:
    """Convert a policy file written before the safe format (its normaliser held pickled
    numpy arrays) into the current one. Still no code can run: the loader allows numpy's
    array reconstruction and nothing else."""
    import numpy._core.multiarray as multiarray

    allowed = [multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.float64)),
               type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    try:
        with torch.serialization.safe_globals(allowed):
            blob = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - as in load_checkpoint
        raise ScenarioError("--policy", _refusal(e), str(src)) from None
    keys = ("actor", "norm", "obs_dim", "act_dim", "hidden")
    if not isinstance(blob, dict) or any(k not in blob for k in keys):
        raise ScenarioError("--policy", f"not an old optsched policy (keys {keys})", str(src))
    save_checkpoint(dst, "policy", {"action": "direct", "config": {}} | blob)
