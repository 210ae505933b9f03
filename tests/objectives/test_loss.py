"""MAPPOLoss against its formulas written plainly, and against TorchRL's MAPPOLoss where they coincide."""

import pytest
import torch
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.objectives.multiagent import MAPPOLoss as TorchRLMAPPOLoss

from mappo_td import MAPPOLoss, make_critic, make_policy

NB, N, F, K = 16, 3, 5, 4


def specs(continuous=False):
    obs = Composite(agents=Composite(observation=Unbounded((NB, N, F)), shape=(NB, N)), shape=(NB,))
    a = Bounded(-1.0, 1.0, (NB, N, 2)) if continuous else Categorical(K, (NB, N))
    act = Composite(agents=Composite(action=a, shape=(NB, N)), shape=(NB,))
    return obs, act


def batch(policy, critic, obs):
    with torch.no_grad():
        td = critic(policy(obs.rand()))
    td["agents", "advantage"] = torch.randn(NB, N, 1)
    td["agents", "value_target"] = torch.randn(NB, N, 1)
    td["agents", "state_value"] = td["agents", "state_value"] + 0.5 * torch.randn(NB, N, 1)  # old values differ
    td["agents", "action_log_prob"] = td["agents", "action_log_prob"] + 0.3 * torch.randn(NB, N)  # ratios away from 1
    return td


def perturb(module, scale=0.1):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


@pytest.mark.parametrize("clip_predicted_values", [False, True])
@pytest.mark.parametrize("per_agent_coefs", [False, True])
def test_loss_equals_spec_formulas(clip_predicted_values, per_agent_coefs):
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    perturb(critic)
    agents = ["a0", "a1", "a2"]
    c = {"a0": 0.1, "a1": 0.2, "a2": 0.3} if per_agent_coefs else 0.2
    vc = {"a0": 0.05, "a1": 0.1, "a2": 0.2} if per_agent_coefs else 0.1
    loss = MAPPOLoss(policy, critic, agents=agents, ratio_clip=c, value_clip=vc, clip_predicted_values=clip_predicted_values,
                     entropy_loss_scale=0.01, value_loss_scale=0.5)
    out = loss(td.clone())

    # The clipped surrogate, value and entropy losses, written plainly.
    cv = torch.tensor([c[a] for a in agents] if per_agent_coefs else [c] * N).view(N, 1)
    vcv = torch.tensor([vc[a] for a in agents] if per_agent_coefs else [vc] * N).view(N, 1)
    logits = policy[0](td.clone())["agents", "logits"]
    dist = torch.distributions.Categorical(logits=logits)
    logp_new = dist.log_prob(td["agents", "action"]).unsqueeze(-1)
    logp_old = td["agents", "action_log_prob"].unsqueeze(-1)
    r = logp_new - logp_old
    ratio = r.exp()
    A, R, V = td["agents", "advantage"], td["agents", "value_target"], td["agents", "state_value"]
    policy_loss = -torch.min(A * ratio, A * torch.maximum(torch.minimum(ratio, 1 + cv), 1 - cv)).mean()
    v_pred = critic(td.clone())["agents", "state_value"]
    if clip_predicted_values:
        v_pred = V + torch.maximum(torch.minimum(v_pred - V, vcv), -vcv)
    value_loss = 0.5 * ((R - v_pred) ** 2).mean()
    entropy_loss = -0.01 * dist.entropy().mean()
    kl = ((r.exp() - 1) - r).mean()

    torch.testing.assert_close(out["loss_objective"], policy_loss)
    torch.testing.assert_close(out["loss_critic"], value_loss)
    torch.testing.assert_close(out["loss_entropy"], entropy_loss)
    torch.testing.assert_close(out["kl_approx"], kl)
    torch.testing.assert_close(out["clip_fraction"], ((ratio - 1).abs() > cv).float().mean())
    torch.testing.assert_close(out["explained_variance"], 1 - (R - v_pred).var() / R.var())
    assert not out["kl_approx"].requires_grad and not out["explained_variance"].requires_grad


def test_value_clipping_changes_the_critic_loss():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    a = MAPPOLoss(policy, critic, clip_predicted_values=False)(td.clone())["loss_critic"]
    b = MAPPOLoss(policy, critic, clip_predicted_values=True, value_clip=1e-3)(td.clone())["loss_critic"]
    expected = ((td["agents", "value_target"] - td["agents", "state_value"]) ** 2).mean()  # clip ~0 -> old values
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, expected, atol=1e-2, rtol=0)


@pytest.mark.parametrize("continuous", [False, True])
def test_matches_torchrl_mappo_loss(continuous):
    obs, act = specs(continuous)
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    perturb(critic)
    ours = MAPPOLoss(policy, critic, ratio_clip=0.2, entropy_loss_scale=0.0, value_loss_scale=0.7)
    theirs = TorchRLMAPPOLoss(policy, critic, clip_epsilon=0.2, entropy_coeff=0.0, critic_coeff=0.7, loss_critic_type="l2",
                              normalize_advantage=False, clip_value=False)
    theirs.set_keys(action=("agents", "action"), sample_log_prob=("agents", "action_log_prob"), value=("agents", "state_value"),
                    advantage=("agents", "advantage"), value_target=("agents", "value_target"))
    a, b = ours(td.clone()), theirs(td.clone())
    torch.testing.assert_close(a["loss_objective"], b["loss_objective"])
    torch.testing.assert_close(a["loss_critic"], b["loss_critic"])
    torch.testing.assert_close(a["clip_fraction"], b["clip_fraction"])


