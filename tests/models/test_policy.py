"""Policies for every action space, parameter sharing, Dict observations, deterministic mode, errors."""

import pytest
import torch
from tensordict.nn import InteractionType, set_interaction_type
from torch import distributions as D
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, OneHot, Unbounded

from mappo_td import make_policy, make_shared_actor_critic
from mappo_td.models.inputs import observation_input

NB, N, F = 64, 3, 5
LOW, HIGH = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 2.0])


def obs_spec(dict_obs=False, state=False):
    o = Composite(b=Unbounded((NB, N, 2, 2)), a=Unbounded((NB, N, 3)), shape=(NB, N)) if dict_obs else Unbounded((NB, N, F))
    spec = Composite(agents=Composite(observation=o, shape=(NB, N)), shape=(NB,))
    if state:
        spec["state"] = Unbounded((NB, 7))
    return spec


def act_spec(kind):
    a = {
        "categorical": lambda: Categorical(4, (NB, N)),
        "multicategorical": lambda: MultiCategorical([2, 3], shape=(NB, N, 2)),
        "box": lambda: Bounded(LOW.expand(NB, N, 2), HIGH.expand(NB, N, 2), (NB, N, 2)),
        "unbounded": lambda: Unbounded((NB, N, 2)),
    }[kind]()
    return Composite(agents=Composite(action=a, shape=(NB, N)), shape=(NB,))


def reference_dist(kind, td, tanh):
    g = td["agents"]
    if kind == "categorical":
        return D.Categorical(logits=g["logits"])
    if kind == "multicategorical":
        a, b = g["logits"].split([2, 3], -1)
        return a, b
    if kind == "mvn":
        return D.MultivariateNormal(g["loc"], scale_tril=g["scale_tril"])
    base = D.Normal(g["loc"], g["scale"])
    if tanh:
        mid, half = (HIGH + LOW) / 2, (HIGH - LOW) / 2
        base = D.TransformedDistribution(base, [D.TanhTransform(), D.AffineTransform(mid, half)])
    return D.Independent(base, 1)


CASES = [
    ("categorical", {}, "categorical"),
    ("multicategorical", {}, "multicategorical"),
    ("box", {}, "tanh_gaussian"),
    ("box", {"state_dependent_std": True}, "tanh_gaussian_state_dependent"),
    ("unbounded", {}, "gaussian"),
    ("unbounded", {"state_dependent_std": True}, "gaussian_state_dependent"),
    ("unbounded", {"distribution": "multivariate_gaussian"}, "mvn"),
]


