"""Centralized (MAPPO) and decentralized (IPPO) critics: what each value reads."""

import pytest
import torch
from torchrl.data import Composite, Unbounded

from mappo_td import make_critic
from tests.models.test_policy import NB, N, obs_spec


def _values(critic, td):
    return critic(td.clone())["agents", "state_value"]


@pytest.mark.parametrize("share_params", [True, False])
def test_centralized_vs_decentralized_critic(share_params):
    obs = obs_spec()
    x = obs.rand()
    y = x.clone()
    y["agents", "observation"][:, 0] += 1.0  # perturb agent 0 only
    central = make_critic(obs, hidden_sizes=(16,), share_params=share_params)
    local = make_critic(obs, centralized=False, hidden_sizes=(16,), share_params=share_params)
    dc, dl = (_values(central, y) - _values(central, x)).abs(), (_values(local, y) - _values(local, x)).abs()
    assert _values(central, x).shape == (NB, N, 1)
    assert (dc > 0).all(), "centralized critic: every agent's value must see agent 0's observation"
    assert (dl[:, 0] > 0).all() and (dl[:, 1:] == 0).all(), "decentralized critic: only agent 0's value changes"


def test_critic_reads_state_when_present_and_all_groups_otherwise():
    obs = obs_spec(state=True)
    critic = make_critic(obs, hidden_sizes=(16,))
    assert critic.in_keys == ["state"]
    x = obs.rand()
    y = x.clone()
    y["agents", "observation"] += 1.0
    torch.testing.assert_close(_values(critic, x), _values(critic, y))
    two = Composite(
        red=Composite(observation=Unbounded((NB, 2, 4)), shape=(NB, 2)),
        blue=Composite(observation=Unbounded((NB, 3, 6)), shape=(NB, 3)),
        shape=(NB,),
    )
    critic = make_critic(two, "red", hidden_sizes=(16,))
    assert critic.in_keys == [("blue", "observation"), ("red", "observation")]
    x = two.rand()
    y = x.clone()
    y["blue", "observation"][:, 2] += 1.0
    assert (critic(y)["red", "state_value"] != critic(x)["red", "state_value"]).all()
