"""Model files cannot run code: every .pt goes through one restricted loader that refuses
anything but tensors and plain data, and any bad file is one line, exit 2."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from optsched.env import DayBank
from optsched.errors import ScenarioError
from optsched.learn.checkpoint import decode, encode, load_checkpoint, upgrade_policy
from optsched.learn.policy import LearnedPolicy
from optsched.learn.train import TrainConfig, train
from optsched.policies import SHIPPED_MODEL
from tests.conftest import small_scenario

SHIPPED = SHIPPED_MODEL


class Evil:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_files(tmp_path: Path) -> list[tuple[Path, Path]]:
    """(file, marker) pairs: torch.save's zip format, and bare pickles (protocols 2, 4)."""
    out = []
    for name, save in (("zip", torch.save),
                       ("pickle2", lambda obj, f: f.write_bytes(pickle.dumps(obj, 2))),
                       ("pickle4", lambda obj, f: f.write_bytes(pickle.dumps(obj, 4)))):
        marker = tmp_path / f"pwned-{name}"
        path = tmp_path / f"evil-{name}.pt"
        save({"actor": Evil(marker), "obs_dim": 3}, path)
        out.append((path, marker))
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "optsched.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_a_malicious_policy_file_is_refused_and_runs_nothing(tmp_path):
    for path, marker in evil_files(tmp_path):
        # protocol 4 fails earlier (an opcode the restricted loader lacks) than the import
        said = "not a readable" if "pickle4" in path.name else "refused: .*posix.system"
        with pytest.raises(ScenarioError, match=f"^--policy: {said}") as e:
            LearnedPolicy(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
        assert not marker.exists()


def test_a_malicious_training_checkpoint_is_refused_on_resume(tmp_path):
    bank = DayBank.from_compiled([small_scenario(3)])
    (path, marker), *_ = evil_files(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    path.rename(out / "checkpoint.pt")
    cfg = TrainConfig(num_envs=4, batch_size=32, learning_starts=48, buffer=200, hidden=16,
                      steps=96, out=str(out), reward="dense")
    with pytest.raises(ScenarioError, match="^--resume: refused: "):
        train(cfg, bank, resume=True)
    assert not marker.exists()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]   # nothing written


def test_the_cli_refuses_bad_policy_files_with_one_line(tmp_path):
    """A malicious pickle, a corrupt file and a training checkpoint: each is exit 2 with
    one line on stderr, and the malicious one runs nothing."""
    (evil, marker), *_ = evil_files(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(bytes(range(256)) * 16)
    run = tmp_path / "run"
    cfg = TrainConfig(num_envs=4, batch_size=32, learning_starts=48, buffer=200, hidden=16,
                      steps=72, out=str(run), reward="dense")
    train(cfg, DayBank.from_compiled([small_scenario(3)]))
    cases = {evil: "refused", corrupt: "not a readable .pt file",
             run / "checkpoint.pt": "a training file, not a policy file"}
    for path, words in cases.items():
        r = cli("evaluate", "jemas-3", "--day", "4", "--no-oracle", "--policy", str(path))
        assert r.returncode == 2, (path, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("optsched: --policy: "), r.stderr
        assert words in lines[0] and r.stdout == ""
    assert not marker.exists()


def test_corrupt_truncated_and_misplaced_files_are_one_line_errors(tmp_path):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(SHIPPED.read_bytes()[:50_000])
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
    odd = tmp_path / "odd.pt"
    torch.save({"format": "optsched", "version": 2, "kind": "x\ny"}, odd)
    cases = {truncated: "not a readable .pt file", empty: "not a readable .pt file",
             plain: "not an optsched model file", tmp_path: "is a folder",
             tmp_path / "missing.pt": "file not found",
             odd: "an unknown file, not a policy file"}
    for path, words in cases.items():
        with pytest.raises(ScenarioError, match=f"^--policy: {words}") as e:
            LearnedPolicy(path)
        assert "\n" not in str(e.value)


def test_a_policy_whose_sizes_disagree_with_its_weights_is_refused(tmp_path):
    blob = load_checkpoint(SHIPPED, "policy")
    from optsched.learn.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "big.pt", "policy", blob | {"hidden": 10**9})
    with pytest.raises(ScenarioError, match="do not match the actor's weights"):
        LearnedPolicy(tmp_path / "big.pt")
    save_checkpoint(tmp_path / "partial.pt", "policy",
                    {k: v for k, v in blob.items() if k != "norm"})
    with pytest.raises(ScenarioError, match="^--policy: incomplete policy file: no 'norm'"):
        LearnedPolicy(tmp_path / "partial.pt")


def test_a_policy_holding_nan_inf_or_a_negative_variance_is_refused(tmp_path):
    """Such numbers turned every action into NaN, an internal error deep in the repair
    (`schedule.ch: contains NaN or inf`); the file is refused when it is read."""
    import copy

    from optsched.learn.checkpoint import save_checkpoint

    blob = load_checkpoint(SHIPPED, "policy")
    bad = []
    for where, value in (("actor", np.nan), ("actor", np.inf), ("mean", np.nan),
                         ("var", -1.0)):
        b = copy.deepcopy(blob)
        if where == "actor":
            b["actor"]["body.2.weight"][3, 5] = value
        else:
            b["norm"][where][7] = value
        path = tmp_path / f"{where}-{value}.pt"
        save_checkpoint(path, "policy", b)
        bad.append(path)
    for path, words in zip(bad, ["NaN or infinite"] * 3 + ["negative variance"],
                           strict=True):
        with pytest.raises(ScenarioError, match=words):
            LearnedPolicy(path)
    LearnedPolicy(SHIPPED)                          # the shipped file itself is fine


def test_an_old_format_policy_is_refused_then_upgraded_without_change(tmp_path):
    """A policy written before the safe format (numpy arrays pickled) is refused by the
    loader; upgrade_policy converts it (allowing numpy arrays only) to the same weights."""
    new = load_checkpoint(SHIPPED, "policy")
    old = tmp_path / "old.pt"
    torch.save({k: v for k, v in new.items()}, old)       # norm holds numpy arrays
    with pytest.raises(ScenarioError, match="refused: .*numpy"):
        LearnedPolicy(old)
    upgrade_policy(old, tmp_path / "new.pt")
    back = load_checkpoint(tmp_path / "new.pt", "policy")
    assert all(torch.equal(back["actor"][k], new["actor"][k]) for k in new["actor"])
    assert back["norm"]["var"].dtype == np.float64
    np.testing.assert_array_equal(back["norm"]["var"], new["norm"]["var"])
    evil, marker = evil_files(tmp_path)[0]
    with pytest.raises(ScenarioError, match="refused: .*posix.system"):
        upgrade_policy(evil, tmp_path / "x.pt")
    assert not marker.exists()


def test_encoding_keeps_arrays_dtypes_and_rng_states_exactly():
    rng = np.random.default_rng(7)
    rng.random(3)
    state = {"a": np.arange(6, dtype=np.int64).reshape(2, 3).T, "b": np.float32([1.5, -2]),
             "c": np.array([True, False]), "n": np.float64(2.5), "rng": rng.bit_generator.state,
             "t": (1, [2.0, None])}
    back = decode(encode(state))
    for k in ("a", "b", "c"):
        assert back[k].dtype == state[k].dtype
        np.testing.assert_array_equal(back[k], state[k])
    assert back["n"] == 2.5 and type(back["n"]) is float and back["t"] == (1, [2.0, None])
    other = np.random.default_rng(0)
    other.bit_generator.state = back["rng"]
    assert other.random() == rng.random()
