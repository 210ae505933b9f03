"""The MAPPO reference implementation's layer conventions, for :class:`~mappo_td.models.recurrent.GRUBody` and the builders.

The reference (on-policy's ``MLPBase``, ``RNNLayer``, ``ACTLayer``) normalizes the input with a LayerNorm
("feature normalization"), follows every hidden layer's activation with a LayerNorm, normalizes the GRU's
output with one more, and initializes every weight orthogonally: hidden layers at the activation's gain, the
GRU at gain 1, the action layer at 0.01, the value layer at 1; every bias at 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def norm_mlp(n_in: int, n_out: int | None, hidden_sizes: Sequence[int], activation: type[nn.Module], *,
             input_norm: bool = True) -> nn.Sequential:
    """``[LayerNorm(n_in)]``, then ``Linear, activation, LayerNorm`` per hidden layer, then ``Linear(n_out)`` (none when ``n_out`` is None).

    Example:
        >>> net = norm_mlp(6, 5, [8, 8], nn.Tanh)
        >>> [type(m).__name__ for m in net], net(torch.zeros(2, 3, 6)).shape
        (['LayerNorm', 'Linear', 'Tanh', 'LayerNorm', 'Linear', 'Tanh', 'LayerNorm', 'Linear'], torch.Size([2, 3, 5]))
    """
    layers: list[nn.Module] = [nn.LayerNorm(n_in)] if input_norm else []
    width = n_in
    for h in hidden_sizes:
        layers += [nn.Linear(width, h), activation(), nn.LayerNorm(h)]
        width = h
    if n_out is not None:
        layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def orthogonal_init(module: nn.Module, activation: type[nn.Module], out_gain: float) -> None:
    """The reference's initialization of a network: every ``Linear`` orthogonal at the activation's gain, except the
    last one (the output layer) at ``out_gain``; GRU cells' weights orthogonal (gain 1); every bias 0. In place.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)); orthogonal_init(net, nn.Tanh, 0.01)
        >>> torch.allclose(net[0].weight @ net[0].weight.T, torch.eye(4) * (5 / 3) ** 2, atol=1e-5), float(net[2].bias.abs().sum())
        (True, 0.0)
    """
    name = {nn.Tanh: "tanh", nn.ReLU: "relu"}.get(activation, "linear")
    gain = nn.init.calculate_gain(name)
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"init='orthogonal' needs Linear layers; {type(module).__name__} has none (share_params=false stacks "
                         "per-agent weights: use init='default' there).")
    with torch.no_grad():
        for m in linears:
            nn.init.orthogonal_(m.weight, gain=out_gain if m is linears[-1] else gain)
            if m.bias is not None:
                m.bias.zero_()
        for m in module.modules():
            if isinstance(m, nn.GRUCell):
                nn.init.orthogonal_(m.weight_ih)
                nn.init.orthogonal_(m.weight_hh)
                m.bias_ih.zero_()
                m.bias_hh.zero_()
