"""What a hostile tester found: a network instance shared across groups (two optimizers on one set of weights), episode
state surviving ``load``, a recurrent agent acting twice without advancing, MultiDiscrete masks without a legal value for
a sub-action, and a mask given bare in ``infos``."""

import warnings

import gymnasium as gym
import pytest
import torch

from mappo_td.agent import MAPPO, Memory

NAMES = ["agent_0", "agent_1"]
N = 2  # envs


def make_agent(tmp_path, obs=(3,), action_space=None, memories=True, cfg=None, **kw):
    cfg = {"rollouts": 4, "mini_batches": 1, "learning_epochs": 1,
           "experiment": {"directory": str(tmp_path), "checkpoint_interval": 0, "write_interval": 0}, **(cfg or {})}
    return MAPPO(NAMES, memories={a: Memory(4, num_envs=N) for a in NAMES} if memories else None,
                 observation_spaces={a: gym.spaces.Box(-1, 1, obs) for a in NAMES},
                 action_spaces={a: action_space or gym.spaces.Discrete(3) for a in NAMES}, device="cpu", cfg=cfg, num_envs=N, **kw)


def flags(value=False, **per_agent):
    return {a: per_agent.get(a, torch.full((N, 1), value)) for a in NAMES}


def step(agent, t, states, terminated=None, **kw):
    actions = agent.act(states, t, 99, **kw)[0]
    agent.record_transition(states, actions, flags(1.0), states, terminated or flags(), flags(), {}, t, 99)
    agent.post_interaction(t, 99)


def test_a_network_instance_shared_across_groups_is_refused_at_construction(tmp_path):
    shared, critic = torch.nn.Linear(3, 3), torch.nn.Linear(6, 1)
    with pytest.raises(ValueError, match=r"models: agents \['agent_0', 'agent_1'\] share one 'policy' instance but form groups "
                                         r"\{'agent': \['agent_0'\], 'agent_1': \['agent_1'\]\}, each trained by an optimizer of its "
                                         r"own: .* give them the same 'critic' instance as well, or each its own 'policy'"):
        make_agent(tmp_path, models={a: {"policy": shared, "critic": torch.nn.Linear(6, 1)} for a in NAMES})
    with pytest.raises(ValueError, match=r"share one 'critic' instance but form groups"):
        make_agent(tmp_path, models={a: {"policy": torch.nn.Linear(3, 3), "critic": critic} for a in NAMES})
    agent = make_agent(tmp_path, models={a: {"policy": shared, "critic": critic} for a in NAMES})
    assert agent.group_map == {"agent": NAMES}


def test_load_starts_every_env_anew_every_agent_alive_statistics_from_zero(tmp_path):
    agent = make_agent(tmp_path)
    path = agent.write_checkpoint(0, 99)
    s = {a: torch.rand(N, 3) for a in NAMES}
    step(agent, 0, s, flags(agent_1=torch.tensor([[True], [False]])))  # agent_1 dies in env 0; the episodes go on
    agent.load(path)
    with pytest.raises(RuntimeError, match=r"call act\(\) first"):  # the last act belonged to the old episode
        agent.record_transition(s, {a: torch.zeros(N, 1, dtype=torch.int64) for a in NAMES}, flags(1.0), s, flags(), flags(), {}, 0, 99)
    step(agent, 1, s)
    m = agent.memories["agent_1"]
    assert m.get_tensor_by_name("mask")[1, :, 0].tolist() == [True, True]  # alive again: its steps reach the loss
    assert bool((m.get_tensor_by_name("observations")[1] == s["agent_1"]).all())  # the policy saw what it was given
    assert m.get_tensor_by_name("next_episode_reward")[1, :, 0].tolist() == [1.0, 1.0]  # returns from zero
    assert m.get_tensor_by_name("env_next_step_count")[1, :, 0].tolist() == [1, 1]


def test_load_drops_the_steps_recorded_since_the_last_update(tmp_path):
    agent = make_agent(tmp_path, memories=False)
    path = agent.write_checkpoint(0, 99)
    s = {a: torch.rand(N, 3) for a in NAMES}
    for t in range(3):
        step(agent, t, s)
    agent.load(path)
    step(agent, 3, s)
    assert agent.learner.updates == 0  # 1 step of the new episodes, not 4 of two
    for t in range(4, 7):
        step(agent, t, s)
    assert agent.learner.updates > 0


def test_a_recurrent_agent_warns_once_when_it_acts_twice_without_record_transition(tmp_path):
    agent = make_agent(tmp_path, memories=False, cfg={"data_chunk_length": 2, "model": {"body": "gru", "hidden_sizes": [8],
                                                                                        "rnn_hidden_size": 8}})
    s = {a: torch.rand(N, 3) for a in NAMES}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step(agent, 0, s)
        agent.act(s, 1, 99)
    with pytest.warns(UserWarning, match=r"act\(\) was called again without record_transition\(\): a recurrent agent's "
                                         r"\(model.body='gru'\) hidden states advance only in record_transition"):
        agent.act(s, 1, 99)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.act(s, 1, 99)  # said once
    for t in range(1, 5):  # an evaluation loop: act and record_transition, no post_interaction; then training resumes
        actions = agent.act(s, t, 99)[0]
        agent.record_transition(s, actions, flags(1.0), s, flags(), flags(), {}, t, 99)
    agent.post_interaction(6, 99)  # on the last rollouts steps
    assert agent.learner.updates > 0


def test_a_multidiscrete_mask_without_a_legal_value_for_a_sub_action_means_the_agent_does_not_act(tmp_path):
    agent = make_agent(tmp_path, action_space=gym.spaces.MultiDiscrete([2, 3]), action_masks=True)
    s = {a: torch.rand(N, 3) for a in NAMES}
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 0]])  # env 1: no legal value for sub-action 0
    step(agent, 0, s, action_masks={"agent_0": mask})
    assert agent.memories["agent_0"].get_tensor_by_name("mask")[0, :, 0].tolist() == [True, False]
    with pytest.raises(TypeError, match=r"act: infos\['agent_0'\] is a Tensor, not a dict: infos are the env's, a dict per agent; "
                                        r"give a legal-action mask as infos\['agent_0'\]\['action_mask'\] \(or as "
                                        r"action_masks=\{'agent_0': mask\}\)"):
        agent.act(s, 1, 99, infos={"agent_0": mask})
