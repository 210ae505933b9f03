"""The MAPPO reference implementation's network layout and initialization (``--preset mappo-paper``): LayerNorm on the
input, MLP with a LayerNorm after each activation, GRU, LayerNorm, Linear; orthogonal weights, zero biases."""

import pytest
import torch
from torch import nn

from mappo_td import TrainConfig
from mappo_td.config import preset
from mappo_td.train import build_learner

SPREAD = {"device": "cpu", "rollouts": 25, "data_chunk_length": 5,
          "env": {"backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": 2, "num_workers": 1, "max_steps": 25,
                  "continuous_actions": False}}


def _learner(**model):
    pytest.importorskip("mpe2")
    d = preset("mappo-paper")
    d.update({k: v for k, v in SPREAD.items()})
    d["model"] = {**d["model"], **model}
    return build_learner(TrainConfig.from_dict(d))


def layer_types(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.modules() if isinstance(m, (nn.Linear, nn.LayerNorm, nn.GRUCell, nn.ReLU, nn.Tanh))]


def test_the_preset_builds_the_references_layout_for_policy_and_critic():
    g = _learner().groups[0]
    want = ["LayerNorm", "Linear", "ReLU", "LayerNorm", "Linear", "ReLU", "LayerNorm", "GRUCell", "LayerNorm", "Linear"]
    assert layer_types(g.policy) == want and layer_types(g.critic) == want
    first = [m for m in g.critic.modules() if isinstance(m, nn.LayerNorm)][0]
    assert first.normalized_shape == (54,)  # the centralized critic normalizes all three agents' observations
    assert [m for m in g.policy.modules() if isinstance(m, nn.Linear)][-1].out_features == 5


def test_orthogonal_init_gains_as_the_reference():
    g = _learner(activation="tanh").groups[0]
    gain = nn.init.calculate_gain("tanh")
    for module, out_gain in ((g.policy, 0.01), (g.critic, 1.0)):
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        for m in linears:
            w = m.weight.detach()
            rows = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            k = out_gain if m is linears[-1] else gain
            torch.testing.assert_close(rows, torch.eye(rows.shape[0]) * k * k, atol=1e-5, rtol=0)
            assert float(m.bias.abs().max()) == 0.0
        cell = next(m for m in module.modules() if isinstance(m, nn.GRUCell))
        torch.testing.assert_close(cell.weight_hh.T @ cell.weight_hh, torch.eye(64), atol=1e-5, rtol=0)
        assert float(cell.bias_ih.abs().max()) == 0.0


def test_the_default_init_and_layout_are_unchanged_without_the_options():
    g = _learner(rnn_encoder=[], layer_norm=False, init="default", hidden_sizes=[64]).groups[0]
    assert layer_types(g.policy) == ["GRUCell", "Linear", "ReLU", "Linear"]
    assert float(g.policy.module[0].module[0].module.cells[0].bias_ih.abs().max()) > 0  # PyTorch's uniform init


@pytest.mark.parametrize("model,match", [
    ({"layer_norm": True, "share_params": False}, r"model.layer_norm needs model.share_params=true"),
    ({"init": "orthogonal", "share_params": False}, r"model.init='orthogonal' needs model.share_params=true"),
    ({"rnn_encoder": [64], "body": "mlp"}, r"model.rnn_encoder is for body='gru'"),
    ({"hidden_sizes": [], "body": "mlp"}, r"model.hidden_sizes must be a non-empty list .* \(empty only with body='gru'"),
])
def test_options_that_do_not_fit_are_refused(model, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict({"model": model})
