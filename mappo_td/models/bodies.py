"""The MLP body of agent groups: per-agent MLPs with shared or separate parameters, and the activations by name.

The recurrent (GRU) body is :mod:`mappo_td.models.recurrent`, whose :func:`~mappo_td.models.recurrent.body_module`
gives the builders either body.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torchrl.modules import MLP, MultiAgentMLP

from mappo_td.defaults import DEFAULT_HIDDEN_SIZES

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def activation_class(name: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class for a config name (``"tanh"``, ``"relu"``, ``"elu"``, ``"silu"``), or a class as is.

    Example:
        >>> activation_class("relu")
        <class 'torch.nn.modules.activation.ReLU'>
    """
    if isinstance(name, type):
        return name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; use one of {sorted(ACTIVATIONS)}.")
    return ACTIVATIONS[name]


def agent_mlp(n_in: int, n_out: int, n_agents: int, *, share_params: bool, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
              activation: type[nn.Module] = nn.Tanh, **kwargs) -> nn.Module:
    """A decentralized per-agent MLP on ``[*B, n_agents, n_in]``.

    Shared parameters: TorchRL's ``MLP`` on the last dim (what ``MultiAgentMLP(share_params=True,
    centralized=False)`` computes, without its per-call parameter swap); separate: ``MultiAgentMLP``.

    Example:
        >>> import torch
        >>> agent_mlp(4, 2, 3, share_params=True, hidden_sizes=(8,))(torch.zeros(5, 3, 4)).shape
        torch.Size([5, 3, 2])
    """
    if share_params:
        return MLP(in_features=n_in, out_features=n_out, depth=len(hidden_sizes), num_cells=list(hidden_sizes),
                   activation_class=activation, **kwargs)
    return MultiAgentMLP(n_in, n_out, n_agents, centralized=False, share_params=False, depth=len(hidden_sizes),
                         num_cells=list(hidden_sizes), activation_class=activation, **kwargs)


def check_user_network(network: nn.Module | None, body: str) -> None:
    """``network=`` (the caller's own network) replaces the MLP: an error with any other body.

    Example:
        >>> check_user_network(nn.Linear(2, 2), "gru")
        Traceback (most recent call last):
        ...
        ValueError: network= replaces the MLP body; body='gru' cannot take a user network (use body='mlp').
    """
    if network is not None and body != "mlp":
        raise ValueError(f"network= replaces the MLP body; body={body!r} cannot take a user network (use body='mlp').")
