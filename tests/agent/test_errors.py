"""The agent API refuses wrong data at the call that gives it, naming the agent, the input, what was expected and what
was given, and stores nothing from a refused call."""

import csv

import gymnasium as gym
import pytest
import torch

from mappo_td.agent import MAPPO, Memory

NAMES = ["agent_0", "agent_1", "agent_2"]
N = 2  # envs


def make_agent(tmp_path, action_space=None, names=NAMES, memories=True, cfg=None, **kw):
    cfg = {"rollouts": 4, "experiment": {"directory": str(tmp_path), "checkpoint_interval": 0}, **(cfg or {})}
    mems = {a: Memory(memory_size=4, num_envs=N) for a in names} if memories is True else memories
    return MAPPO(names, memories=mems, observation_spaces={a: gym.spaces.Box(-1, 1, (5,)) for a in names},
                 action_spaces={a: action_space or gym.spaces.Discrete(4) for a in names}, device="cpu", cfg=cfg, num_envs=N, **kw)


def step_inputs(agent, **changes):
    """A valid transition (actions from act), with ``changes`` ({input: {agent: value}}) applied to it."""
    s = {a: torch.rand(N, 5) * 2 - 1 for a in NAMES}
    actions, _, _ = agent.act(s, 0, 10)
    inputs = {"states": s, "actions": actions, "rewards": {a: torch.ones(N, 1) for a in NAMES}, "next_states": dict(s),
              "terminated": {a: torch.zeros(N, 1, dtype=torch.bool) for a in NAMES},
              "truncated": {a: torch.zeros(N, 1, dtype=torch.bool) for a in NAMES}}
    for key, per_agent in changes.items():
        inputs[key] = {**inputs[key], **per_agent}
    return inputs


def record(agent, inputs, **kw):
    agent.record_transition(inputs["states"], inputs["actions"], inputs["rewards"], inputs["next_states"], inputs["terminated"],
                            inputs["truncated"], {}, 0, 10, **kw)


def stored(agent):
    """Everything the agent's memories hold, and their indices."""
    return {a: (m.memory_index, m.filled, {k: t.clone() for k, t in m.tensors.items()}) for a, m in agent.memories.items()}


def assert_refused(agent, inputs, match, **kw):
    """``record_transition(inputs)`` raises ValueError matching ``match`` and leaves the memories as they were."""
    before = stored(agent)
    with pytest.raises(ValueError, match=match):
        record(agent, inputs, **kw)
    after = stored(agent)
    assert [(i, f) for i, f, _ in after.values()] == [(i, f) for i, f, _ in before.values()]
    for a in before:
        assert before[a][2].keys() == after[a][2].keys()
        assert all(torch.equal(before[a][2][k], after[a][2][k]) for k in before[a][2])


def test_a_policy_whose_output_does_not_fit_the_action_space_is_refused_at_construction(tmp_path):
    """``nn.Linear(5, 5)`` for Discrete(3) used to sample action 3 or 4 silently."""
    with pytest.raises(ValueError, match=r"models\['agent_0'\]\['policy'\] returns shape \(2, 1, 5\) for an input \(2, 1, 5\); "
                                         r"expected \(2, 1, 3\): n_out=3 for action space Discrete\(3\) .*model_sizes"):
        make_agent(tmp_path, gym.spaces.Discrete(3), models={a: {"policy": torch.nn.Linear(5, 5)} for a in NAMES})
    with pytest.raises(ValueError, match=r"models\['agent_0'\]\['policy'\] fails on an input \(2, 1, 5\) .*expected n_in=5"):
        make_agent(tmp_path, gym.spaces.Discrete(3), models={a: {"policy": torch.nn.Linear(6, 3)} for a in NAMES})
    with pytest.raises(ValueError, match=r"models\['agent_0'\]\['critic'\] returns shape \(2, 1, 2\) .*expected \(2, 1, 1\)"):
        make_agent(tmp_path, models={a: {"policy": torch.nn.Linear(5, 4), "critic": torch.nn.Linear(15, 2)} for a in NAMES})
    assert list(tmp_path.iterdir()) == []  # no run folder
    net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Dropout(0.5))
    make_agent(tmp_path, models={a: {"policy": net} for a in NAMES})
    assert net.training and net[1].training  # the probe's eval mode is undone


def test_one_memory_shared_by_two_agents_is_refused_at_construction(tmp_path):
    shared = Memory(memory_size=4, num_envs=N)
    with pytest.raises(ValueError, match=r"memories\['agent_0'\] and memories\['agent_2'\] are the same instance: every agent "
                                         r"needs a memory of its own"):
        make_agent(tmp_path, memories={"agent_0": shared, "agent_1": Memory(4, N), "agent_2": shared})


def test_duplicate_agent_names_are_refused_at_construction(tmp_path):
    with pytest.raises(ValueError, match=r"possible_agents names \['agent_1'\] more than once"):
        make_agent(tmp_path, names=["agent_0", "agent_1", "agent_1"], memories=None)


@pytest.mark.parametrize("key,value", [("rewards", float("nan")), ("rewards", float("inf")), ("states", float("nan")),
                                       ("next_states", -float("inf"))])
