"""Agents that die, through the agent API: left out of the dicts (or done earlier in their episode) they are dead until
their env's next episode; nothing they report reaches the update; clear errors where an agent cannot be dead."""

import tempfile

import gymnasium as gym
import numpy as np
import pytest
import torch

from mappo_td.agent import MAPPO, Memory

NAMES = ["agent_0", "agent_1"]


def make_agent(names=NAMES, obs_shape=(3,), num_envs=2, rollouts=4, **cfg):
    cfg = {"rollouts": rollouts, "learning_epochs": 2, "mini_batches": 2, "seed": 0,
           "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0}, **cfg}
    return MAPPO(names, memories={a: Memory(rollouts, num_envs=num_envs) for a in names},
                 observation_spaces={a: gym.spaces.Box(-1, 1, obs_shape) for a in names},
                 action_spaces={a: gym.spaces.Discrete(6) for a in names}, device="cpu", cfg=cfg, num_envs=num_envs)


def flags(n, value=False, names=NAMES):
    return {a: torch.full((n, 1), value) for a in names}


def test_an_agent_done_in_one_env_is_dead_there_until_that_env_starts_a_new_episode():
    agent = make_agent()
    s = {a: torch.rand(2, 3) for a in NAMES}
    r = {a: torch.ones(2, 1) for a in NAMES}
    term = {"agent_0": torch.zeros(2, 1, dtype=torch.bool), "agent_1": torch.tensor([[True], [False]])}
    for t, terminated in enumerate([term, {**flags(2), "agent_0": torch.tensor([[True], [False]])}, flags(2)]):
        actions = agent.act(s, t, 9)[0]  # agent_1 dies in env 0 at step 0; agent_0 there at step 1: env 0 starts anew
        agent.record_transition(s, actions, r, s, terminated, flags(2), {}, t, 9)
    m = agent.memories["agent_1"]
    alive = m.get_tensor_by_name("mask")[:3, :, 0]
    assert alive.tolist() == [[True, True], [False, True], [True, True]]
    assert bool((m.get_tensor_by_name("observations")[1, 0] == 0).all()) and float(m.get_tensor_by_name("rewards")[1, 0]) == 0.0
    assert m.get_tensor_by_name("terminated")[:3, 0, 0].tolist() == [1, 1, 0]  # dead: done; back at the new episode


def test_dead_agents_left_out_of_every_dict_train_without_error():
    agent = make_agent(num_envs=1)
    full = {a: torch.rand(1, 3) for a in NAMES}
    agent.act(full, 0, 9)
    agent.record_transition(full, agent.act(full, 0, 9)[0], {a: torch.ones(1) for a in NAMES}, full,
                            {"agent_0": torch.tensor([False]), "agent_1": torch.tensor([True])}, flags(1), {}, 0, 4)
    one = {"agent_0": torch.rand(1, 3)}
    for t in range(1, 4):  # agent_1 has left every dict
        actions = agent.act(one, t, 4)[0]
        assert list(actions) == ["agent_0"]
        agent.record_transition(one, actions, {"agent_0": torch.ones(1)}, one, {"agent_0": torch.tensor([False])},
                                {"agent_0": torch.tensor([False])}, {}, t, 4)
    agent.post_interaction(3, 4)
    assert agent.learner.updates > 0
    assert agent.memories["agent_1"].get_tensor_by_name("mask")[:, 0, 0].tolist() == [1, 0, 0, 0]


def test_errors_where_an_agent_cannot_be_dead():
    agent = make_agent(num_envs=2)
    s = {a: torch.rand(2, 3) for a in NAMES}
    with pytest.raises(ValueError, match=r"act: states has no entry for agent\(s\) \['agent_1'\] at the first step of an episode "
                                         r"in env\(s\) \[0, 1\]: every agent starts an episode"):
        agent.act({"agent_0": s["agent_0"]}, 0, 9)
    with pytest.raises(ValueError, match=r"act: states: unknown agent name\(s\) \['agent_7'\]; valid names: \['agent_0', 'agent_1'\]"):
        agent.act({**s, "agent_7": s["agent_0"]}, 0, 9)
    actions = agent.act(s, 0, 9)[0]
    r = {a: torch.zeros(2, 1) for a in NAMES}
    with pytest.raises(ValueError, match=r"record_transition: next_states\['agent_1'\] is missing though the agent is alive at the step "
                                         r"and neither terminated nor truncated at env\(s\) \[1\]"):
        agent.record_transition(s, actions, r, {"agent_0": s["agent_0"]}, {**flags(2), "agent_1": torch.tensor([[True], [False]])},
                                flags(2), {}, 0, 9)
    with pytest.raises(ValueError, match=r"record_transition: rewards: no entry for agent\(s\) \['agent_1'\]; an agent given in "
                                         r"next_states needs its reward and done flags"):
        agent.record_transition(s, actions, {"agent_0": r["agent_0"]}, s, flags(2), flags(2), {}, 0, 9)
    with pytest.raises(ValueError, match=r"record_transition: actions: no entry for agent\(s\) \['agent_1'\]; an agent given in "
                                         r"states needs its action"):
        agent.record_transition(s, {"agent_0": actions["agent_0"]}, r, s, flags(2), flags(2), {}, 0, 9)
    assert agent.memories["agent_0"].memory_index == 0  # nothing was stored
    agent.record_transition(s, actions, r, {"agent_0": s["agent_0"]}, flags(2, True), flags(2), {}, 0, 9)  # done: may leave
    assert agent.memories["agent_0"].memory_index == 1


def kaz_envs(num_envs):
    kaz = pytest.importorskip("pettingzoo.butterfly.knights_archers_zombies_v11")
    return [kaz.parallel_env(spawn_delay=2, max_zombies=10, line_death=True, max_cycles=120) for _ in range(num_envs)]


def per_agent(per_env, names, fill=None, garbage=None):
    """``{agent: [num_envs, ...]}`` of the agents present in some env (``fill``, else zeros, where absent); with ``garbage``,
    every agent, and where absent its entry is ``garbage(shape)``."""
    out = {}
    for a in names:
        there = [a in d for d in per_env]
        if not any(there) and garbage is None:
            continue
        like = np.asarray(next((d[a] for d in per_env if a in d), fill))
        rows = [np.asarray(d[a], dtype=like.dtype) if a in d else
                (garbage(like.shape) if garbage else np.asarray(fill, like.dtype) if fill is not None else np.zeros_like(like)) for d in per_env]
        out[a] = torch.as_tensor(np.stack(rows)).reshape(len(per_env), *like.shape)
    return out


def run_kaz(num_envs, steps=240, seed=0):
    """Two agents in lockstep on one KAZ trajectory: ``clean`` is given what a parallel env gives (dead agents left out, zeros
    for envs where they are gone), ``noisy`` the same with every dead entry present and garbage (NaN observations, random
    rewards, actions, done flags). Returns both, and how many (step, env, agent) entries were dead."""
    envs = kaz_envs(num_envs)
    names = envs[0].possible_agents
    space = envs[0].observation_space(names[0])
    blank = np.zeros(space.shape, dtype=space.dtype)
    rng = np.random.default_rng(seed)
    cfg = {"rollouts": 40, "learning_epochs": 2, "mini_batches": 2, "seed": 0, "entropy_loss_scale": 0.01,
           "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0}}
    clean, noisy = (MAPPO(names, observation_spaces={a: space for a in names}, action_spaces={a: envs[0].action_space(a) for a in names},
                          device="cpu", cfg=cfg, num_envs=num_envs) for _ in range(2))
    junk = {"obs": lambda s: np.where(rng.random(s) < 0.1, np.nan, rng.normal(size=s) * 50), "reward": lambda s: rng.normal(size=s) * 100,
            "flag": lambda s: rng.random(s) < 0.5, "action": lambda s: rng.integers(0, 6, size=s)}
    obs, dead = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)], 0
    for t in range(steps):
        dead += sum(a not in o for o in obs for a in names)
        states, states_noisy = per_agent(obs, names, blank), per_agent(obs, names, blank, garbage=junk["obs"])
        torch.manual_seed(t)
        actions = clean.act(states, t, steps)[0]
        torch.manual_seed(t)
        actions_noisy = noisy.act(states_noisy, t, steps)[0]
        for i, o in enumerate(obs):
            for a in o:  # the alive agents chose alike: the dead entries changed nothing they saw
                assert int(actions[a][i]) == int(actions_noisy[a][i])
        results = [env.step({a: int(actions[a][i]) for a in env.agents}) for i, env in enumerate(envs)]
        nxt, rew, term, trunc = ([r[k] for r in results] for k in range(4))
        for agent, variant in ((clean, None), (noisy, junk)):
            g = (lambda kind, v=variant: v[kind] if v else None)  # noqa: E731
            # what the env's dicts say: an agent missing from them is done (the dying ones, with line_death, get no flag)
            r = per_agent([{a: [float(v)] for a, v in d.items()} for d in rew], names, [0.0], g("reward"))
            done = [per_agent([{a: [bool(v)] for a, v in d.items()} for d in ds], names, [True], g("flag")) for ds in (term, trunc)]
            s = states if variant is None else states_noisy
            acts = actions if variant is None else {a: torch.where(torch.tensor([[a in o] for o in obs]), actions_noisy[a],
                                                                   torch.as_tensor(junk["action"]((num_envs, 1)))) for a in s}
            agent.record_transition(s, acts, r, per_agent(nxt, names, blank, garbage=g("obs")), *done, {}, t, steps)
            torch.manual_seed(10_000 + t)
            agent.post_interaction(t, steps)
        for i, env in enumerate(envs):
            if not env.agents:  # every agent done: a new episode, every agent back
                nxt[i] = env.reset()[0]
        obs = nxt
    return clean, noisy, dead


