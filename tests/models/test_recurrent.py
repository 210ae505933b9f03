"""The GRU body: step mode equals sequence mode (resets inside), states carried through collection, errors."""

import pytest
import torch
from tensordict.nn import TensorDictSequential
from torchrl.modules import set_recurrent_mode

from mappo_td import GRUBody, make_critic, make_policy, make_tensordict_primer, with_recurrent_state
from mappo_td.config import EnvConfig
from mappo_td.envs import make_env
from mappo_td.models.recurrent import AgentGRUCell


def step_by_step(body: GRUBody, x: torch.Tensor, is_init: torch.Tensor, h0: torch.Tensor, t_dim: int):
    """Step mode over the sequence, feeding each step's output state to the next (the collector's way)."""
    h, ys = h0, []
    for x_t, init_t in zip(x.unbind(t_dim), is_init.unbind(t_dim)):
        y, h = body(x_t, init_t, h)
        ys.append(y)
    return torch.stack(ys, t_dim)


@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("team_input", [False, True])
def test_step_mode_equals_sequence_mode_with_resets_inside(share_params, team_input):
    torch.manual_seed(0)
    b, t, n, f = 5, 9, 3, 4
    body = GRUBody(f, 2, n, hidden_size=8, layers=2, share_params=share_params, team_input=team_input, hidden_sizes=(16,))
    x = torch.randn(b, t, f) if team_input else torch.randn(b, t, n, f)
    is_init = torch.zeros(b, t, 1, dtype=torch.bool)
    is_init[:, 0] = True
    is_init[0, 4] = is_init[2, 6] = is_init[3, 1] = True  # episodes that start inside the sequence
    h0 = torch.randn(b, n, 2, 8)
    stored = torch.randn(b, t, n, 2, 8)  # sequence mode reads only step 0's state
    stored[:, 0] = h0
    expected = step_by_step(body, x, is_init, h0, 1)
    with set_recurrent_mode(True):
        out, states = body(x, is_init, stored)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert out.shape == (b, t, n, 2) and states.shape == (b, t, n, 2, 8)
    # the resets matter: without them the sequence gives other outputs after step 0
    with set_recurrent_mode(True):
        no_reset, _ = body(x, torch.zeros_like(is_init), stored)
    assert (no_reset[0, 4:] - expected[0, 4:]).abs().max() > 1e-3


def test_a_reset_zeroes_the_state_before_its_step():
    body = GRUBody(3, 1, 2, hidden_size=4)
    x, h = torch.randn(6, 2, 3), torch.randn(6, 2, 1, 4)
    first = torch.ones(6, 1, dtype=torch.bool)
    torch.testing.assert_close(body(x, first, h)[0], body(x, first, torch.zeros_like(h))[0], rtol=0, atol=0)
    per_agent = torch.tensor([[True], [False]]).expand(6, 2, 1)  # a per-agent flag resets only that agent
    y, _ = body(x, per_agent, h)
    torch.testing.assert_close(y[:, 0], body(x, first, h)[0][:, 0], rtol=0, atol=0)
    assert (y[:, 1] - body(x, first, h)[0][:, 1]).abs().max() > 1e-4


@pytest.mark.parametrize("share_params", [True, False])
def test_collection_carries_states_and_training_recomputes_them(share_params):
    torch.manual_seed(0)
    env = make_env(EnvConfig(num_envs=4, max_steps=5))
    policy = make_policy(env.observation_spec, env.full_action_spec, body="gru", share_params=share_params, rnn_hidden_size=8,
                         hidden_sizes=(16,))
    critic = make_critic(env.observation_spec, body="gru", share_params=share_params, rnn_hidden_size=8, hidden_sizes=(16,))
    renv = with_recurrent_state(env, policy, critic)
    assert renv is not env and "is_init" not in env.observation_spec.keys()  # the given env is left as it was
    data = renv.rollout(12, TensorDictSequential(policy, critic), break_when_any_done=False)
    init = data["is_init"][:, 1:, 0]
    assert init.any()  # episodes of 5 steps: resets inside the 12
    for key in [("agents", "rnn_state"), ("agents", "rnn_state_critic")]:
        h, h_next = data[key], data[("next", *key)]
        assert h.shape == (4, 12, 3, 1, 8)
        torch.testing.assert_close(h[:, 1:][~init], h_next[:, :-1][~init], rtol=0, atol=0)  # the state each step started from
        assert h[:, 1:][init].abs().max() == 0  # the primer's zeros at a reset
    replay = data.exclude("next").clone()
    with set_recurrent_mode(True):
        replay = TensorDictSequential(policy, critic)(replay)
    for key in [("agents", "loc"), ("agents", "state_value")]:
        torch.testing.assert_close(replay[key], data[key], rtol=0, atol=1e-5)


def test_primer_shapes_and_errors():
    policy = make_policy(make_env(EnvConfig(num_envs=2, max_steps=5)).observation_spec,
                         make_env(EnvConfig(num_envs=2, max_steps=5)).full_action_spec, body="gru", rnn_hidden_size=6, rnn_layers=2)
    assert make_tensordict_primer(policy, batch_size=(7,)).primers["agents", "rnn_state"].shape == (7, 3, 2, 6)
    mlp = make_policy(make_env(EnvConfig(num_envs=2, max_steps=5)).observation_spec,
                      make_env(EnvConfig(num_envs=2, max_steps=5)).full_action_spec)
    with pytest.raises(ValueError, match="no recurrent state"):
        make_tensordict_primer(mlp)
    env = make_env(EnvConfig(num_envs=2, max_steps=5))
    assert with_recurrent_state(env, mlp) is env
    with pytest.raises(ValueError, match="unknown body 'lstm'"):
        make_policy(env.observation_spec, env.full_action_spec, body="lstm")


def test_agent_gru_cell_equals_one_torch_gru_cell_per_agent():
    torch.manual_seed(0)
    cell = AgentGRUCell(5, 7, n_agents=3)
    x, h = torch.randn(4, 3, 5), torch.randn(4, 3, 7)
    out = cell(x, h)
    for i in range(3):
        ref = torch.nn.GRUCell(5, 7)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ref, name).copy_(getattr(cell, name)[i])
        torch.testing.assert_close(out[:, i], ref(x[:, i], h[:, i]), rtol=0, atol=1e-6)


def test_separate_parameters_are_stacked_per_agent():
    """Per-agent optimization (GroupOptimizer with share_params=False) needs every parameter as [n_agents, ...]."""
    body = GRUBody(4, 2, 3, hidden_size=8, layers=2, share_params=False)
    assert all(p.shape[0] == 3 for p in body.parameters())


def test_bad_states_and_a_missing_time_dim_are_clear_errors():
    body = GRUBody(4, 2, 3, hidden_size=8)
    first = torch.ones(5, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"must end in \(3, 1, 8\)"):
        body(torch.zeros(5, 3, 4), first, torch.zeros(5, 3, 1, 16))
    with set_recurrent_mode(True), pytest.raises(ValueError, match="needs a time dim"):
        body(torch.zeros(5, 3, 4), first, torch.zeros(5, 3, 1, 8))
