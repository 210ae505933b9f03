"""The skrl-style agent API: parity with the trainer, skrl's config, spaces, clear errors, and a plain PettingZoo loop."""

import tempfile

import gymnasium as gym
import pytest
import torch

from mappo_td.agent import MAPPO, MAPPO_DEFAULT_CONFIG, Memory
from mappo_td.train import update
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config

NAMES = ["agent_0", "agent_1", "agent_2"]


def make_agent(action_space=None, observation_space=None, num_envs=2, cfg=None, names=NAMES, **kw):
    cfg = {"rollouts": 4, "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0}, **(cfg or {})}
    return MAPPO(names, observation_spaces={a: observation_space or gym.spaces.Box(-1, 1, (5,)) for a in names},
                 action_spaces={a: action_space or gym.spaces.Discrete(4) for a in names}, device="cpu", cfg=cfg,
                 num_envs=num_envs, **kw)


@pytest.mark.parametrize("body", ["mlp", "gru"])
def test_agent_and_trainer_end_with_identical_parameters_from_identical_data(body):
    """The trainer's rollout fed to the agent step by step (act on its observations, then record_transition with its
    actions and log-probabilities): the same update. With body=gru, episodes of 3 steps end inside the rollout, so the
    agent's hidden states must reset where the trainer's do, and the chunks of 4 steps start mid-episode."""
    pytest.importorskip("mpe2")
    from mpe2 import simple_spread_v3

    model = {"hidden_sizes": [16], "body": body, "rnn_hidden_size": 8}
    cfg = small_config(rollouts=8, data_chunk_length=4, model=model,
                       env={"backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": 2, "num_workers": 1,
                            "max_steps": 3 if body == "gru" else 25, "continuous_actions": False, "scenario_kwargs": {}})
    trainer = MAPPOTrainer(cfg)
    raw = simple_spread_v3.parallel_env(continuous_actions=False)
    memories = {a: Memory(memory_size=8, num_envs=2) for a in NAMES} if body == "gru" else None
    agent = MAPPO(raw.possible_agents, observation_spaces={a: raw.observation_space(a) for a in raw.possible_agents},
                  action_spaces={a: raw.action_space(a) for a in raw.possible_agents}, device="cpu", num_envs=2,
                  cfg={**cfg.to_dict()["mappo"], "model": cfg.to_dict()["model"]}, memories=memories)
    assert agent.group_map == trainer.group_map == {"agent": NAMES}
    path = trainer.save(tempfile.mkdtemp() + "/agent_0.pt")
    agent.load(path)
    data = trainer.collect()  # [2, 8]
    g = "agent"
    for t in range(8):
        step = data[:, t]
        per = lambda key, td=step: {a: td[key][:, i] for i, a in enumerate(NAMES)}  # noqa: E731
        agent.act(per((g, "observation")), t, 8)  # the hidden states of a GRU come from act
        agent.record_transition(per((g, "observation")), per((g, "action")), per(("next", g, "reward")),
                                per(("next", g, "observation")), per(("next", g, "terminated")), per(("next", g, "truncated")),
                                {}, t, 8, log_prob=per((g, "action_log_prob")))
    torch.manual_seed(7)
    agent.post_interaction(7, 8)
    torch.manual_seed(7)
    update(trainer.learner, data)
    a, b = agent.learner.groups[0], trainer.groups[0]
    for p, q in zip([*a.policy.parameters(), *a.critic.parameters()], [*b.policy.parameters(), *b.critic.parameters()]):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    assert agent.learner.updates == trainer.updates > 0
    if body == "gru":  # the rollout held resets; the agent stored the trainer's own states (zeros at each episode's start)
        assert bool(data["is_init"][:, 1:].any())
        torch.testing.assert_close(memories["agent_1"].get_tensor_by_name("env_is_init"), data["is_init"].transpose(0, 1))
        for key, name in [((g, "rnn_state"), "rnn_state"), ((g, "rnn_state_critic"), "rnn_state_critic"),
                          (("next", g, "rnn_state_critic"), "next_rnn_state_critic")]:
            expected = data[key][:, :, 1].reshape(2, 8, -1).transpose(0, 1)  # agent_1's, [memory_size, num_envs, layers * H]
            torch.testing.assert_close(memories["agent_1"].get_tensor_by_name(name), expected, atol=1e-6, rtol=0)


def test_skrl_default_config_verbatim_and_per_agent_dicts():
    cfg = {**MAPPO_DEFAULT_CONFIG, "discount_factor": {"agent_0": 0.9, "agent_1": 0.95, "agent_2": 0.99}, "rollouts": 4,
           "experiment": {**MAPPO_DEFAULT_CONFIG["experiment"], "directory": tempfile.mkdtemp()}}
    agent = make_agent(cfg=cfg)
    torch.testing.assert_close(agent.learner.groups[0].gae.gamma.flatten(), torch.tensor([0.9, 0.95, 0.99]))
    with pytest.raises(ValueError, match=r"unknown agent/group name\(s\) \['agent_9'\]"):
        make_agent(cfg={"learning_rate": {"agent_9": 1e-3}})


def test_unknown_or_unsupported_models_and_memories_are_clear_errors():
    with pytest.raises(ValueError, match=r"models: unknown agent name\(s\) \['bob'\]; valid names: \['agent_0', 'agent_1', 'agent_2'\]"):
        make_agent(models={"bob": {"policy": None, "critic": None}})
    with pytest.raises(ValueError, match=r"action_spaces: no entry for agent\(s\) \['agent_2'\]"):
        MAPPO(NAMES, observation_spaces={a: (5,) for a in NAMES}, action_spaces={a: gym.spaces.Discrete(2) for a in NAMES[:2]})


@pytest.mark.parametrize("space", [gym.spaces.Discrete(4), gym.spaces.MultiDiscrete([2, 3]), gym.spaces.Box(-2.0, 0.5, (2,))])
def test_act_returns_actions_in_each_space_with_the_policys_log_probs(space):
    agent = make_agent(action_space=space, num_envs=16)
    states = {a: torch.randn(16, 5).clamp(-1, 1) for a in NAMES}
    actions, log_prob, _ = agent.act(states, timestep=0, timesteps=10)
    group = agent.learner.groups[0]
    td = agent.learner.env.observation_spec.zero()
    td["agent", "observation"] = torch.stack([states[a] for a in NAMES], 1)
    stacked = torch.stack([actions[a].squeeze(-1) if isinstance(space, gym.spaces.Discrete) else actions[a] for a in NAMES], 1)
    expected = group.policy.get_dist(td).log_prob(stacked)
    for i, a in enumerate(NAMES):
        assert all(space.contains(x) for x in actions[a].squeeze(-1).numpy()) if isinstance(space, gym.spaces.Discrete) \
            else all(space.contains(x.astype(space.dtype)) for x in actions[a].numpy())
        torch.testing.assert_close(log_prob[a].squeeze(-1), expected[:, i])


def test_act_samples_from_the_policy_as_the_trainers_collector_does():
    """act returned the policy's mode in every env (TorchRL's default interaction type): no exploration at all."""
    torch.manual_seed(0)
    agent = make_agent(num_envs=1024)
    states = {a: torch.zeros(1024, 5) for a in NAMES}
    actions, _, _ = agent.act(states, timestep=0, timesteps=10)
    td = agent.learner.env.observation_spec.zero()
    probs = agent.learner.groups[0].policy.get_dist(td).probs[0, 0]
    freq = torch.bincount(actions["agent_0"].flatten(), minlength=4) / 1024
    assert int((freq > 0).sum()) == 4
    torch.testing.assert_close(freq, probs, atol=0.06, rtol=0)
    box = make_agent(action_space=gym.spaces.Box(-1.0, 1.0, (2,)), num_envs=256)
    assert float(box.act({a: torch.zeros(256, 5) for a in NAMES}, 0, 10)[0]["agent_0"].std(0).min()) > 0.1


def test_record_transition_errors():
    agent = make_agent()
    s = {a: torch.zeros(2, 5) for a in NAMES}
    actions, _, _ = agent.act(s, 0, 10)
    r = {a: torch.zeros(2, 1) for a in NAMES}
    f = {a: torch.zeros(2, 1, dtype=torch.bool) for a in NAMES}
    with pytest.raises(ValueError, match=r"rewards\['agent_1'\] has shape \(3, 1\); expected \(2,\) or \(2, 1\) \(num_envs=2"):
        agent.record_transition(s, actions, {**r, "agent_1": torch.zeros(3, 1)}, s, f, f, {}, 0, 10)
    with pytest.raises(ValueError, match=r"next_states|states: no entry for agent\(s\) \['agent_2'\]"):
        agent.record_transition(s, actions, r, {a: s[a] for a in NAMES[:2]}, f, f, {}, 0, 10)


def test_a_plain_pettingzoo_loop_learns_simple_spread():
    """skrl's loop shape with PettingZoo's own parallel API (no TorchRL env): the mean episode reward rises. (It rose with 3
    agents only while act took the policy's mode instead of sampling: from a poor deterministic start.)"""
    pytest.importorskip("mpe2")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "skrl_style_loop.py"
    spec = importlib.util.spec_from_file_location("skrl_style_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    returns = module.main(timesteps=3200, num_envs=8, n_agents=1, seed=0)  # 1024 episodes: one agent learns to reach its landmark
    first, last = sum(returns[:100]) / 100, sum(returns[-100:]) / 100
    assert last > first + 3.0, f"mean episode reward did not rise clearly: first {first:.2f}, last {last:.2f}"


def test_a_plain_pettingzoo_loop_trains_on_simple_spread_and_logs_its_episodes(capsys):
    """skrl's loop shape with PettingZoo's own parallel API (no TorchRL env): every update runs, and the logged mean
    episode reward is the loop's own count. (Learning through this loop: the test above, and the cue task in
    tests/agent/test_recurrent.py.)"""
    pytest.importorskip("mpe2")
    import csv
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "skrl_style_loop.py"
    spec = importlib.util.spec_from_file_location("skrl_style_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    returns = module.main(timesteps=250, num_envs=4, seed=0)
    run = Path(capsys.readouterr().out.splitlines()[-1].split(": ", 1)[1])
    assert len(returns) == 4 * 10 and all(-200 < r < 0 for r in returns)  # 25-step episodes, MPE's negative rewards
    row, = csv.DictReader(open(run / "progress.csv"))  # one row, at the end (write_interval 1000)
    assert int(row["timestep"]) == 250 and int(float(row["episode/count"])) == 40
    assert float(row["reward/episode_mean"]) == pytest.approx(sum(returns) / 40, abs=1e-4)
    assert float(row["agent/kl_approx"]) > 0  # 10 updates moved the policy


def _mlp(n_in, n_out):
    return torch.nn.Sequential(torch.nn.Linear(n_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, n_out))


def _feed(agent, steps, seed=0):
    """``steps`` random transitions of every env, through act and record_transition, then post_interaction."""
    g = torch.Generator().manual_seed(seed)
    for t in range(steps):
        s = {a: torch.rand(agent.num_envs, 5, generator=g) * 2 - 1 for a in agent.possible_agents}
        actions, _, _ = agent.act(s, t, steps)
        r = {a: torch.rand(agent.num_envs, 1, generator=g) for a in agent.possible_agents}
        f = {a: torch.zeros(agent.num_envs, 1, dtype=torch.bool) for a in agent.possible_agents}
        agent.record_transition(s, actions, r, s, f, f, {}, t, steps)
        agent.post_interaction(t, steps)


def test_user_models_act_with_their_own_logits_and_are_trained_in_place():
    sizes = __import__("mappo_td.agent", fromlist=["model_sizes"]).model_sizes(
        {a: gym.spaces.Box(-1, 1, (5,)) for a in NAMES}, {a: gym.spaces.Discrete(4) for a in NAMES})
    assert sizes["agent_0"] == {"policy": (5, 4), "critic": (15, 1)}
    shared, own = _mlp(5, 4), _mlp(5, 4)  # agent_0 and agent_2 share their instances; agent_1 has its own
    critic, own_critic = _mlp(*sizes["agent_0"]["critic"]), _mlp(*sizes["agent_1"]["critic"])
    models = {"agent_0": {"policy": shared, "critic": critic}, "agent_1": {"policy": own, "critic": own_critic},
              "agent_2": {"policy": shared, "critic": critic}}
    agent = make_agent(models=models, num_envs=6)
    assert agent.group_map == {"agent": ["agent_0", "agent_2"], "agent_1": ["agent_1"]}
    states = {a: torch.rand(6, 5) * 2 - 1 for a in NAMES}
    actions, log_prob, _ = agent.act(states, 0, 10)
    for a in NAMES:  # the log-probs are those of the user's own logits
        net = shared if a != "agent_1" else own
        expected = torch.distributions.Categorical(logits=net(states[a])).log_prob(actions[a].squeeze(-1))
        torch.testing.assert_close(log_prob[a].squeeze(-1), expected)
    before = [p.detach().clone() for m in (shared, own, critic, own_critic) for p in m.parameters()]
    _feed(agent, 4)
    assert agent.learner.updates > 0
    after = [p.detach() for m in (shared, own, critic, own_critic) for p in m.parameters()]
    assert all(not torch.equal(b, a) for b, a in zip(before, after))  # every user network moved, in place


def test_a_policy_alone_acts_but_training_without_a_critic_is_a_clear_error():
    agent = make_agent(models={a: {"policy": _mlp(5, 4)} for a in NAMES}, num_envs=2)
    actions, _, _ = agent.act({a: torch.zeros(2, 5) for a in NAMES}, 0, 10)
    assert set(actions) == set(NAMES)
    with pytest.raises(ValueError, match=r"no 'critic' model for agent\(s\) \['agent_0'\]: MAPPO's update needs one"):
        _feed(agent, 4)
    with pytest.raises(ValueError, match=r"models\['agent_0'\] has no 'policy'"):
        make_agent(models={a: {"critic": _mlp(15, 1)} for a in NAMES})
    with pytest.raises(ValueError, match=r"models: no entry for agent\(s\) \['agent_2'\]"):
        make_agent(models={a: {"policy": _mlp(5, 4)} for a in NAMES[:2]})
    with pytest.raises(TypeError, match=r"models\['agent_0'\]\['policy'\] must be a torch.nn.Module"):
        make_agent(models={a: {"policy": "mlp"} for a in NAMES})


def _trained(memories_for, seed=1, cfg=None):
    agent = make_agent(num_envs=3, memories=memories_for(3) if memories_for else None, cfg=cfg)
    torch.manual_seed(seed)
    _feed(agent, 8)  # two updates of 4 steps
    assert agent.learner.updates > 0
    return [p.detach() for g in agent.learner.groups for p in [*g.policy.parameters(), *g.critic.parameters()]]


@pytest.mark.parametrize("kind", ["mappo_td", "skrl"])
def test_per_agent_memories_train_exactly_as_the_internal_buffer(kind):
    """The rollout written to one memory per agent and read back gives the same update as the internal buffer; a memory
    twice the rollout exercises the circular index (the second rollout wraps it)."""
    from mappo_td.agent import Memory

    if kind == "skrl":
        RandomMemory = pytest.importorskip("skrl.memories.torch").RandomMemory  # noqa: N806
        make = lambda n: {a: RandomMemory(memory_size=8, num_envs=n, device="cpu") for a in NAMES}  # noqa: E731
    else:
        make = lambda n: {a: Memory(memory_size=8, num_envs=n) for a in NAMES}  # noqa: E731
    for p, q in zip(_trained(make), _trained(None)):
        torch.testing.assert_close(p, q, atol=0, rtol=0)
    memories = make(3)
    agent = make_agent(num_envs=3, memories=memories)
    _feed(agent, 2)
    assert memories["agent_1"].get_tensor_by_name("observations").shape == (8, 3, 5)
    assert {"actions", "log_prob", "rewards", "terminated", "truncated", "next_observations"} <= set(memories["agent_1"].tensors)


def test_memories_errors():
    from mappo_td.agent import Memory

    with pytest.raises(ValueError, match=r"memories: unknown agent name\(s\) \['bob'\]; valid names: \['agent_0', 'agent_1', 'agent_2'\]"):
        make_agent(memories={**{a: Memory(4, 2) for a in NAMES}, "bob": Memory(4, 2)})
    with pytest.raises(ValueError, match=r"memories: no entry for agent\(s\) \['agent_2'\]; give every agent of"):
        make_agent(memories={"agent_0": Memory(4, 2), "agent_1": Memory(4, 2)})
    with pytest.raises(ValueError, match=r"holds 2 steps, fewer than rollouts=4: make it Memory\(memory_size=4, num_envs=2\)"):
        make_agent(memories={a: Memory(2, 2) for a in NAMES})
    with pytest.raises(ValueError, match=r"is for 5 envs, the agent steps 2"):
        make_agent(memories={a: Memory(4, 5) for a in NAMES})
    with pytest.raises(TypeError, match=r"lacks \['create_tensor', 'add_samples', 'get_tensor_by_name'\]"):
        make_agent(memories={a: [] for a in NAMES})


def test_fast_compile_through_the_agent_gives_the_plain_parameters():
    for p, q in zip(_trained(None, cfg={"fast": "compile"}), _trained(None)):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_agent_logs_at_intervals_and_its_checkpoint_restores_another_agent(tmp_path):
    import csv

    agent = make_agent(num_envs=2, cfg={"experiment": {"directory": str(tmp_path), "experiment_name": "a", "write_interval": 4,
                                                       "checkpoint_interval": 0}})
    agent.init()
    _feed(agent, 8)
    rows = list(csv.DictReader((agent.logger.run_dir / "progress.csv").open()))
    assert [int(r["timestep"]) for r in rows] == [4, 8]
    path = agent.write_checkpoint(8, 8)
    assert path.name == "agent_8.pt" and path.parent.parent == agent.logger.run_dir
    other = make_agent(num_envs=2)
    other.load(path)
    assert other.learner.updates == agent.learner.updates > 0
    for p, q in zip([p for g in other.learner.groups for p in g.policy.parameters()], [p for g in agent.learner.groups for p in g.policy.parameters()]):
        assert torch.equal(p, q)


def test_agents_with_different_spaces_form_groups_that_act_in_their_own_spaces_and_train():
    obs = {"speaker_0": gym.spaces.Box(-1, 1, (3,)), "listener_0": gym.spaces.Box(-1, 1, (11,))}
    act = {"speaker_0": gym.spaces.Discrete(3), "listener_0": gym.spaces.MultiDiscrete([2, 4])}
    names = list(obs)
    agent = MAPPO(names, observation_spaces=obs, action_spaces=act, device="cpu", num_envs=4,
                  cfg={"rollouts": 4, "experiment": {"directory": tempfile.mkdtemp(), "checkpoint_interval": 0}})
    assert agent.group_map == {"speaker": ["speaker_0"], "listener": ["listener_0"]}
    for g in agent.learner.groups:  # each group's critic reads both groups' observations
        assert set(g.critic.in_keys) == {("speaker", "observation"), ("listener", "observation")}
    before = [p.detach().clone() for g in agent.learner.groups for p in g.policy.parameters()]
    for t in range(4):
        states = {a: torch.rand(4, *obs[a].shape) * 2 - 1 for a in names}
        actions, _, _ = agent.act(states, t, 4)
        assert actions["speaker_0"].shape == (4, 1) and actions["listener_0"].shape == (4, 2)
        assert all(act[a].contains(x.numpy().astype(act[a].dtype).reshape(act[a].shape)) for a in names for x in actions[a])
        r = {a: torch.rand(4) for a in names}
        f = {a: torch.zeros(4, dtype=torch.bool) for a in names}
        agent.record_transition(states, actions, r, states, f, f, {}, t, 4)
        agent.post_interaction(t, 4)
    after = [p.detach() for g in agent.learner.groups for p in g.policy.parameters()]
    assert agent.learner.updates > 0 and any(not torch.equal(b, a) for b, a in zip(before, after))


def test_the_agent_runs_the_trainers_iteration_schedule_and_leaves_its_config_alone(tmp_path):
    """Rows and checkpoints at the same timesteps as the trainer's (intervals crossed, and the end), keep_checkpoints
    honoured, the speed measured, and ``cfg.timesteps`` never rewritten by post_interaction's ``timesteps``."""
    import csv

    x = {"write_interval": 8, "checkpoint_interval": 8, "keep_checkpoints": 1}
    agent = make_agent(num_envs=2, cfg={"experiment": {"directory": str(tmp_path), "experiment_name": "agent", **x}})
    _feed(agent, 12)  # three rollouts of 4 steps; post_interaction's timesteps: 12
    trainer = MAPPOTrainer(small_config(timesteps=12, rollouts=4, env={"num_envs": 2, "max_steps": 4},
                                        experiment={"directory": str(tmp_path), "experiment_name": "trainer", **x}))
    trainer.train()
    assert agent.cfg.timesteps == make_agent().cfg.timesteps == 4000  # the config's own, untouched
    for run in ("agent", "trainer"):
        rows = list(csv.DictReader((tmp_path / run / "progress.csv").open()))
        assert [int(r["timestep"]) for r in rows] == [8, 12], run
        assert all(float(r["frames_per_s"]) > 0 for r in rows), run
        assert sorted(p.name for p in (tmp_path / run / "checkpoints").glob("agent_*.pt")) == ["agent_12.pt"], run