@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("space,kwargs,name", CASES, ids=[c[2] for c in CASES])
def test_samples_log_probs_and_entropies(space, kwargs, name, share_params):
    obs, act = obs_spec(), act_spec(space)
    policy = make_policy(obs, act, hidden_sizes=(16,), share_params=share_params, **kwargs)
    td = policy(obs.rand())
    action = td["agents", "action"]
    assert act["agents", "action"].is_in(action), f"{name}: sample outside the action spec"
    assert td["agents", "action_log_prob"].shape == (NB, N)
    kind = "mvn" if name == "mvn" else space
    ref = reference_dist(kind, td, tanh=space == "box")
    dist = policy.get_dist(td)
    if kind == "multicategorical":
        a, b = ref
        expected_lp = D.Categorical(logits=a).log_prob(action[..., 0]) + D.Categorical(logits=b).log_prob(action[..., 1])
        expected_ent = D.Categorical(logits=a).entropy() + D.Categorical(logits=b).entropy()
    else:
        expected_lp = ref.log_prob(action)
        expected_ent = None if space == "box" else ref.entropy()  # tanh-squashed: no closed-form entropy
    torch.testing.assert_close(td["agents", "action_log_prob"], expected_lp, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(dist.log_prob(action), expected_lp, atol=1e-4, rtol=1e-4)
    if expected_ent is not None:
        torch.testing.assert_close(dist.entropy(), expected_ent)


@pytest.mark.parametrize("space", ["categorical", "multicategorical", "box", "unbounded"])
def test_deterministic_mode(space):
    obs, act = obs_spec(), act_spec(space)
    policy = make_policy(obs, act, hidden_sizes=(16,))
    with set_interaction_type(InteractionType.DETERMINISTIC):
        td = policy(obs.rand())
    g = td["agents"]
    if space == "categorical":
        expected = g["logits"].argmax(-1)
    elif space == "multicategorical":
        a, b = g["logits"].split([2, 3], -1)
        expected = torch.stack([a.argmax(-1), b.argmax(-1)], -1)
    elif space == "box":
        expected = LOW + (HIGH - LOW) * (torch.tanh(g["loc"]) + 1) / 2
    else:
        expected = g["loc"]
    torch.testing.assert_close(g["action"], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("space", ["categorical", "box"])
def test_parameter_sharing(space):
    obs, act = obs_spec(), act_spec(space)
    x = obs.rand()
    x["agents", "observation"] = x["agents", "observation"][:, :1].expand(NB, N, F).clone()  # same obs for every agent
    key = "logits" if space == "categorical" else "loc"
    shared = make_policy(obs, act, hidden_sizes=(16,), share_params=True)
    separate = make_policy(obs, act, hidden_sizes=(16,), share_params=False)
    out_s, out_p = shared(x.clone())["agents", key], separate(x.clone())["agents", key]
    torch.testing.assert_close(out_s[:, 0], out_s[:, 1])
    assert not torch.allclose(out_p[:, 0], out_p[:, 1])
    n_shared = sum(p.numel() for p in shared.parameters())
    n_separate = sum(p.numel() for p in separate.parameters())
    assert n_separate == N * n_shared


def test_dict_observations_flatten_in_sorted_order():
    obs = obs_spec(dict_obs=True)
    mods, key, n = observation_input(obs, "agents")
    assert n == 3 + 4 and key == ("agents", "observation_vec")
    x = obs.rand()
    flat = mods[0](x.clone())[key]
    torch.testing.assert_close(flat, torch.cat([x["agents", "observation", "a"], x["agents", "observation", "b"].flatten(-2)], -1))
    td = make_policy(obs, act_spec("categorical"), hidden_sizes=(8,))(x)
    assert td["agents", "action"].shape == (NB, N)


def test_shared_actor_critic():
    obs, act = obs_spec(), act_spec("categorical")
    op = make_shared_actor_critic(obs, act, hidden_sizes=(16, 16))
    td = op.get_policy_operator()(obs.rand())
    assert td["agents", "action"].shape == (NB, N)
    trunk = {id(p) for p in op.module[0].parameters()}
    pol = {id(p) for p in op.get_policy_operator().parameters()}
    val = {id(p) for p in op.get_value_operator().parameters()}
    assert trunk <= pol and trunk <= val, "the trunk must be shared by both heads"
    with pytest.raises(ValueError, match="shared policy-value model needs one input"):
        make_shared_actor_critic(obs, act, centralized=True)


def test_unsupported_spaces_raise():
    obs = obs_spec()
    onehot = Composite(agents=Composite(action=OneHot(4, (NB, N, 4)), shape=(NB, N)), shape=(NB,))
    with pytest.raises(TypeError, match="categorical_actions=True"):
        make_policy(obs, onehot)
    binary = Composite(agents=Composite(action=Binary(3, (NB, N, 3)), shape=(NB, N)), shape=(NB,))
    with pytest.raises(TypeError, match="unsupported action spec"):
        make_policy(obs, binary)
    with pytest.raises(ValueError, match="tanh_squash=True needs a bounded"):
        make_policy(obs, act_spec("unbounded"), tanh_squash=True)
    with pytest.raises(KeyError, match="groups present"):
        make_policy(obs, act_spec("categorical"), group="nobody")
