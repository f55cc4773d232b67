"""Training on the batched environment: checkpoints resume exactly (weights and metrics),
run folders are protected, bad options are refused up front; learning improves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optsched.env import DayBank
from optsched.learn.ppo import gae
from optsched.learn.train import TrainConfig, make_trainer, train
from tests.conftest import small_scenario


@pytest.fixture(scope="module")
def bank():
    return DayBank.from_compiled([small_scenario(3)])


def small_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(num_envs=4, batch_size=32, learning_starts=48, buffer=2000, hidden=32,
                updates_per_step=1,
                latent=16, shaping_warmup=0, checkpoint_every=10**9, reward="dense",
                out=str(tmp_path))
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize(("algo", "shaping", "reward_norm"), [
    ("sac", "none", False), ("sac", "diffusion", False), ("sac", "potential", False),
    ("td3", "diffusion", False), ("ppo", "none", False), ("sac", "none", True),
    ("ppo", "none", True)])
def test_checkpoint_resume_gives_identical_next_updates(tmp_path, bank, algo, shaping,
                                                        reward_norm):
    cfg = small_cfg(tmp_path, algo=algo, shaping=shaping, seed=5, ppo_rollout=8,
                    reward_norm=reward_norm)
    a = make_trainer(cfg, bank)
    a.run(until=96)
    a.save(tmp_path / "ck.pt")
    a.run(until=160)
    b = make_trainer(cfg, bank)
    b.load(tmp_path / "ck.pt")
    b.run(until=160)
    for (name, p), q in zip(a.agent.state_dict().items(), b.agent.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name
    np.testing.assert_array_equal(a.obs, b.obs)


def test_train_writes_metrics_checkpoint_and_policy(tmp_path, bank):
    cfg = small_cfg(tmp_path, shaping="mlp", steps=96, checkpoint_every=48)
    train(cfg, bank)
    for name in ("metrics.csv", "checkpoint.pt", "policy.pt", "config.json", "curves.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("steps,wall_s,episode_utility") and len(rows) >= 2


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_agents_learn_a_tiny_scenario(tmp_path, algo):
    """Six slots, two sites, every decision in the action (direct): SAC and PPO close at
    least half the gap from random actions to the oracle."""
    from optsched.env import BatchedCore, EnvConfig
    from optsched.oracle import solve

    torch.set_num_threads(1)
    c = small_scenario(3)
    bank = DayBank.from_compiled([c])

    def utility(trainer=None, seed=0):
        rng = np.random.default_rng(seed)
        core = BatchedCore(bank, 1, EnvConfig())
        obs, total, done = core.reset(days=[0]), 0.0, False
        while not done:
            a = (trainer.agent.act(trainer.norm(obs).astype(np.float32), deterministic=True)
                 if trainer else rng.uniform(-1, 1, (1, core.action_dim)))
            obs, r, done, _ = core.step(a)
            total += r[0]
        return total

    random = np.mean([utility(seed=s) for s in range(20)])
    oracle = solve(c, "highs").objective
    cfg = TrainConfig(algo=algo, action="direct", num_envs=16, batch_size=64,
                      learning_starts=480, buffer=20_000, hidden=64, reward="dense",
                      gamma=0.9, steps=6000 if algo == "sac" else 24_000, seed=0,
                      updates_per_step=1, out=str(tmp_path), checkpoint_every=10**9,
                      ppo_rollout=6)
    trainer = make_trainer(cfg, bank)
    trainer.run()
    if algo == "ppo":
        trainer.agent.act = lambda o, deterministic: trainer.agent.actor(
            torch.as_tensor(o), deterministic)[0].detach().numpy()
    assert utility(trainer) > random + 0.5 * (oracle - random)


def test_return_norm_divides_by_the_running_std_of_discounted_returns():
    from optsched.learn.nets import ReturnNorm

    rng = np.random.default_rng(0)
    norm, g = ReturnNorm(batch=3, gamma=0.9), np.zeros(3)
    seen, out = [], None
    for t in range(50):
        r = rng.normal(5.0, 2.0, 3)
        g = 0.9 * g + r
        seen.append(g.copy())
        out = norm(r, done=t == 49)
    var = np.var(np.concatenate(seen))
    assert norm.stats.var[0] == pytest.approx(var, rel=1e-3)    # Welford over all returns
    assert out == pytest.approx(r / np.sqrt(norm.stats.var[0] + 1e-8))
    assert (norm.ret == 0).all()                                 # reset at episode end


def test_gae_matches_a_hand_computation():
    """Two steps, the episode ends at the second: A1 = r1 - V1, A0 = d0 + g*l*A1."""
    rew, val = np.array([[1.0], [2.0]]), np.array([[0.5], [1.5]])
    adv, ret = gae(rew, val, np.array([[0.0], [1.0]]), np.array([9.0]), 0.9, 0.8)
    a1 = 2.0 - 1.5
    a0 = (1.0 + 0.9 * 1.5 - 0.5) + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1])
    np.testing.assert_allclose(ret, adv + val)


def test_train_and_evaluate_a_checkpoint_from_the_cli(tmp_path):
    """A short PPO run (one episode of one copy) from the CLI, its policy evaluated; then
    the run folder is protected: a fresh run into it and a resume without a checkpoint
    are refused with one line and exit 2; a resume needs only --steps."""
    import json
    import subprocess
    import sys

    run = [sys.executable, "-m", "optsched.cli"]
    train_cmd = [*run, "train", "--algo", "ppo", "--steps", "288", "--num-envs", "1",
                 "--days", "train:2", "--out", str(tmp_path)]
    out = subprocess.run(train_cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    ev = subprocess.run([*run, "evaluate", "jemas-3", "--policy", str(tmp_path / "policy.pt"),
                         "--no-oracle", "--json"], capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["feasible"]
    bad = subprocess.run([*run, "train", "--days", "4", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "held-out" in bad.stderr
    before = (tmp_path / "metrics.csv").read_bytes()
    again = subprocess.run(train_cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("optsched: --out: already holds a "
                                                            "run (checkpoint.pt, metrics.csv")
    assert (tmp_path / "metrics.csv").read_bytes() == before
    empty = tmp_path / "empty"
    nothing = subprocess.run([*train_cmd[:-1], str(empty), "--resume"], capture_output=True,
                             text=True, timeout=600)
    assert nothing.returncode == 2 and "--resume: no checkpoint" in nothing.stderr
    assert not empty.exists()
    # --resume takes the run's own options (ppo, 1 copy, its 2 days) for those not given;
    # one given differently is refused by the checkpoint.
    more = subprocess.run([*run, "train", "--resume", "--steps", "576", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert more.returncode == 0, more.stderr
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["algo"], config["num_envs"], config["steps"]) == ("ppo", 1, 576)
    assert len(config["days"]) == 2
    other = subprocess.run([*run, "train", "--resume", "--steps", "864", "--seed", "5",
                            "--out", str(tmp_path)], capture_output=True, text=True,
                           timeout=600)
    assert other.returncode == 2 and "--resume: the checkpoint's run has seed=0" in \
        other.stderr


def test_train_on_the_hard_family_from_the_cli(tmp_path):
    """`optsched train jemas-3-genai` trains the provision-battery action on that family's
    days: the policy has 3 sites x 3 action numbers and keeps the run's options."""
    import subprocess
    import sys

    import torch

    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "optsched.cli", "train", "jemas-3-genai", "--algo", "ppo",
         "--action", "provision-battery", "--steps", "288", "--num-envs", "1", "--days",
         "train:1", "--gamma", "0.999", "--lr", "3e-5", "--init-action",
         "0,0,0,-0.3,-0.3,-0.3,0,0,0", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    blob = torch.load(out / "policy.pt", weights_only=True)
    assert blob["act_dim"] == 9 and blob["action"] == "provision-battery"
    assert blob["config"]["scenario"] == "jemas-3-genai"
    assert blob["config"]["gamma"] == 0.999 and blob["config"]["lr"] == 3e-5
    assert list(blob["config"]["days"]) == [0]      # train:1 of the family: its day 0
    assert list(blob["config"]["init_action"]) == [0, 0, 0, -0.3, -0.3, -0.3, 0, 0, 0]