def test_nan_or_inf_rewards_and_observations_are_refused_without_init(tmp_path, key, value):
    agent = make_agent(tmp_path)  # no init()
    record(agent, step_inputs(agent))
    bad = step_inputs(agent)[key]["agent_1"].clone()
    bad[1] = value
    assert_refused(agent, step_inputs(agent, **{key: {"agent_1": bad}}),
                   rf"record_transition: {key}\['agent_1'\] has NaN or inf at env\(s\) \[1\] .*expected finite values")
    record(agent, step_inputs(agent))  # the refused reward did not reach the episode's return
    assert torch.equal(agent.memories["agent_1"].get_tensor_by_name("next_episode_reward")[1], torch.full((N, 1), 2.0))


def test_nan_observations_are_refused_by_act(tmp_path):
    agent = make_agent(tmp_path)
    with pytest.raises(ValueError, match=r"act: states\['agent_2'\] has NaN or inf at env\(s\) \[0, 1\]"):
        agent.act({**{a: torch.zeros(N, 5) for a in NAMES}, "agent_2": torch.full((N, 5), float("nan"))}, 0, 10)


@pytest.mark.parametrize("space,action,match", [
    (gym.spaces.Discrete(4), torch.tensor([[1.5], [2.0]]), r"actions\['agent_0'\] has a non-integer value at env\(s\) \[0\] "
                                                            r"\(got 1.5\); expected Discrete\(4\): integers 0..3: give integers"),
    (gym.spaces.MultiDiscrete([2, 3]), torch.tensor([[0.0, 1.0], [1.0, 0.25]]),
     r"actions\['agent_0'\] has a non-integer value at env\(s\) \[1\] \(got \[1.0, 0.25\]\); expected MultiDiscrete"),
])
def test_non_integer_actions_for_discrete_spaces_are_refused(tmp_path, space, action, match):
    agent = make_agent(tmp_path, space)
    assert_refused(agent, step_inputs(agent, actions={"agent_0": action}), "record_transition: " + match)


def test_integer_valued_float_actions_are_accepted_as_those_integers(tmp_path):
    agent = make_agent(tmp_path)
    record(agent, step_inputs(agent, actions={"agent_0": torch.tensor([[3.0], [0.0]])}))
    assert agent.memories["agent_0"].get_tensor_by_name("actions")[0, :, 0].tolist() == [3, 0]


@pytest.mark.parametrize("space,key,value,match", [
    (gym.spaces.Discrete(4), "actions", torch.tensor([[4], [0]]), r"actions\['agent_1'\] has a value outside the space at "
                                                                  r"env\(s\) \[0\] \(got 4\); expected Discrete\(4\): integers 0..3"),
    (gym.spaces.Discrete(4), "actions", torch.tensor([0, -1]), r"actions\['agent_1'\] has a value outside the space at env\(s\) \[1\]"),
    (gym.spaces.MultiDiscrete([2, 3]), "actions", torch.tensor([[1, 3], [0, 0]]),
     r"actions\['agent_1'\] has a value outside the space at env\(s\) \[0\] \(got \[1, 3\]\); expected MultiDiscrete: integers "
     r"0 <= a < nvec, nvec=\[2, 3\]"),
    (gym.spaces.Discrete(4), "terminated", torch.tensor([[2], [0]]), r"terminated\['agent_1'\] has a value outside the space .*"
                                                                     r"expected 0 or 1 \(or bool\)"),
])
def test_out_of_range_actions_and_flags_are_refused_at_record_transition(tmp_path, space, key, value, match):
    agent = make_agent(tmp_path, space)
    assert_refused(agent, step_inputs(agent, **{key: {"agent_1": value}}), "record_transition: " + match)


@pytest.mark.parametrize("space,key,shape,expected", [
    (gym.spaces.Discrete(4), "states", (N, 6), r"\(2, 5\) \(num_envs=2, then the shape of one agent's observation: \(5,\)\)"),
    (gym.spaces.Discrete(4), "next_states", (N, 5, 1), r"\(2, 5\) \(num_envs=2, then the shape of one agent's observation"),
    (gym.spaces.Discrete(4), "actions", (N, 2), r"\(2,\) or \(2, 1\) \(num_envs=2, then the shape of one agent's action: \(\)\)"),
    (gym.spaces.MultiDiscrete([2, 3]), "actions", (N, 3), r"\(2, 2\) \(num_envs=2, then the shape of one agent's action: \(2,\)\)"),
    (gym.spaces.Box(-1, 1, (2,)), "actions", (N, 2, 1), r"\(2, 2\) \(num_envs=2, then the shape of one agent's action"),
    (gym.spaces.Discrete(4), "rewards", (N, 2), r"\(2,\) or \(2, 1\) \(num_envs=2, then the shape of one agent's reward: \(1,\)\)"),
    (gym.spaces.Discrete(4), "terminated", (N, 1, 1), r"\(2,\) or \(2, 1\) \(num_envs=2, then the shape of one agent's done flag"),
    (gym.spaces.Discrete(4), "truncated", (3, 1), r"\(2,\) or \(2, 1\)"),
])
def test_every_input_of_record_transition_is_checked_against_its_shape(tmp_path, space, key, shape, expected):
    """Every agent given the same wrong shape used to fail inside a reshape ("shape '[2, 3, 5]' is invalid ...") naming no
    agent, or (``[num_envs, 5, 1]``, ``[num_envs, 1, 1]``) to be reshaped silently."""
    agent = make_agent(tmp_path, space)
    dtype = torch.bool if key in ("terminated", "truncated") else torch.int64 if key == "actions" and space.dtype != "float32" else None
    wrong = {a: torch.zeros(shape, dtype=dtype) for a in NAMES}
    assert_refused(agent, step_inputs(agent, **{key: wrong}),
                   rf"record_transition: {key}\['agent_0'\] has shape {tuple(shape)!r}; expected ".replace("(", r"\(").replace(")", r"\)")
                   + expected)


