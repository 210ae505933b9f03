"""mappo_td.functional at its edges: the entropy's shape, per-agent coefficients given as [n_agents] or [n_agents, 1],
NaN/inf in entries a mask (or a termination) leaves out, float masks and out-of-range coefficients."""

import re

import pytest
import torch

from mappo_td import functional as F
from tests.objectives.test_functional import loss_inputs
from tests.objectives.test_loss import NB, N

NAN = float("nan")


def alive_mask(seed: int = 1) -> torch.Tensor:
    alive = torch.rand(NB, N, generator=torch.Generator().manual_seed(seed)) < 0.6
    alive[0] = True
    return alive


# 1. the entropy's shape

@pytest.mark.parametrize("bad", [(NB,), (NB, N, 1), (NB, 1)])
def test_an_entropy_not_shaped_like_the_log_probs_is_refused(bad):
    x = loss_inputs()
    with pytest.raises(ValueError, match=re.escape(f"entropy has shape {bad}; expected {(NB, N)} ([*B, n_agents], like log_prob)")):
        F.mappo_loss(**{**x, "entropy": torch.ones(bad)}, entropy_loss_scale=0.01)
    with pytest.raises(ValueError, match="entropy has shape"):
        F.mappo_loss(**{**x, "entropy": torch.ones(bad)}, per_agent=True)


# 2. per-agent coefficients

LOSS_COEFFICIENTS = {"ratio_clip": [0.1, 0.2, 0.3], "value_clip": [0.05, 0.1, 0.2], "value_loss_scale": [0.5, 1.0, 2.0],
                     "entropy_loss_scale": [0.0, 0.01, 0.1], "huber_delta": [0.5, 1.0, 2.0]}


@pytest.mark.parametrize("per_agent", [False, True])
@pytest.mark.parametrize("name", list(LOSS_COEFFICIENTS))
def test_a_per_agent_loss_coefficient_as_n_agents_equals_n_agents_by_one(name, per_agent):
    x, c = loss_inputs(), torch.tensor(LOSS_COEFFICIENTS[name])
    kw = {"clip_predicted_values": True, "value_loss": "huber", "per_agent": per_agent, "alive": alive_mask()}
    flat, column = F.mappo_loss(**x, **kw, **{name: c}), F.mappo_loss(**x, **kw, **{name: c.view(N, 1)})
    for k in flat:
        assert flat[k].shape == ((N,) if per_agent else ()), (k, flat[k].shape)
        torch.testing.assert_close(flat[k], column[k], atol=0, rtol=0, msg=k)
    # and each agent's term is the one with that agent's number
    for i in range(N):
        one = F.mappo_loss(**x, **{**kw, "per_agent": True}, **{name: float(c[i])})
        got = F.mappo_loss(**x, **{**kw, "per_agent": True}, **{name: c})
        for k in ("loss_objective", "loss_critic", "loss_entropy", "clip_fraction"):
            torch.testing.assert_close(got[k][i], one[k][i], msg=k)


def test_a_loss_coefficient_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"ratio_clip must be a number or per agent \(\[n_agents\] or \[n_agents, 1\], n_agents=3\), got shape \(2,\)"):
        F.mappo_loss(**loss_inputs(), ratio_clip=torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"value_loss_scale .* got shape \(1, 3\)"):
        F.mappo_loss(**loss_inputs(), value_loss_scale=torch.ones(1, N))


def test_gae_refuses_a_coefficient_that_would_broadcast_the_values():
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 5, N, 1, generator=g)
    done = torch.zeros(2, 5, N, 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"gamma of shape \(3,\) would broadcast the values \(2, 5, 3, 1\) to \(2, 5, 3, 3\)"):
        F.generalized_advantage_estimate(torch.full((N,), 0.99), 0.95, v, v, v, done, time_dim=1)
    with pytest.raises(ValueError, match=r"lmbda of shape \(3,\)"):
        F.generalized_advantage_estimate(0.99, torch.full((N,), 0.95), v, v, v, done, time_dim=1)
    gamma = torch.tensor([0.99, 0.9, 0.5])  # [n_agents, 1] is per agent here, [n_agents] in mappo_gae
    adv, _ = F.generalized_advantage_estimate(gamma.view(N, 1), 0.95, v, v, v, done, time_dim=1)
    assert adv.shape == v.shape
    torch.testing.assert_close(F.mappo_gae(v, v, v, done, gamma=gamma, standardize=False)[0], adv, atol=0, rtol=0)


# 3. NaN/inf where a mask or a termination leaves the entry out

def test_masked_mean_and_std_mean_do_not_read_masked_out_entries():
    x, m = torch.tensor([1.0, NAN, 3.0, float("inf")]), torch.tensor([True, False, True, False])
    torch.testing.assert_close(F.masked_mean(x, m), torch.tensor(2.0))
    std, mean = F.masked_std_mean(x.view(4, 1), m.view(4, 1), dim=[0])
    torch.testing.assert_close(mean, torch.tensor([[2.0]]))
    torch.testing.assert_close(std, torch.tensor([[2.0]]).sqrt())
    y = x.view(2, 2, 1)
    torch.testing.assert_close(F.standardize_per_agent(y, m.view(2, 2, 1))[:, 0], torch.tensor([[-1.0], [1.0]]) / (2.0 ** 0.5 + 1e-8))
    w = x.clone().requires_grad_()
    F.masked_mean(w, m).backward()
    assert torch.equal(w.grad, torch.tensor([0.5, 0.0, 0.5, 0.0]))


