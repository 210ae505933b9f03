"""Alive (death) masks: the loss and the advantage standardization against a plain masked transcription of the MAPPO
reference (on-policy r_mappo.py: ``(x * active_masks).sum() / active_masks.sum()``), and dead agents reaching nothing."""

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from mappo_td import MAPPOGAE, MAPPOLoss, make_critic, make_policy
from tests.objectives.test_loss import NB, N, batch, perturb, reference_huber, specs


def _alive(seed=0):
    alive = torch.rand(NB, N, generator=torch.Generator().manual_seed(seed)) < 0.6
    alive[0] = True
    return alive


@pytest.mark.parametrize("share_params", [True, False])
def test_loss_terms_equal_the_reference_masked_means(share_params):
    obs, act = specs()
    policy = make_policy(obs, act, hidden_sizes=(8,), share_params=share_params)
    critic = make_critic(obs, hidden_sizes=(8,), share_params=share_params)
    td = batch(policy, critic, obs)
    td["agents", "value_target"] = td["agents", "value_target"] * 8
    td["agents", "mask"] = alive = _alive()
    perturb(policy), perturb(critic)
    loss = MAPPOLoss(policy, critic, entropy_loss_scale=0.01, value_loss="huber", huber_delta=2.0, clip_predicted_values=True,
                     value_clip_form="max", share_params=share_params)
    out = loss(td.clone())

    m = alive.unsqueeze(-1).float()
    dist = policy.get_dist(td.clone())
    ratio = (dist.log_prob(td["agents", "action"]) - td["agents", "action_log_prob"]).exp().unsqueeze(-1)
    A, R, V = td["agents", "advantage"], td["agents", "value_target"], td["agents", "state_value"]
    surr = torch.min(ratio * A, ratio.clamp(0.8, 1.2) * A)
    v_pred = critic(td.clone())["agents", "state_value"]
    v_clip = V + (v_pred - V).clamp(-0.2, 0.2)
    value_loss = torch.max(reference_huber(R - v_pred, 2.0), reference_huber(R - v_clip, 2.0))
    entropy = dist.entropy().unsqueeze(-1)
    dims = (0, 2) if not share_params else (0, 1, 2)

    def masked(x):
        return (x * m).sum(dims) / m.sum(dims)

    torch.testing.assert_close(out["loss_objective"], -masked(surr).squeeze())
    torch.testing.assert_close(out["loss_critic"], masked(value_loss).squeeze())
    torch.testing.assert_close(out["loss_entropy"], -0.01 * masked(entropy).squeeze())
    assert not torch.allclose(out["loss_objective"], -surr.mean(dims[:-1] if not share_params else None).squeeze())  # the mask matters


def test_turning_alive_masks_off_restores_plain_means():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    plain = MAPPOLoss(policy, critic)(td.clone())
    td["agents", "mask"] = _alive()
    off = MAPPOLoss(policy, critic, policy_alive_mask=False, value_alive_mask=False)(td.clone())
    on = MAPPOLoss(policy, critic)(td.clone())
    for k in ("loss_objective", "loss_critic"):
        torch.testing.assert_close(off[k], plain[k])
        assert not torch.allclose(on[k], plain[k])


def test_bad_alive_mask_shape_is_a_clear_error():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    td["agents", "mask"] = torch.ones(NB, N, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"alive mask at \('agents', 'mask'\) has shape \(16, 3, 1\); expected \(16, 3\)"):
        MAPPOLoss(policy, critic)(td)


def _rollout(n_env=4, t=12, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    td = TensorDict({
        ("agents", "state_value"): torch.randn(n_env, t, n, 1, generator=g),
        ("next", "agents", "state_value"): torch.randn(n_env, t, n, 1, generator=g),
        ("next", "agents", "reward"): torch.randn(n_env, t, n, 1, generator=g),
        ("next", "agents", "done"): torch.zeros(n_env, t, n, 1, dtype=torch.bool),
        ("next", "agents", "terminated"): torch.zeros(n_env, t, n, 1, dtype=torch.bool),
    }, [n_env, t])
    alive = torch.ones(n_env, t, n, dtype=torch.bool)
    alive[:2, 5:, 1] = False  # agent 1 dies at step 4 in envs 0 and 1 (its done at step 4), absent afterwards
    td["next", "agents", "done"][:2, 4, 1] = True
    td["next", "agents", "terminated"][:2, 4, 1] = True
    td["agents", "mask"] = alive
    return td


def test_standardization_uses_alive_entries_only():
    td = _rollout()
    MAPPOGAE(gamma=0.9, lmbda=0.8)(td)
    raw = MAPPOGAE(gamma=0.9, lmbda=0.8, standardize=False)(td.clone())["agents", "advantage"].numpy()
    alive = td["agents", "mask"].numpy()
    for i in range(3):  # per agent: (A - mean) / (std + 1e-8) over the alive entries (np.nan* over the others, as the reference)
        a = np.where(alive[..., i], raw[..., i, 0], np.nan)
        expected = (raw[..., i, 0] - np.nanmean(a)) / (np.nanstd(a, ddof=1) + 1e-8)
        np.testing.assert_allclose(td["agents", "advantage"][..., i, 0].numpy()[alive[..., i]], expected[alive[..., i]], rtol=1e-5, atol=1e-6)


def test_a_dead_agent_changes_no_advantage_no_loss_and_no_gradient():
    """Changing what a dead agent observes, does or is paid after its death moves nothing that trains (IPPO critic: a
    centralized one reads every agent's observation as the state, so there it is the env's to blank a dead agent's)."""
    from torchrl.data import Categorical, Composite, Unbounded

    n_env, t, n, f = 4, 12, 3, 5
    obs = Composite(agents=Composite(observation=Unbounded((n_env, t, n, f)), shape=(n_env, t, n)), shape=(n_env, t))
    act = Composite(agents=Composite(action=Categorical(4, (n_env, t, n)), shape=(n_env, t, n)), shape=(n_env, t))
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, centralized=False, hidden_sizes=(8,))
    loss = MAPPOLoss(policy, critic, entropy_loss_scale=0.01)
    gae = MAPPOGAE(value_network=critic)

    def run(td):
        td = td.clone()
        with torch.no_grad():
            gae(td)
        policy.zero_grad(), critic.zero_grad()
        out = loss(td)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        grads = [p.grad.clone() for p in [*policy.parameters(), *critic.parameters()]]
        return td["agents", "advantage"], out, grads

    base = _rollout(n_env, t, n)
    base["agents", "observation"] = torch.randn(n_env, t, n, f)
    base["next", "agents", "observation"] = torch.randn(n_env, t, n, f)
    with torch.no_grad():
        policy(base)
    base["agents", "action_log_prob"] = base["agents", "action_log_prob"] + 0.2 * torch.randn(n_env, t, n)
    changed = base.clone()
    dead = ~base["agents", "mask"]  # [n_env, t, n]
    changed["agents", "observation"][dead] = 100.0
    changed["next", "agents", "observation"][:2, 4:, 1] = -50.0  # its next observations from its death step on
    changed["agents", "action"][dead] = (changed["agents", "action"][dead] + 1) % 4
    changed["next", "agents", "reward"][dead] = 1e3
    adv0, out0, g0 = run(base)
    adv1, out1, g1 = run(changed)
    alive = base["agents", "mask"]
    torch.testing.assert_close(adv0[alive], adv1[alive])
    for k in ("loss_objective", "loss_critic", "loss_entropy", "kl_approx"):
        torch.testing.assert_close(out0[k], out1[k])
    for a, b in zip(g0, g1):
        torch.testing.assert_close(a, b)