def test_projection_of_local_fixed_recovers_its_action():
    """Projecting local-fixed's own schedule onto the action space gives back its routing,
    step levels, clocks and idle battery."""
    from optsched.env import BatchedCore, EnvConfig
    from optsched.learn.demos import project
    from optsched.policies import LocalFixed, rollout

    c = small_scenario(4)
    sched, _, _ = rollout(LocalFixed(), [c])[0]
    core = BatchedCore(DayBank.from_compiled([c]), 1, EnvConfig())
    core.reset(days=[0])
    want = LocalFixed().act(core, None)[0]
    K, I = c.K, c.I
    for t in range(c.T):
        if sched.x[:, :, t].sum() == 0:
            continue
        a = project(core, sched.x[:, :, t], sched.ch[:, t], sched.dis[:, t],
                    c.arrivals[:, t] + (sched.q[:, t - 1] if t else 0.0))
        served = sched.x[:, :, t].sum(axis=1) > 0
        np.testing.assert_allclose(a[:K * I].reshape(K, I)[served], want[:K * I].reshape(
            K, I)[served])
        home = (np.arange(I)[None, :] == c.home[:, None]) & served[:, None]
        np.testing.assert_allclose(a[K * I:2 * K * I].reshape(K, I)[home],
                                   want[K * I:2 * K * I].reshape(K, I)[home], atol=1e-9)
        np.testing.assert_allclose(a[-I:], 0.0)


