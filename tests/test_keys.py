"""One key contract for the loss and GAE: unknown names raise, renames on the loss reach its estimator."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Categorical, Composite, Unbounded

from mappo_td import MAPPOGAE, MAPPOLoss, make_critic, make_policy

NB, N, F = 8, 3, 4


def specs():
    obs = Composite(agents=Composite(observation=Unbounded((NB, N, F)), shape=(NB, N)), shape=(NB,))
    act = Composite(agents=Composite(action=Categorical(4, (NB, N)), shape=(NB, N)), shape=(NB,))
    return obs, act


@pytest.mark.parametrize("cls", ["loss", "gae"])
def test_unknown_key_name_raises_listing_valid_ones(cls):
    obs, act = specs()
    module = MAPPOLoss(make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))) if cls == "loss" else MAPPOGAE()
    with pytest.raises(ValueError, match=r"unknown key name\(s\) \['rewards'\] for (MAPPOLoss|MAPPOGAE).set_keys; valid names: \['action'"):
        module.set_keys(rewards=("agents", "r"))


def test_set_keys_on_the_loss_reaches_its_estimator():
    obs, act = specs()
    loss = MAPPOLoss(make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))).make_value_estimator(gamma=0.9)
    loss.set_keys(reward=("agents", "shaped_reward"), advantage=("agents", "adv"), value_target=("agents", "ret"))
    est = loss.value_estimator
    assert est.tensor_keys.reward == ("agents", "shaped_reward")
    assert est.tensor_keys.advantage == ("agents", "adv") and est.tensor_keys.value_target == ("agents", "ret")
    T = 5
    data = TensorDict({"agents": {"observation": torch.randn(NB, T, N, F)},
                       "next": {"agents": {"observation": torch.randn(NB, T, N, F), "shaped_reward": torch.ones(NB, T, N, 1)},
                                "terminated": torch.zeros(NB, T, 1, dtype=torch.bool), "done": torch.zeros(NB, T, 1, dtype=torch.bool)}},
                      [NB, T])
    loss.value_estimator(data)
    assert ("agents", "adv") in data.keys(True) and ("agents", "ret") in data.keys(True)
    assert ("agents", "advantage") not in data.keys(True)


def test_make_value_estimator_takes_per_agent_gamma_by_name():
    obs, act = specs()
    agents = ["a0", "a1", "a2"]
    loss = MAPPOLoss(make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,)), agents=agents)
    loss.make_value_estimator(gamma={"a0": 0.9, "a1": 0.95, "a2": 0.99}, lmbda={"agents": 0.9})
    torch.testing.assert_close(loss.value_estimator.gamma.flatten(), torch.tensor([0.9, 0.95, 0.99]))
    torch.testing.assert_close(loss.value_estimator.lmbda.flatten(), torch.full((3,), 0.9))
