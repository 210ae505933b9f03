"""Names changed for one name per concept keep working, with a DeprecationWarning: RunningStandardizer (now
RunningStandardScaler, skrl's and the configuration's name) and MAPPOLoss's *_active_masks (now *_alive_mask)."""

import importlib

import pytest
import torch

import mappo_td
from mappo_td import MAPPOLoss, RunningStandardScaler, make_critic, make_policy
from tests.objectives.test_loss import NB, N, batch, specs


@pytest.mark.parametrize("where", ["mappo_td", "mappo_td.objectives", "mappo_td.objectives.value_norm"])
def test_running_standardizer_is_a_deprecated_alias(where):
    with pytest.warns(DeprecationWarning, match="use RunningStandardScaler"):
        alias = importlib.import_module(where).RunningStandardizer
    assert alias is RunningStandardScaler
    assert "RunningStandardScaler" in mappo_td.__all__ and "RunningStandardizer" not in mappo_td.__all__


def test_active_masks_keywords_are_deprecated_aliases_of_alive_mask():
    obs, act = specs()
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    td = batch(policy, critic, obs)
    td["agents", "mask"] = torch.rand(NB, N, generator=torch.Generator().manual_seed(0)) < 0.6
    with pytest.warns(DeprecationWarning, match=r"policy_active_masks=\.\.\.\) is deprecated: use policy_alive_mask"):
        old = MAPPOLoss(policy, critic, policy_active_masks=False, value_active_masks=False)
    new = MAPPOLoss(policy, critic, policy_alive_mask=False, value_alive_mask=False)
    assert (old.policy_alive_mask, old.value_alive_mask) == (False, False)
    with pytest.warns(DeprecationWarning, match="use value_alive_mask"):
        assert old.value_active_masks is False
    a, b = old(td.clone()), new(td.clone())
    for k in a.keys():
        torch.testing.assert_close(a[k], b[k])
    with pytest.raises(TypeError, match="unexpected keyword argument 'policy_active_mask'"):
        MAPPOLoss(policy, critic, policy_active_mask=False)
