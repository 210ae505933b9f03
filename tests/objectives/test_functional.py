"""mappo_td.functional on plain tensors: the GAE and loss references (a plain loop, skrl's and TorchRL's own code) through the
functions directly, the modules as thin adapters over them, masked entries that change nothing, and shape errors."""

import pytest
import torch
from torchrl.objectives.value.functional import generalized_advantage_estimate as torchrl_gae

from mappo_td import MAPPOLoss, RunningStandardScaler, ValueNorm, make_critic, make_policy
from mappo_td import functional as F
from tests.objectives.test_gae import spec_gae
from tests.objectives.test_loss import NB, N, batch, perturb, specs
from tests.objectives.test_value_norm import ReferenceValueNorm

B, T = 3, 12


def rollout(per_agent_reward: bool, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    term = torch.rand(B, T, 1, generator=g) < 0.1
    return {"value": torch.randn(B, T, N, 1, generator=g), "next_value": torch.randn(B, T, N, 1, generator=g),
            "reward": torch.randn(B, T, N, 1, generator=g) if per_agent_reward else torch.randn(B, T, 1, generator=g),
            "terminated": term, "truncated": (torch.rand(B, T, 1, generator=g) < 0.1) & ~term}


@pytest.mark.parametrize("time_limit_bootstrap", [False, True])
@pytest.mark.parametrize("per_agent_reward", [False, True])
@pytest.mark.parametrize("per_agent_params", [False, True])
def test_mappo_gae_equals_the_plain_loop(time_limit_bootstrap, per_agent_reward, per_agent_params):
    x = rollout(per_agent_reward)
    gl, ll = ([0.99, 0.9, 0.8], [0.95, 0.5, 0.7]) if per_agent_params else ([0.97] * N, [0.9] * N)
    gamma, lmbda = (torch.tensor(gl), torch.tensor(ll)) if per_agent_params else (gl[0], ll[0])
    adv, target = F.mappo_gae(x["value"], x["next_value"], x["reward"], x["terminated"], x["truncated"], gamma=gamma, lmbda=lmbda,
                              time_limit_bootstrap=time_limit_bootstrap, standardize=False)
    r = F.broadcast_to_agents(x["reward"], x["value"]).squeeze(-1)
    exp_adv, exp_ret = spec_gae(r, x["value"].squeeze(-1), x["next_value"].squeeze(-1), x["terminated"].expand(B, T, N),
                                x["truncated"].expand(B, T, N), gl, ll, time_limit_bootstrap)
    torch.testing.assert_close(adv.squeeze(-1), exp_adv, atol=1e-6, rtol=0)
    torch.testing.assert_close(target.squeeze(-1), exp_ret, atol=1e-6, rtol=0)


@pytest.mark.parametrize("time_limit_bootstrap", [False, True])
def test_gae_equals_torchrls_function_with_truncations(time_limit_bootstrap):
    x = rollout(True)
    gamma, lmbda = torch.tensor([0.99, 0.9, 0.8]).view(N, 1), 0.9
    done = (x["terminated"] | x["truncated"]).unsqueeze(-2).expand(B, T, N, 1)
    stop = x["terminated"].unsqueeze(-2).expand(B, T, N, 1) if time_limit_bootstrap else done
    move = [t.movedim(1, -2) for t in (x["value"], x["next_value"], x["reward"], done, stop)]  # TorchRL: time at -2
    theirs = torchrl_gae(gamma.unsqueeze(-1), lmbda, *move)
    ours = F.mappo_gae(x["value"], x["next_value"], x["reward"], x["terminated"], x["truncated"], gamma=gamma, lmbda=lmbda,
                       time_limit_bootstrap=time_limit_bootstrap, standardize=False)
    raw = F.generalized_advantage_estimate(gamma, lmbda, x["value"], x["next_value"], x["reward"], done, stop, time_dim=1)
    for a, b, c in zip(ours, raw, theirs):
        torch.testing.assert_close(a, c.movedim(-2, 1), atol=1e-6, rtol=0)
        torch.testing.assert_close(b, a, atol=0, rtol=0)


def test_gae_equals_skrls_compute_gae_on_its_rollout():
    """skrl's own compute_gae (one agent, [T, num_envs, 1], next value = the next step's, terminations only): returns and
    standardized advantages."""
    compute_gae = pytest.importorskip("skrl.multi_agents.torch.mappo.mappo").compute_gae
    g = torch.Generator().manual_seed(3)
    values, last = torch.randn(T, 8, 1, generator=g), torch.randn(8, 1, generator=g)
    rewards, terminated = torch.randn(T, 8, 1, generator=g), torch.rand(T, 8, 1, generator=g) < 0.15
    returns, advantages = compute_gae(rewards=rewards, terminated=terminated, truncated=torch.zeros_like(terminated), values=values,
                                      last_values=last, discount_factor=0.98, lambda_coefficient=0.9)
    next_values = torch.cat([values[1:], last.unsqueeze(0)])
    adv, target = F.mappo_gae(values.unsqueeze(-2), next_values.unsqueeze(-2), rewards, terminated, gamma=0.98, lmbda=0.9, time_dim=0)
    torch.testing.assert_close(target.squeeze(-2), returns, atol=1e-6, rtol=0)
    torch.testing.assert_close(adv.squeeze(-2), advantages, atol=1e-6, rtol=0)


def test_standardization_leaves_masked_out_entries_out():
    x = rollout(True)
    alive = torch.rand(B, T, N, generator=torch.Generator().manual_seed(0)) < 0.7
    raw, _ = F.mappo_gae(x["value"], x["next_value"], x["reward"], x["terminated"], x["truncated"], standardize=False)
    adv, _ = F.mappo_gae(x["value"], x["next_value"], x["reward"], x["terminated"], x["truncated"], alive=alive)
    changed = F.standardize_per_agent(torch.where(alive.unsqueeze(-1), raw, 1e6), alive.unsqueeze(-1))
    torch.testing.assert_close(changed[alive], adv[alive])
    for i in range(N):
        sel = raw[..., i, 0][alive[..., i]]
        torch.testing.assert_close(adv[..., i, 0][alive[..., i]], (sel - sel.mean()) / (sel.std() + 1e-8))


def loss_inputs(seed: int = 0, scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * scale

    return {"log_prob": r(NB, N) * 0.3, "old_log_prob": r(NB, N) * 0.3, "entropy": r(NB, N).abs(), "advantage": r(NB, N, 1),
            "value": r(NB, N, 1), "old_value": r(NB, N, 1), "value_target": r(NB, N, 1) * 4}


@pytest.mark.parametrize("clip_predicted_values", [False, True])
def test_mappo_loss_equals_skrls_update_written_plainly(clip_predicted_values):
    """The lines of skrl's MAPPO update (policy, value and entropy losses, approximate KL), transcribed, with per-agent clips."""
    x = loss_inputs()
    c, vc = torch.tensor([[0.1], [0.2], [0.3]]), torch.tensor([[0.05], [0.1], [0.2]])
    out = F.mappo_loss(**x, ratio_clip=c, value_clip=vc, clip_predicted_values=clip_predicted_values, entropy_loss_scale=0.01,
                       value_loss_scale=0.5)
    ratio = torch.exp(x["log_prob"] - x["old_log_prob"]).unsqueeze(-1)
    surrogate, surrogate_clipped = x["advantage"] * ratio, x["advantage"] * torch.clip(ratio, 1.0 - c, 1.0 + c)
    predicted = x["value"]
    if clip_predicted_values:
        predicted = x["old_value"] + torch.clip(predicted - x["old_value"], min=-vc, max=vc)
    log_ratio = (x["log_prob"] - x["old_log_prob"])
    torch.testing.assert_close(out["loss_objective"], -torch.min(surrogate, surrogate_clipped).mean())
    torch.testing.assert_close(out["loss_critic"], 0.5 * torch.nn.functional.mse_loss(x["value_target"], predicted))
    torch.testing.assert_close(out["loss_entropy"], -0.01 * x["entropy"].mean())
    torch.testing.assert_close(out["kl_approx"], ((torch.exp(log_ratio) - 1) - log_ratio).mean())


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("share_params", [True, False])
def test_the_loss_module_is_the_function_on_its_networks_outputs(continuous, share_params):
    """MAPPOLoss(td) == mappo_loss(the tensors it reads and computes), exactly; and TorchRL's MAPPOLoss agrees."""
    from torchrl.objectives.multiagent import MAPPOLoss as TorchRLMAPPOLoss

    obs, act = specs(continuous)
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    perturb(critic)
    module = MAPPOLoss(policy, critic, value_loss_scale=0.7, share_params=share_params)
    torch.manual_seed(5)  # the entropy estimate of a squashed Gaussian samples
    ours = module(td.clone())
    dist = policy.get_dist(td.clone())
    log_prob = dist.log_prob(td["agents", "action"])
    with torch.no_grad():
        entropy = dist.entropy() if not continuous else -log_prob
    out = F.mappo_loss(log_prob=log_prob, old_log_prob=td["agents", "action_log_prob"], entropy=entropy, advantage=td["agents", "advantage"],
                       value=critic(td.clone())["agents", "state_value"], old_value=td["agents", "state_value"],
                       value_target=td["agents", "value_target"], value_loss_scale=0.7, per_agent=not share_params)
    for k, v in out.items():
        torch.testing.assert_close(ours[k], v, atol=0, rtol=0, msg=k)
    theirs = TorchRLMAPPOLoss(policy, critic, clip_epsilon=0.2, entropy_coeff=0.0, critic_coeff=0.7, loss_critic_type="l2",
                              normalize_advantage=False, clip_value=False)
    theirs.set_keys(action=("agents", "action"), sample_log_prob=("agents", "action_log_prob"), value=("agents", "state_value"),
                    advantage=("agents", "advantage"), value_target=("agents", "value_target"))
    ref = theirs(td.clone())
    for k in ("loss_objective", "loss_critic"):
        torch.testing.assert_close(out[k].mean(), ref[k])


@pytest.mark.parametrize("per_agent", [False, True])
def test_a_masked_out_agent_step_changes_no_loss_term(per_agent):
    x, alive = loss_inputs(), torch.rand(NB, N, generator=torch.Generator().manual_seed(1)) < 0.6
    alive[0] = True
    y = {k: torch.where(alive if v.ndim == 2 else alive.unsqueeze(-1), v, w) for (k, v), w in zip(x.items(), loss_inputs(7, 100.0).values())}
    kw = {"alive": alive, "clip_predicted_values": True, "value_clip_form": "max", "value_loss": "huber", "huber_delta": 2.0,
          "entropy_loss_scale": 0.01, "per_agent": per_agent}
    a, b = F.mappo_loss(**x, **kw), F.mappo_loss(**y, **kw)
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    unmasked = F.mappo_loss(**y, **{**kw, "alive": None})
    assert not torch.allclose(unmasked["loss_critic"], b["loss_critic"])  # without the mask the changed rows count


def test_kl_early_stop_is_skrls_decision_per_agent_and_off_at_zero():
    keep = torch.ones(4, dtype=torch.bool)
    kl = torch.tensor([0.02, 0.005, 0.02, 0.02])
    out = F.kl_early_stop(kl, torch.tensor([0.01, 0.01, 0.0, 0.05]), keep)
    assert out.tolist() == [False, True, True, True]
    assert F.kl_early_stop(kl, 0.01, out).tolist() == [False, True, False, False]  # once stopped, stays stopped
    assert F.kl_early_stop(kl, 0.0, keep).tolist() == [True] * 4


def test_standard_scaler_statistics_equal_skrls_running_standard_scaler():
    skrl_scaler = pytest.importorskip("skrl.resources.preprocessors.torch").RunningStandardScaler(3, device="cpu")
    ours, module = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), torch.ones((), dtype=torch.float64)), RunningStandardScaler(3)
    g = torch.Generator().manual_seed(0)
    for step in range(4):
        x = torch.randn(50, 3, generator=g, dtype=torch.float64) * (step + 1) + step
        skrl_scaler(x, train=True)
        ours = F.standard_scaler_update(*ours, x)
        module.update(x)
    for a, b in zip(ours, (skrl_scaler.running_mean, skrl_scaler.running_variance, skrl_scaler.current_count)):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(module.running_mean, ours[0].float())
    probe = torch.randn(5, 3, generator=g)
    torch.testing.assert_close(F.normalize(probe, ours[0].float(), ours[1].float(), epsilon=1e-8, clip=5.0), skrl_scaler(probe), atol=1e-6, rtol=0)
    torch.testing.assert_close(F.denormalize(probe, ours[0].float(), ours[1].float(), clip=5.0), skrl_scaler(probe, inverse=True))


