"""GAE against a plain-loop transcription of its definition (mappo_td.objectives.gae), and against TorchRL's GAE where they coincide."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives.value import MultiAgentGAE

from mappo_td import MAPPOGAE, standardize_per_agent

B, T, N = 3, 12, 2


def spec_gae(r, v, v_next, term, trunc, gamma, lmbda, time_limit_bootstrap):
    """The GAE definition written plainly: r, v, v_next [B, T, N]; term, trunc [B, T, N] (flags of the next state)."""
    adv = torch.zeros_like(r)
    for b in range(r.shape[0]):
        for i in range(r.shape[2]):
            a_next = 0.0
            for t in reversed(range(r.shape[1])):
                done = bool(term[b, t, i]) or bool(trunc[b, t, i])
                stop = bool(term[b, t, i]) if time_limit_bootstrap else done
                delta = r[b, t, i] + gamma[i] * (0.0 if stop else 1.0) * v_next[b, t, i] - v[b, t, i]
                a_next = delta + gamma[i] * lmbda[i] * (0.0 if done else 1.0) * a_next
                adv[b, t, i] = a_next
    return adv, adv + v


def random_rollout(per_agent_reward: bool, T: int = T):
    g = torch.Generator().manual_seed(1)
    v = torch.randn(B, T, N, 1, generator=g)
    v_next = torch.randn(B, T, N, 1, generator=g)  # value of the true next state, unrelated to v after a reset
    term = torch.rand(B, T, 1, generator=g) < 0.1
    trunc = (torch.rand(B, T, 1, generator=g) < 0.1) & ~term
    r = torch.randn(B, T, N, 1, generator=g) if per_agent_reward else torch.randn(B, T, 1, generator=g)
    td = TensorDict({
        ("agents", "state_value"): v,
        ("next", "agents", "state_value"): v_next,
        ("next", "agents" if per_agent_reward else "reward_", "reward"): r,
        ("next", "terminated"): term,
        ("next", "truncated"): trunc,
        ("next", "done"): term | trunc,
    }, [B, T])
    if not per_agent_reward:
        td["next", "reward"] = td["next"].pop(("reward_", "reward"))
        del td["next", "reward_"]
    return td


@pytest.mark.parametrize("time_limit_bootstrap", [False, True])
@pytest.mark.parametrize("per_agent_reward", [False, True])
@pytest.mark.parametrize("per_agent_params", [False, True])
def test_gae_matches_spec_loop(time_limit_bootstrap, per_agent_reward, per_agent_params):
    td = random_rollout(per_agent_reward)
    agents = ["agent_0", "agent_1"]
    gamma = {"agent_0": 0.99, "agent_1": 0.9} if per_agent_params else 0.97
    lmbda = {"agent_0": 0.95, "agent_1": 0.5} if per_agent_params else 0.9
    est = MAPPOGAE(gamma=gamma, lmbda=lmbda, agents=agents, time_limit_bootstrap=time_limit_bootstrap, standardize=False)
    est(td)
    gl = [gamma[a] for a in agents] if per_agent_params else [gamma] * N
    ll = [lmbda[a] for a in agents] if per_agent_params else [lmbda] * N
    r = td["next", "agents", "reward"] if per_agent_reward else td["next", "reward"].expand(B, T, N).unsqueeze(-1)
    exp_adv, exp_ret = spec_gae(
        r.squeeze(-1), td["agents", "state_value"].squeeze(-1), td["next", "agents", "state_value"].squeeze(-1),
        td["next", "terminated"].expand(B, T, N), td["next", "truncated"].expand(B, T, N), gl, ll, time_limit_bootstrap,
    )
    torch.testing.assert_close(td["agents", "advantage"].squeeze(-1), exp_adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(td["agents", "value_target"].squeeze(-1), exp_ret, atol=1e-6, rtol=0)


@pytest.mark.parametrize("time_limit_bootstrap", [False, True])
def test_team_signals_with_as_many_steps_as_agents(time_limit_bootstrap):
    """Regression: team-shared reward and flags [B, T, 1] with T == n_agents were taken for per-agent ones."""
    td = random_rollout(False, T=N)
    est = MAPPOGAE(gamma=0.9, lmbda=0.8, time_limit_bootstrap=time_limit_bootstrap, standardize=False)
    est(td)
    exp_adv, exp_ret = spec_gae(
        td["next", "reward"].expand(B, N, N), td["agents", "state_value"].squeeze(-1), td["next", "agents", "state_value"].squeeze(-1),
        td["next", "terminated"].expand(B, N, N), td["next", "truncated"].expand(B, N, N), [0.9] * N, [0.8] * N, time_limit_bootstrap,
    )
    torch.testing.assert_close(td["agents", "advantage"].squeeze(-1), exp_adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(td["agents", "value_target"].squeeze(-1), exp_ret, atol=1e-6, rtol=0)


def test_time_limit_bootstrap_changes_only_truncated_steps():
    td = random_rollout(True)
    a = MAPPOGAE(time_limit_bootstrap=False, standardize=False)(td.clone())["agents", "advantage"]
    b = MAPPOGAE(time_limit_bootstrap=True, standardize=False)(td.clone())["agents", "advantage"]
    trunc = td["next", "truncated"].squeeze(-1)
    diff = (a - b).abs().amax(dim=(-1, -2))
    assert trunc.any() and (diff[trunc] > 0).all()
    # Steps after the last truncation of each env see no difference.
    last = torch.where(trunc.any(1), T - 1 - trunc.flip(1).float().argmax(1), torch.full((B,), -1))
    for env in range(B):
        assert (diff[env, last[env] + 1:] == 0).all()


def test_missing_truncated_is_done_and_not_terminated():
    td = random_rollout(True)
    explicit = MAPPOGAE(time_limit_bootstrap=True, standardize=False)(td.clone())["agents", "advantage"]
    del td["next", "truncated"]
    derived = MAPPOGAE(time_limit_bootstrap=True, standardize=False)(td)["agents", "advantage"]
    torch.testing.assert_close(explicit, derived)


def test_matches_torchrl_multiagent_gae_without_truncation():
    td = random_rollout(False)
    td["next", "truncated"].zero_()
    td["next", "done"] = td["next", "terminated"].clone()
    ours = MAPPOGAE(gamma=0.98, lmbda=0.9, standardize=False)(td.clone())
    ref = MultiAgentGAE(gamma=0.98, lmbda=0.9, value_network=None, average_gae=False)
    ref.set_keys(value=("agents", "state_value"), advantage=("agents", "advantage"), value_target=("agents", "value_target"))
    theirs = ref(td.clone())
    torch.testing.assert_close(ours["agents", "advantage"], theirs["agents", "advantage"], atol=1e-6, rtol=0)
    torch.testing.assert_close(ours["agents", "value_target"], theirs["agents", "value_target"], atol=1e-6, rtol=0)


def test_standardization_is_per_agent_over_whole_batch():
    td = random_rollout(True)
    td["next", "agents", "reward"][..., 1, :] *= 100.0
    raw = MAPPOGAE(standardize=False)(td.clone())["agents", "advantage"]
    adv = MAPPOGAE()(td)["agents", "advantage"]
    for i in range(N):
        x = raw[..., i, :]
        torch.testing.assert_close(adv[..., i, :], (x - x.mean()) / (x.std() + 1e-8))
    torch.testing.assert_close(standardize_per_agent(raw), adv)
    # Value targets are not standardized.
    torch.testing.assert_close(td["agents", "value_target"], raw + td["agents", "state_value"])


def test_value_network_is_called_on_true_next_state():
    td = random_rollout(True)
    expected = MAPPOGAE(standardize=False)(td.clone())["agents", "advantage"]
    obs, next_obs = td["agents", "state_value"].clone(), td["next", "agents", "state_value"].clone()
    del td["agents", "state_value"], td["next", "agents", "state_value"]
    td["agents", "x"], td["next", "agents", "x"] = obs, next_obs
    from tensordict.nn import TensorDictModule
    critic = TensorDictModule(torch.nn.Identity(), in_keys=[("agents", "x")], out_keys=[("agents", "state_value")])
    got = MAPPOGAE(standardize=False, value_network=critic)(td)["agents", "advantage"]
    torch.testing.assert_close(got, expected)


def test_bad_inputs_raise_clear_errors():
    td = random_rollout(True)
    td["next", "agents", "reward"] = torch.zeros(B, T, N + 1, 1)
    with pytest.raises(ValueError, match="reward shape .* does not match value shape"):
        MAPPOGAE()(td)
    with pytest.raises(ValueError, match="unknown key name.*valid names"):
        MAPPOGAE().set_keys(rewards="r")
    with pytest.raises(ValueError, match="unknown agent/group name.*valid names"):
        MAPPOGAE(gamma={"agent_9": 0.9}, agents=["agent_0", "agent_1"])
    with pytest.raises(ValueError, match=r"gamma must be a finite number in \[0, 1\]"):
        MAPPOGAE(gamma=1.5)
    del td["agents", "state_value"]
    with pytest.raises(KeyError, match="value_network"):
        MAPPOGAE()(td)