@pytest.mark.parametrize("num_envs", [1, 2])
def test_knights_archers_zombies_agents_die_and_what_the_dead_report_changes_no_parameter(num_envs):
    """A plain parallel loop over KAZ (vector observations): archers and knights die (line_death), nothing raises, and an
    agent given every dead entry as garbage ends with exactly the parameters of one given what the env gives."""
    clean, noisy, dead = run_kaz(num_envs)
    assert dead > 50, "no agent died: the test would prove nothing"
    assert clean.learner.updates == noisy.learner.updates > 0
    for g, h in zip(clean.learner.groups, noisy.learner.groups):
        for p, q in zip([*g.policy.parameters(), *g.critic.parameters()], [*h.policy.parameters(), *h.critic.parameters()]):
            assert bool(torch.isfinite(p).all())
            assert torch.equal(p, q)


def test_a_large_wrong_value_is_shown_in_part():
    agent = make_agent(obs_shape=(4, 5), num_envs=1)
    states = {a: torch.zeros(1, 4, 5) for a in NAMES}
    states["agent_1"][0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"states\['agent_1'\] has NaN or inf at env\(s\) \[0\] \(got \[nan, 0\.0, 0\.0, 0\.0, 0\.0, 0\.0, "
                                         r"0\.0, 0\.0, \.\.\. \(20 values, shape \(4, 5\)\)\]\)"):
        agent.act(states, 0, 9)