def test_behaviour_cloning_fits_oracle_demonstrations():
    from optsched.learn.bc import behaviour_clone
    from optsched.learn.demos import oracle_demonstrations

    obs, act = oracle_demonstrations([small_scenario(6), small_scenario(7)])
    assert obs.shape[0] == act.shape[0] == 12 and np.abs(act).max() <= 1.0
    _, _, losses = behaviour_clone(obs, act, hidden=32, updates=300, batch=12)
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:20])


class Killed(Exception):
    """Stands for a kill: raised from the progress callback mid-run."""


def _kill_at(steps: int):
    def progress(s: int) -> None:
        if s >= steps:
            raise Killed

    return progress


def _rows(path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "wall_s"} for r in csv.DictReader(f)]


@pytest.mark.parametrize(("algo", "shaping"), [("sac", "potential"), ("ppo", "none")])
def test_a_killed_run_resumed_equals_a_straight_run(tmp_path, bank, algo, shaping):
    """Killed after its first checkpoint (96 steps) with metrics logged beyond it (to 160),
    then resumed to 192: the same weights, policy and metrics rows as one straight run,
    no row twice. (Before the run lifecycle, the rows from 96 to 160 were logged twice.)"""
    from optsched.learn.checkpoint import load_checkpoint

    def cfg(out):
        return small_cfg(out, algo=algo, shaping=shaping, seed=3, steps=192,
                         checkpoint_every=96, ppo_rollout=8)

    straight = train(cfg(tmp_path / "straight"), bank)
    with pytest.raises(Killed):
        train(cfg(tmp_path / "killed"), bank, progress=_kill_at(160))
    logged = _rows(tmp_path / "killed" / "metrics.csv")
    assert int(logged[-1]["steps"]) >= 144           # rows past the checkpoint were written
    resumed = train(cfg(tmp_path / "killed"), bank, resume=True)
    assert resumed.steps == straight.steps
    for (name, p), q in zip(straight.agent.state_dict().items(),
                            resumed.agent.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    a = _rows(tmp_path / "straight" / "metrics.csv")
    b = _rows(tmp_path / "killed" / "metrics.csv")
    steps = [int(r["steps"]) for r in b]
    assert a == b and steps == sorted(set(steps)) and steps[-1] == 192
    assert ("v_loss" in b[-1]) == (algo == "ppo") and ("q_loss" in b[-1]) == (algo == "sac")
    pa, pb = (load_checkpoint(tmp_path / d / "policy.pt", "policy")
              for d in ("straight", "killed"))
    assert all(torch.equal(pa["actor"][k], pb["actor"][k]) for k in pa["actor"])
    np.testing.assert_array_equal(pa["norm"]["mean"], pb["norm"]["mean"])


def test_resume_without_a_checkpoint_refuses_and_keeps_the_metrics(tmp_path, bank):
    from optsched.errors import ScenarioError

    (tmp_path / "metrics.csv").write_text("steps,wall_s,episode_utility\n24,0.1,5.0\n")
    with pytest.raises(ScenarioError, match="^--resume: no checkpoint"):
        train(small_cfg(tmp_path, steps=96), bank, resume=True)
    assert (tmp_path / "metrics.csv").read_text().endswith("24,0.1,5.0\n")


def test_a_fresh_run_does_not_replace_an_old_one_unless_asked(tmp_path, bank):
    from optsched.errors import ScenarioError

    train(small_cfg(tmp_path, steps=72), bank)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ScenarioError, match="^--out: already holds a run"):
        train(small_cfg(tmp_path, steps=96, seed=1), bank)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    train(small_cfg(tmp_path, steps=96, seed=1), bank, overwrite=True)
    assert _rows(tmp_path / "metrics.csv")[-1]["steps"] == "96"


