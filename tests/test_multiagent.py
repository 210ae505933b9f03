"""The shared conventions: broadcasting team signals, per-agent expansion, masked reductions."""

import pytest
import torch

from mappo_td import broadcast_to_agents, masked_mean, per_agent_tensor, standardize_per_agent
from mappo_td.multiagent import masked_std_mean, select_group


@pytest.mark.parametrize("T", [2, 3, 5])  # T == n_agents (3) was taken for a per-agent signal
def test_broadcast_decides_by_number_of_dims(T):
    value = torch.zeros(4, T, 3, 1)
    team = torch.arange(4 * T, dtype=torch.float32).view(4, T, 1)
    out = broadcast_to_agents(team, value)
    assert out.shape == (4, T, 3, 1)
    for i in range(3):
        torch.testing.assert_close(out[..., i, :], team)
    per_agent = torch.randn(4, T, 3, 1)
    assert broadcast_to_agents(per_agent, value) is per_agent


def test_broadcast_rejects_bad_shapes():
    value = torch.zeros(4, 5, 3, 1)
    with pytest.raises(ValueError, match="singleton dimension"):
        broadcast_to_agents(torch.zeros(4, 5, 3), value)
    with pytest.raises(ValueError, match=r"expected team-shared \(4, 5, 1\) or per agent \(4, 5, 3, 1\)"):
        broadcast_to_agents(torch.zeros(4, 5, 2, 1), value)
    with pytest.raises(TypeError, match="per-agent value tensor"):
        broadcast_to_agents(torch.zeros(4, 5, 1), 3)


def test_per_agent_tensor_forms_and_errors():
    agents = ["a0", "a1", "a2"]
    torch.testing.assert_close(per_agent_tensor({"a2": 3.0, "a0": 1.0, "a1": 2.0}, agents, name="x").flatten(), torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(per_agent_tensor({"team": 0.5}, agents, name="x", group="team").flatten(), torch.full((3,), 0.5))
    torch.testing.assert_close(per_agent_tensor([0.1, 0.2, 0.3], agents, name="x").flatten(), torch.tensor([0.1, 0.2, 0.3]))
    assert per_agent_tensor(0.7, None, name="x").shape == ()
    with pytest.raises(ValueError, match=r"x: unknown agent/group name\(s\) \['zz'\]; valid names: \['a0', 'a1', 'a2'\]"):
        per_agent_tensor({"zz": 1.0}, agents, name="x")
    with pytest.raises(ValueError, match=r"no value for agent\(s\) \['a2'\]"):
        per_agent_tensor({"a0": 1.0, "a1": 1.0}, agents, name="x")
    with pytest.raises(ValueError, match="got 2 values for 3 agents"):
        per_agent_tensor([1.0, 2.0], agents, name="x")
    with pytest.raises(ValueError, match=r"gamma must be a finite number in \[0, 1\], got 1.5"):
        per_agent_tensor({"a0": 0.9, "a1": 1.5, "a2": 0.9}, agents, name="gamma", bounds=(0.0, 1.0, True))
    with pytest.raises(ValueError, match="pass agents="):
        per_agent_tensor({"a0": 1.0}, None, name="x")


def test_select_group_checks_run_names_and_cuts_to_the_group():
    names = ["r0", "b0", "b1", "red", "blue"]
    assert select_group({"r0": 1.0, "blue": 2.0}, "blue", ["b0", "b1"], names, name="x") == {"blue": 2.0}
    assert select_group(0.3, "blue", ["b0", "b1"], names, name="x") == 0.3
    with pytest.raises(ValueError, match=r"unknown agent/group name\(s\) \['g9'\]"):
        select_group({"g9": 1.0}, "blue", ["b0", "b1"], names, name="x")
    with pytest.raises(ValueError, match="gives no value for group 'blue'"):
        select_group({"r0": 1.0}, "blue", ["b0", "b1"], names, name="x")


def test_masked_reductions_equal_reductions_over_the_selected_entries():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 3, 1, generator=g)
    mask = torch.rand(6, 5, 3, 1, generator=g) > 0.3
    torch.testing.assert_close(masked_mean(x, mask), x[mask].mean())
    std, mean = masked_std_mean(x, mask, dim=[0, 1, 3])
    out = standardize_per_agent(x, mask)
    for i in range(3):
        sel = x[..., i, :][mask[..., i, :]]
        torch.testing.assert_close(mean[0, 0, i, 0], sel.mean())
        torch.testing.assert_close(std[0, 0, i, 0], sel.std())
        torch.testing.assert_close(out[..., i, :][mask[..., i, :]], (sel - sel.mean()) / (sel.std() + 1e-8))
    # without a mask: exactly torch.std_mean
    s, m = torch.std_mean(x, dim=[0, 1, 3], keepdim=True)
    torch.testing.assert_close(standardize_per_agent(x), (x - m) / (s + 1e-8), rtol=0, atol=0)