def test_gradients_go_where_they_belong():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    loss = MAPPOLoss(policy, critic, entropy_loss_scale=0.1)
    for term, gets, not_gets in (("loss_objective", policy, critic), ("loss_entropy", policy, critic), ("loss_critic", critic, policy)):
        loss.zero_grad(set_to_none=True)
        loss(td.clone())[term].backward()
        assert all(p.grad is None or not p.grad.any() for p in not_gets.parameters()), term
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in gets.parameters()), term


def test_per_agent_reduction_and_any_batch_shape():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    scalar = MAPPOLoss(policy, critic)(td.clone())
    vec = MAPPOLoss(policy, critic, share_params=False)(td.clone())
    assert vec["loss_objective"].shape == (N,)
    for k in ("loss_objective", "loss_critic", "kl_approx"):
        torch.testing.assert_close(vec[k].mean(), scalar[k])
    folded = MAPPOLoss(policy, critic)(td.clone().reshape(4, 4))  # [T, N_envs]-shaped batch
    torch.testing.assert_close(folded["loss_objective"], scalar["loss_objective"])


def test_bad_input_errors():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    loss = MAPPOLoss(policy, critic)
    with pytest.raises(ValueError, match="unknown key name.*valid names"):
        loss.set_keys(advantages=("agents", "adv"))
    td = batch(policy, critic, obs)
    td["agents", "value_target"] = torch.zeros(NB, N, 2)
    with pytest.raises(ValueError, match="shape mismatch.*broadcast"):
        loss(td)
    td = batch(policy, critic, obs)
    del td["agents", "advantage"]
    with pytest.raises(KeyError, match="value_estimator"):
        loss(td)
    with pytest.raises(ValueError, match=r"ratio_clip must be a finite number in \(0"):
        MAPPOLoss(policy, critic, ratio_clip=0.0)
    with pytest.raises(ValueError, match="unknown agent/group name"):
        MAPPOLoss(policy, critic, agents=["a", "b", "c"], ratio_clip={"z": 0.1})


def reference_huber(e, d):
    """The MAPPO reference's huber_loss (on-policy, utils/util.py), transcribed."""
    a = (abs(e) <= d).float()
    b = (abs(e) > d).float()
    return a * e**2 / 2 + b * d * (abs(e) - d / 2)


@pytest.mark.parametrize("value_loss", ["mse", "huber"])
@pytest.mark.parametrize("form", ["prediction", "max"])
@pytest.mark.parametrize("clip", [False, True])
def test_value_loss_and_clip_forms_equal_their_formulas(value_loss, form, clip):
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    td["agents", "value_target"] = td["agents", "value_target"] * 8  # errors on both sides of delta
    perturb(critic)
    delta = 2.0
    loss = MAPPOLoss(policy, critic, value_clip=0.1, clip_predicted_values=clip, value_loss_scale=0.5, value_loss=value_loss,
                     huber_delta=delta, value_clip_form=form)
    out = loss(td.clone())
    R, V = td["agents", "value_target"], td["agents", "state_value"]
    v_pred = critic(td.clone())["agents", "state_value"]
    ell = (lambda e: e**2) if value_loss == "mse" else (lambda e: reference_huber(e, delta))
    v_clip = V + (v_pred - V).clamp(-0.1, 0.1)
    if not clip:
        per = ell(R - v_pred)
    elif form == "prediction":
        per = ell(R - v_clip)
    else:
        per = torch.max(ell(R - v_pred), ell(R - v_clip))
    torch.testing.assert_close(out["loss_critic"], 0.5 * per.mean())
    if value_loss == "huber":
        assert bool(((R - v_pred).abs() > delta).any()) and bool(((R - v_pred).abs() <= delta).any())


def test_value_loss_options_are_checked():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    for kw in ({"value_loss": "l1"}, {"value_clip_form": "min"}, {"huber_delta": 0.0}):
        with pytest.raises(ValueError, match="value_loss must be one of"):
            MAPPOLoss(policy, critic, **kw)


def test_repr_and_in_keys_name_what_the_loss_reads():
    """``repr(loss)`` raised (TorchRL's module repr reads ``in_keys``, which the loss lacked); ``in_keys`` are the
    networks' inputs and the key contract's, renamed ones included, and they select what ``forward`` needs."""
    obs, act = specs()
    policy, critic = make_policy(obs, act, "agents"), make_critic(obs, "agents")
    loss = MAPPOLoss(policy, critic)
    assert "MAPPOLoss" in repr(loss)
    assert loss.in_keys[:1] == [("agents", "observation")] and ("agents", "advantage") in loss.in_keys
    assert loss.in_keys[-1] == ("agents", "mask")
    td = batch(policy, critic, obs)
    assert torch.equal(loss(td.select(*loss.in_keys, strict=False))["loss_objective"], loss(td)["loss_objective"])
    assert list(loss(td).keys()) == loss.out_keys == ["loss_objective", "loss_critic", "loss_entropy", "kl_approx",
                                                       "clip_fraction", "entropy", "explained_variance"]
    loss.set_keys(advantage=("agents", "adv"))
    assert ("agents", "adv") in loss.in_keys and ("agents", "advantage") not in loss.in_keys