def test_act_and_given_log_probs_are_checked_against_their_shapes(tmp_path):
    agent = make_agent(tmp_path)
    with pytest.raises(ValueError, match=r"act: states\['agent_0'\] has shape \(2, 6\); expected \(2, 5\)"):
        agent.act({a: torch.zeros(N, 6) for a in NAMES}, 0, 10)
    inputs = step_inputs(agent)
    assert_refused(agent, inputs, r"record_transition: log_prob\['agent_0'\] has shape \(2, 2\); expected \(2,\) or \(2, 1\)",
                   log_prob={a: torch.zeros(N, 2) for a in NAMES})


def test_without_init_the_agent_logs_at_its_intervals(tmp_path):
    """init() is optional: the run folder is created at the first log (it used to log nothing without init)."""
    agent = make_agent(tmp_path, memories=None, cfg={"experiment": {"directory": str(tmp_path), "write_interval": 4,
                                                                     "checkpoint_interval": 0}})
    for t in range(8):
        inputs = step_inputs(agent)
        agent.record_transition(inputs["states"], inputs["actions"], inputs["rewards"], inputs["next_states"],
                                inputs["terminated"], inputs["truncated"], {}, t, 8)
        agent.post_interaction(t, 8)
    rows = list(csv.DictReader((agent.logger.run_dir / "progress.csv").open()))
    assert [int(r["timestep"]) for r in rows] == [4, 8]


def test_dict_observations_are_checked_key_by_key(tmp_path):
    obs = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,)), "inner": gym.spaces.Dict({"v": gym.spaces.Box(-1, 1, (3,))})})
    agent = MAPPO(NAMES, observation_spaces={a: obs for a in NAMES}, action_spaces={a: gym.spaces.Discrete(4) for a in NAMES},
                  device="cpu", num_envs=N, cfg={"rollouts": 4, "experiment": {"directory": str(tmp_path)}})
    s = {a: {"pos": torch.zeros(N, 2), "inner": {"v": torch.zeros(N, 3)}} for a in NAMES}
    assert agent.act(s, 0, 10)[0]["agent_1"].shape == (N, 1)
    with pytest.raises(ValueError, match=r"act: states\['agent_1'\]\['inner'\] is a dict without 'v'; its space is a Dict"):
        agent.act({**s, "agent_1": {"pos": torch.zeros(N, 2), "inner": {}}}, 0, 10)
    with pytest.raises(ValueError, match=r"act: states\['agent_1'\]\['inner'\]\['v'\] has shape \(2, 4\); expected \(2, 3\)"):
        agent.act({**s, "agent_1": {"pos": torch.zeros(N, 2), "inner": {"v": torch.zeros(N, 4)}}}, 0, 10)


def test_a_second_agent_never_writes_into_the_first_agents_run_folder(tmp_path):
    """Two agents with one experiment name: the second's init is refused and the first run's files stay as they were."""
    cfg = {"experiment": {"directory": str(tmp_path), "experiment_name": "same", "checkpoint_interval": 0}}
    first = make_agent(tmp_path, cfg=cfg)
    first.init()
    first.write_checkpoint(4, 10)
    files = {p: p.read_bytes() for p in (tmp_path / "same").rglob("*") if p.is_file()}
    second = make_agent(tmp_path, cfg={**cfg, "seed": 5})
    with pytest.raises(ValueError, match=r"same already holds .* pass another experiment.experiment_name"):
        second.init()
    with pytest.raises(ValueError, match=r"same already holds"):
        second.write_checkpoint(4, 10)
    assert {p: p.read_bytes() for p in (tmp_path / "same").rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("n", ["x", 0, 2.5, True])
def test_a_bad_num_envs_is_refused_at_construction(tmp_path, n):
    with pytest.raises(ValueError, match=rf"num_envs must be an integer >= 1 .* got {n!r}"):
        MAPPO(NAMES, observation_spaces={a: gym.spaces.Box(-1, 1, (5,)) for a in NAMES},
              action_spaces={a: gym.spaces.Discrete(4) for a in NAMES}, device="cpu", num_envs=n,
              cfg={"experiment": {"directory": str(tmp_path)}})