def test_resume_refuses_changed_options_and_a_finished_run(tmp_path, bank):
    from optsched.errors import ScenarioError

    train(small_cfg(tmp_path, steps=72), bank)
    with pytest.raises(ScenarioError, match="^--resume: the checkpoint's run has seed=0"):
        train(small_cfg(tmp_path, steps=96, seed=1), bank, resume=True)
    with pytest.raises(ScenarioError, match="^--steps: the checkpoint is already at 72"):
        train(small_cfg(tmp_path, steps=72), bank, resume=True)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(steps=40, learning_starts=48), "^--steps: must exceed learning_starts \\(48\\)"),
    (dict(checkpoint_every=0), "^--checkpoint-every: must be an integer >= 1, got 0"),
    (dict(gamma=float("nan")), "^--gamma: must be a finite number"),
    (dict(algo="dqn"), "^--algo: must be one of sac, td3, ppo, bc"),
    (dict(algo="ppo", shaping="mlp"), "^--shaping: PPO trains"),
])
def test_train_config_refuses_bad_values(tmp_path, kw, message):
    from optsched.errors import ScenarioError

    with pytest.raises(ScenarioError, match=message):
        small_cfg(tmp_path, **kw)


def test_a_run_shorter_than_one_episode_is_refused_before_writing(tmp_path, bank):
    from optsched.errors import ScenarioError

    with pytest.raises(ScenarioError, match="^--steps: fewer than one episode \\(6 slots x 4"):
        train(small_cfg(tmp_path / "run", algo="ppo", steps=20), bank)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("action", "dim"), [("provision-battery", 9),
                                           ("provision-dispatch", 12)])