@pytest.mark.parametrize("per_agent", [False, True])
@pytest.mark.parametrize("poison", [NAN, float("inf"), -float("inf")])
def test_nan_or_inf_in_a_dead_agent_step_changes_no_loss_term_and_no_gradient(per_agent, poison):
    x, alive = loss_inputs(), alive_mask()
    kw = {"alive": alive, "clip_predicted_values": True, "value_clip_form": "max", "value_loss": "huber", "huber_delta": 2.0,
          "entropy_loss_scale": 0.01, "per_agent": per_agent}
    y = {k: torch.where(alive if v.ndim == 2 else alive.unsqueeze(-1), v, poison) for k, v in x.items()}
    grads = []
    for inputs in (x, y):
        leaves = {k: v.clone().requires_grad_(k in ("log_prob", "value", "entropy")) for k, v in inputs.items()}
        out = F.mappo_loss(**leaves, **kw)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).sum().backward()
        grads.append({k: leaves[k].grad for k in ("log_prob", "value", "entropy")})
        for k, v in out.items():
            assert torch.isfinite(v).all(), (k, v)
        if inputs is x:
            clean = out
    for k in clean:
        torch.testing.assert_close(out[k], clean[k], atol=0, rtol=0, msg=k)
    for k in grads[0]:
        assert torch.isfinite(grads[1][k]).all(), k  # dead entries get a zero gradient, not NaN
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=0, rtol=0, msg=k)


def test_a_network_whose_dead_agent_log_prob_is_nan_gets_a_finite_gradient():
    """The log-prob of a dead agent's stored (invalid) action is NaN: the parameters' gradient stays finite."""
    x, alive = loss_inputs(), alive_mask()
    w = torch.zeros(N, requires_grad=True)
    log_prob = torch.where(alive, x["log_prob"] + w, NAN)
    out = F.mappo_loss(**{**x, "log_prob": log_prob, "old_log_prob": torch.where(alive, x["old_log_prob"], NAN)}, alive=alive)
    out["loss_objective"].backward()
    assert torch.isfinite(out["loss_objective"]) and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_gae_ignores_a_nan_next_value_after_a_termination():
    """A NaN/inf V(s') at a terminated step (the true next state of an ended episode) reaches no step, and nothing from a
    later episode (even a NaN value) reaches an earlier one."""
    T = 6
    g = torch.Generator().manual_seed(0)
    v, nv, r = (torch.randn(2, T, N, 1, generator=g) for _ in range(3))
    term = torch.zeros(2, T, 1, dtype=torch.bool)
    term[:, 2] = True
    clean = F.mappo_gae(v, nv, r, term, standardize=False)
    bad_next = nv.clone()
    bad_next[:, 2] = NAN
    bad_next[0, 2, 1] = float("inf")
    for a, b in zip(F.mappo_gae(v, bad_next, r, term, standardize=False), clean):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    bad_later = v.clone()
    bad_later[:, 4] = NAN  # a NaN value in the later episode stays in it
    adv, target = F.mappo_gae(bad_later, nv, r, term, standardize=False)
    torch.testing.assert_close(adv[:, :3], clean[0][:, :3], atol=0, rtol=0)
    torch.testing.assert_close(target[:, :3], clean[1][:, :3], atol=0, rtol=0)
    # standardized with the NaN steps masked out: finite wherever alive
    alive = torch.ones(2, T, N, dtype=torch.bool)
    alive[:, 3:5] = False
    adv, _ = F.mappo_gae(bad_later, nv, r, term, alive=alive)
    assert torch.isfinite(adv[alive]).all()


# 4. masks that are not bool, coefficients out of range

def test_a_float_alive_mask_is_refused():
    x = loss_inputs()
    with pytest.raises(TypeError, match="alive must be a bool tensor .* got dtype torch.float32"):
        F.mappo_loss(**x, alive=torch.full((NB, N), 0.5))
    v = torch.zeros(4, N, 1)
    with pytest.raises(TypeError, match="alive must be a bool tensor"):
        F.mappo_gae(v, v, torch.zeros(4, 1), torch.zeros(4, 1, dtype=torch.bool), alive=torch.ones(4, N))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        F.masked_mean(torch.ones(2), torch.tensor([1.0, 0.5]))


@pytest.mark.parametrize("bad", [{"ratio_clip": -0.1}, {"value_clip": -0.2}, {"huber_delta": 0.0}, {"huber_delta": -1.0},
                                 {"ratio_clip": NAN}])
def test_out_of_range_coefficients_are_refused(bad):
    (name, value), = bad.items()
    with pytest.raises(ValueError, match=re.escape(f"{name} must be {'>' if name == 'huber_delta' else '>='} 0, got {value!r}.")):
        F.mappo_loss(**loss_inputs(), **bad)
