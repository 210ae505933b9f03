"""Legal-action masks: masked distributions, the masked policy, random exploration, the loss's tensor plan."""

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import InteractionType, set_interaction_type
from torchrl.data import Binary, Categorical, Composite, Unbounded
from torchrl.data import MultiCategorical as MultiCategoricalSpec

from mappo_td import MAPPOLoss, MaskedCategorical, MultiCategorical, make_critic, make_policy
from mappo_td.models import legal_mask
from mappo_td.models.distributions import random_actions


def _logits_and_mask(shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(*shape, n, generator=g) * 2
    mask = torch.rand(*shape, n, generator=g) < 0.5
    mask[..., 0] |= ~mask.any(-1)
    return logits, mask


def _direct(logits, mask):
    """log p and entropy computed over the legal actions only."""
    legal = logits.masked_fill(~mask, float("-inf"))
    logp = legal - legal.logsumexp(-1, keepdim=True)
    p = logp.exp()
    return logp, -(p * logp.masked_fill(~mask, 0)).sum(-1)


def test_masked_categorical_never_samples_illegal_and_matches_direct_formulas():
    logits, mask = _logits_and_mask((64, 3), 6)
    dist = MaskedCategorical(logits, mask=mask)
    draws = dist.sample((500,))  # 96,000 draws
    assert bool(mask.gather(-1, draws.permute(1, 2, 0)).all())
    logp, entropy = _direct(logits, mask)
    for a in range(6):
        legal = mask[..., a]
        got = dist.log_prob(torch.full((64, 3), a))
        torch.testing.assert_close(got[legal], logp[..., a][legal])
    torch.testing.assert_close(dist.entropy(), entropy)
    best = logits.masked_fill(~mask, float("-inf")).argmax(-1)
    assert torch.equal(dist.mode, best) and torch.equal(dist.deterministic_sample, best)


def test_masked_multicategorical_sums_each_dimensions_masked_terms():
    nvec = [3, 4]
    logits, mask = torch.cat([_logits_and_mask((50,), 3, 1)[0], _logits_and_mask((50,), 4, 2)[0]], -1), None
    mask = torch.cat([_logits_and_mask((50,), 3, 1)[1], _logits_and_mask((50,), 4, 2)[1]], -1)
    dist = MultiCategorical(logits, nvec, mask=mask)
    draws = dist.sample((400,))
    assert bool(mask[:, :3].gather(-1, draws[..., 0].T).all()) and bool(mask[:, 3:].gather(-1, draws[..., 1].T).all())
    (lp0, h0), (lp1, h1) = _direct(logits[:, :3], mask[:, :3]), _direct(logits[:, 3:], mask[:, 3:])
    torch.testing.assert_close(dist.entropy(), h0 + h1)
    a = dist.sample()
    torch.testing.assert_close(dist.log_prob(a), lp0.gather(-1, a[:, :1]).squeeze(-1) + lp1.gather(-1, a[:, 1:]).squeeze(-1))
    best = torch.stack([logits[:, :3].masked_fill(~mask[:, :3], -1e9).argmax(-1), logits[:, 3:].masked_fill(~mask[:, 3:], -1e9).argmax(-1)], -1)
    assert torch.equal(dist.mode, best)


def test_a_row_without_legal_actions_is_a_valid_distribution():
    dist = MaskedCategorical(torch.zeros(2, 4), mask=torch.tensor([[False] * 4, [True, False, False, False]]))
    assert torch.isfinite(dist.entropy()).all() and float(dist.entropy()[0]) == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert torch.equal(legal_mask(torch.zeros(1, 3, dtype=torch.bool)), torch.ones(1, 3, dtype=torch.bool))


def test_random_exploration_draws_only_legal_actions():
    _, mask = _logits_and_mask((2000, 2), 5, 3)
    a = random_actions(Categorical(5, (2000, 2)), mask)
    assert a.dtype == torch.int64 and bool(mask.gather(-1, a.unsqueeze(-1)).all())
    assert len(a.unique()) == 5  # uniform over the legal ones, not a fixed choice
    spec = MultiCategoricalSpec([2, 3], (2000, 2, 2))
    mm = torch.cat([_logits_and_mask((2000, 2), 2, 4)[1], _logits_and_mask((2000, 2), 3, 5)[1]], -1)
    b = random_actions(spec, mm)
    assert bool(mm[..., :2].gather(-1, b[..., :1]).all()) and bool(mm[..., 2:].gather(-1, b[..., 1:]).all())


def _specs(b=32, n=3, k=5):
    obs = Composite(agents=Composite(observation=Unbounded((b, n, 6)), action_mask=Binary(k, (b, n, k), dtype=torch.bool),
                                     shape=(b, n)), shape=(b,))
    act = Composite(agents=Composite(action=Categorical(k, (b, n)), shape=(b, n)), shape=(b,))
    return obs, act


def test_masked_policy_acts_legally_stochastic_and_deterministic():
    obs, act = _specs()
    policy = make_policy(obs, act, hidden_sizes=(16,))
    assert ("agents", "action_mask") in policy.in_keys
    td = obs.rand()
    td["agents", "action_mask"] = _logits_and_mask((32, 3), 5, 7)[1]
    for _ in range(20):
        out = policy(td.clone())
        assert bool(td["agents", "action_mask"].gather(-1, out["agents", "action"].unsqueeze(-1)).all())
    with set_interaction_type(InteractionType.DETERMINISTIC):
        out = policy(td.clone())
    logits = out["agents", "logits"].masked_fill(~td["agents", "action_mask"], float("-inf"))
    assert torch.equal(out["agents", "action"], logits.argmax(-1))
    assert ("agents", "action_mask") not in make_policy(obs, act, action_mask=None).in_keys


def test_loss_tensor_plan_reads_the_mask_and_equals_the_tensordict_path():
    obs, act = _specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(16,)), make_critic(obs, hidden_sizes=(16,))
    td = obs.rand()
    td["agents", "action_mask"] = _logits_and_mask((32, 3), 5, 8)[1]
    td = critic(policy(td))
    td["agents", "advantage"], td["agents", "value_target"] = torch.randn(32, 3, 1), torch.randn(32, 3, 1)
    plan, plain = MAPPOLoss(policy, critic), MAPPOLoss(policy, critic, tensor_plan=False)
    assert plan.uses_tensor_plan and not plain.uses_tensor_plan
    a, b = plan(td), plain(td)
    for key in ("loss_objective", "loss_critic", "entropy"):
        torch.testing.assert_close(a[key], b[key])
    assert float(a["kl_approx"]) < 1e-6  # log-probs recomputed under the mask equal the ones stored when acting
    logp, entropy = _direct(td["agents", "logits"], td["agents", "action_mask"])
    torch.testing.assert_close(a["entropy"], entropy.mean())
    unmasked = TensorDict({k: v for k, v in td.items(True, True) if k != ("agents", "action_mask")}, td.batch_size)
    with pytest.raises(KeyError, match="legal-action mask"):  # the mask is an input of the policy
        plan(unmasked)