def test_value_norm_functions_equal_the_reference_and_the_module():
    state, ref, module = (torch.zeros(1, dtype=torch.float64),) * 2 + (torch.zeros((), dtype=torch.float64),), ReferenceValueNorm(beta=0.9), ValueNorm(1, beta=0.9).double()
    for step in range(3):
        x = torch.randn(64, 1, dtype=torch.float64) * (step + 1) + 5 * step
        state = F.value_norm_update(*state, x, beta=0.9)
        ref.update(x.numpy())
        module.update(x)
    mean, var = F.value_norm_mean_var(*state)
    probe = torch.linspace(-10, 20, 5, dtype=torch.float64).view(-1, 1)
    torch.testing.assert_close(F.normalize(probe, mean, var), torch.as_tensor(ref.normalize(probe.numpy())))
    torch.testing.assert_close(F.denormalize(probe, mean, var), module.denormalize(probe), atol=0, rtol=0)


def test_bad_shapes_raise_clear_errors():
    x = rollout(True)
    v = x["value"]
    with pytest.raises(ValueError, match="must have one shape"):
        F.generalized_advantage_estimate(0.9, 0.9, v, v, v[..., :2, :], x["terminated"], time_dim=1)
    with pytest.raises(ValueError, match="reward shape .* does not match value shape"):
        F.mappo_gae(v, v, torch.zeros(B, T, N + 1, 1), x["terminated"])
    with pytest.raises(ValueError, match=r"gamma must be a number or per agent \(\[n_agents\]"):
        F.mappo_gae(v, v, x["reward"], x["terminated"], gamma=torch.ones(N + 1))
    with pytest.raises(ValueError, match=r"alive mask has shape \(3, 12, 3, 1\); expected \(3, 12, 3\)"):
        F.mappo_gae(v, v, x["reward"], x["terminated"], alive=torch.ones(B, T, N, 1, dtype=torch.bool))
    y = loss_inputs()
    with pytest.raises(ValueError, match="shape mismatch.*broadcast"):
        F.mappo_loss(**{**y, "advantage": torch.zeros(NB, 1)})
    with pytest.raises(ValueError, match="the policy's log-prob shape"):
        F.mappo_loss(**{**y, "log_prob": torch.zeros(NB, N, 1)})
    with pytest.raises(ValueError, match="the critic's output"):
        F.mappo_loss(**{**y, "value": torch.zeros(NB, N)})
    with pytest.raises(ValueError, match="value_loss must be one of"):
        F.value_error_loss(torch.zeros(2), "l1")
    with pytest.raises(ValueError, match="trailing dims must match"):
        F.standard_scaler_update(torch.zeros(3), torch.ones(3), torch.ones(()), torch.zeros(4, 2))