def test_provision_actions_train_and_their_policy_plans_in_the_rollout(tmp_path, action,
                                                                       dim):
    """A PPO run on a provisioning action space of jemas-3-genai writes a policy that
    `optsched evaluate` can play: through `Known` (the slot's arrivals unseen), its
    utility is the evaluator's (checked by `rollout`), and its first plan is the
    dispatch over the action it chose (per site battery, belief, headroom: 9 numbers;
    provision-dispatch adds the waiting value of each of the 3 deferrable classes)."""
    from optsched.env.dispatch import DispatchCore
    from optsched.env.known import Known
    from optsched.learn.policy import LearnedPolicy
    from optsched.policies import rollout

    bank = DayBank.from_family([40], source="jemas-3-genai")
    cfg = small_cfg(tmp_path, algo="ppo", action=action, ppo_rollout=16,
                    steps=2 * 288, num_envs=2, scenario="jemas-3-genai", days=(40,),
                    reward="settlement")
    train(cfg, bank)
    pol = LearnedPolicy(tmp_path / "policy.pt")
    assert pol.action == action and pol.provision_quantile == 0.9
    core = DispatchCore(bank, 1, waiting=action == "provision-dispatch", provision=True)
    obs = core.reset(days=[0])
    a = pol.act(core, obs)
    assert a.shape == (1, dim)
    x, _, _, gpus = pol.plan(Known(core, lag=1))
    x2, _, _, gpus2 = core.plan_from_action(core.known(), a, high=core.high())
    np.testing.assert_allclose(x, x2, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(gpus, gpus2)
    (_, ev, total), = rollout(pol, [bank.day(0)])
    assert np.isfinite(total) and total == pytest.approx(ev.utility)


def test_learned_picks_the_model_of_the_days_family():
    """jemas-3 keeps its model; a jemas-3-genai day gets its own; a day of no embedded
    family gets the model trained in its mode (provisioning on or off)."""
    import dataclasses

    from optsched.policies import SHIPPED_MODELS, shipped_model
    from optsched.scenario import compile_scenario, get_scenario

    j3 = compile_scenario(get_scenario("jemas-3", 4))
    g = compile_scenario(get_scenario("jemas-3-genai", 4))
    assert shipped_model(j3).name == "jemas3-scheduler.pt"
    assert shipped_model(g).name == "jemas3-genai-scheduler.pt"
    assert set(SHIPPED_MODELS) == {"jemas-3", "jemas-3-genai"}
    stranger = dataclasses.replace(g, price=g.price * 1.01)
    assert shipped_model(stranger) == SHIPPED_MODELS["jemas-3-genai"]
    assert shipped_model(dataclasses.replace(stranger, commit=False)) == \
        SHIPPED_MODELS["jemas-3"]


def test_init_action_starts_ppo_at_a_rules_action(tmp_path, bank):
    """PPO's actor can start from a known rule's action (the shipped jemas-3-genai model
    starts at belief level -0.6): its first deterministic actions centre on it, where a
    plain start centres on 0; other algorithms and values outside (-1, 1) are refused."""
    from optsched.errors import ScenarioError

    plain = make_trainer(small_cfg(tmp_path, algo="ppo", action="dispatch-battery"), bank)
    dim = plain.core.action_dim
    start = make_trainer(small_cfg(tmp_path, algo="ppo", action="dispatch-battery",
                                   init_action=(-0.6,) * dim), bank)
    obs = torch.randn(256, plain.core.obs_dim)
    with torch.no_grad():
        a0 = plain.agent.actor(obs, deterministic=True)[0].mean(0)
        a1 = start.agent.actor(obs, deterministic=True)[0].mean(0)
    assert (a1 - a0 < -0.35).all() and (a1 < -0.3).all()
    with pytest.raises(ScenarioError, match="init-action"):
        small_cfg(tmp_path, algo="sac", init_action=(0.1,))
    with pytest.raises(ScenarioError, match="init-action"):
        small_cfg(tmp_path, algo="ppo", init_action=(1.0,))
    with pytest.raises(ScenarioError, match="init-action"):
        make_trainer(small_cfg(tmp_path, algo="ppo", action="dispatch-battery",
                               init_action=(0.1,) * (dim + 1)), bank)


def test_a_provisioning_model_refuses_a_scenario_without_provisioning():
    """The shipped jemas-3-genai model commits GPUs before arrivals: on jemas-3 (no
    [provisioning]) it is refused by name instead of failing inside the dispatch."""

    from optsched.api import evaluate_policy
    from optsched.errors import ScenarioError
    from optsched.policies import SHIPPED_MODELS

    model = SHIPPED_MODELS["jemas-3-genai"]
    with pytest.raises(ScenarioError, match="--policy.*provisioning"):
        evaluate_policy("jemas-3", str(model), "4", oracle=False)


def test_a_day_the_model_cannot_play_is_refused_before_any_day_is_solved(monkeypatch):
    """multisite-4 (8 classes, 4 sites, no provisioning) gives 2 x 8 + 4 x 4 + 2 = 34
    observations, the jemas-3 model reads 2 x 6 + 4 x 3 + 2 = 26: `compare_runs` refuses
    it before the oracle or any roll runs (it used to solve the oracle first); the
    provisioning model is refused on a day without provisioning the same way."""
    import optsched.parallel
    from optsched.api import compare_runs
    from optsched.errors import ScenarioError
    from optsched.policies import SHIPPED_MODELS

    def no_work(*args, **kwargs):
        raise AssertionError("a day was solved or rolled before the refusal")

    monkeypatch.setattr(optsched.parallel, "fan_out", no_work)
    with pytest.raises(ScenarioError, match="expects 26 observations, this scenario gives 34"):
        compare_runs("multisite-4", ["learned"], [0], oracle=True)
    with pytest.raises(ScenarioError, match=r"needs a scenario with \[provisioning\] on"):
        compare_runs("jemas-3", [str(SHIPPED_MODELS["jemas-3-genai"])], [4], oracle=True)
