"""Critic builders: centralized (MAPPO, default) or decentralized (IPPO).

=====================  ==================================================  ==================================
mode                   reads                                               writes
=====================  ==================================================  ==================================
centralized, state     root ``"state"`` ``[*B, *S]``                         ``(group, "state_value")``
centralized, no state  every group's observation ``[*B, n_g, *F_g]``          ``[*B, n_agents, 1]``
decentralized          ``(group, observation_key)`` ``[*B, n_agents, *F]``
=====================  ==================================================  ==================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.data import Composite
from torchrl.modules import MLP, MultiAgentMLP

from mappo_td.defaults import BODIES, DEFAULT_HIDDEN_SIZES, DEFAULT_RNN_HIDDEN_SIZE
from mappo_td.keys import NestedKey
from mappo_td.models.bodies import check_user_network
from mappo_td.models.inputs import ConcatFlat, group_spec, n_features, observation_input, observation_leaves, with_preprocessor
from mappo_td.models.recurrent import GRUBody, body_module, gru_module


class CentralizedCritic(nn.Module):
    """Value of every agent of a group from one global input (state, or all observations).

    The global input is flattened (then passed through ``preprocessor``, if any, e.g. a
    RunningStandardScaler), shared by every agent of the group, and fed to a
    :class:`~torchrl.modules.MultiAgentMLP` (shared or per-agent parameters), or to ``network``
    (yours: ``[..., n_inputs] -> [..., 1]``, one value shared by the group's agents).

    Example:
        >>> critic = CentralizedCritic([1, 2], n_inputs=3 + 2 * 4, n_agents=2, hidden_sizes=(8,))
        >>> critic(torch.zeros(5, 3), torch.zeros(5, 2, 4)).shape
        torch.Size([5, 2, 1])
    """

    def __init__(
        self,
        event_ndims: Sequence[int],
        n_inputs: int,
        n_agents: int,
        *,
        share_params: bool = True,
        hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
        activation: type[nn.Module] = nn.Tanh,
        preprocessor: nn.Module | None = None,
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.concat = ConcatFlat(event_ndims)
        self.preprocessor = preprocessor if preprocessor is not None else nn.Identity()
        self.n_agents, self.share_params = n_agents, share_params or network is not None
        if network is not None:  # the caller's [..., n_inputs] -> [..., 1], one value for the team
            self.mlp = network
        elif share_params:  # one value for the team, computed once and shared by every agent
            self.mlp = MLP(in_features=n_inputs, out_features=1, depth=len(hidden_sizes), num_cells=list(hidden_sizes),
                           activation_class=activation)
        else:  # each agent's own network on the same global input
            self.mlp = MultiAgentMLP(n_inputs, 1, n_agents, centralized=False, share_params=False,
                                     depth=len(hidden_sizes), num_cells=list(hidden_sizes), activation_class=activation)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = self.preprocessor(self.concat(*inputs))
        if self.share_params:
            v = self.mlp(x).unsqueeze(-2)
            return v.expand(*v.shape[:-2], self.n_agents, 1)
        return self.mlp(x.unsqueeze(-2).expand(*x.shape[:-1], self.n_agents, x.shape[-1]))


def centralized_inputs(observation_spec: Composite, state_key: NestedKey | None = "state",
                       observation_key: NestedKey = "observation") -> tuple[list[NestedKey], list[int]]:
    """What a centralized critic reads, and each input's event dims: the root ``state_key`` when the spec has it,
    else every group's observation leaves (groups sorted by name; the agent dim counts as an event dim).

    Example:
        >>> from torchrl.data import Unbounded
        >>> spec = Composite(b=Composite(observation=Unbounded((8, 1, 2)), shape=(8, 1)),
        ...                  a=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> centralized_inputs(spec)
        ([('a', 'observation'), ('b', 'observation')], [2, 2])
    """
    root_ndim = len(observation_spec.shape)
    if state_key is not None and state_key in observation_spec.keys(include_nested=True):
        leaves = observation_leaves(observation_spec, state_key, root_ndim)
        return [k for k, _ in leaves], [len(s) for _, s in leaves]
    in_keys, ndims = [], []
    for g in sorted(k for k in observation_spec.keys() if isinstance(observation_spec[k], Composite)):
        for k, ev in observation_leaves(observation_spec[g], observation_key, len(observation_spec[g].shape)):
            in_keys.append((g, *k))
            ndims.append(len(ev) + 1)  # + the agent dim
    return in_keys, ndims


def critic_input_size(observation_spec: Composite, group: str = "agents", *, centralized: bool = True,
                      state_key: NestedKey | None = "state", observation_key: NestedKey = "observation") -> int:
    """Size of the flat input of ``group``'s value network: the whole state (or every agent's observation) when
    centralized, the agent's own observation when not.

    Example:
        >>> from torchrl.data import Unbounded
        >>> spec = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> critic_input_size(spec), critic_input_size(spec, centralized=False)
        (18, 6)
    """
    if not centralized:
        return n_features(observation_spec, group, observation_key)
    return _flat_size(observation_spec, centralized_inputs(observation_spec, state_key, observation_key)[0])


def _flat_size(observation_spec: Composite, in_keys: list[NestedKey]) -> int:
    """Features of ``in_keys`` together, past the spec's batch dims (the agent dim included)."""
    return sum(int(observation_spec[k].shape[len(observation_spec.shape):].numel()) for k in in_keys)


def make_critic(
    observation_spec: Composite,
    group: str = "agents",
    *,
    centralized: bool = True,
    share_params: bool = True,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    activation: type[nn.Module] = nn.Tanh,
    state_key: NestedKey | None = "state",
    observation_key: NestedKey = "observation",
    input_preprocessor: nn.Module | None = None,
    body: str = "mlp",
    rnn_hidden_size: int = DEFAULT_RNN_HIDDEN_SIZE,
    rnn_layers: int = 1,
    rnn_encoder: Sequence[int] = (),
    layer_norm: bool = False,
    network: nn.Module | None = None,
    device: torch.device | str | None = None,
) -> TensorDictModule | TensorDictSequential:
    """Build the value function of one agent group, writing ``(group, "state_value")``.

    Centralized (the default): reads the root ``state_key`` when the spec has it,
    else the observations of every agent of every group (sorted by group name).
    Decentralized (``centralized=False``, IPPO): each agent's own observation.
    ``input_preprocessor`` (e.g. a RunningStandardScaler) is applied to the flat input.
    ``body="gru"``: a GRU (state ``(group, "rnn_state_critic")``, see :mod:`mappo_td.models.recurrent`),
    then the MLP as head; a centralized one with shared parameters keeps one team state (``rnn_encoder``, ``layer_norm``:
    the MAPPO reference's layout, as in :func:`~mappo_td.make_policy`).
    ``network``: your own network in place of the MLP (``body="mlp"``): the flat input ``[..., n_in]``
    (:func:`critic_input_size`) to ``[..., 1]``.

    Example:
        >>> from torchrl.data import Unbounded
        >>> spec = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> critic = make_critic(spec, hidden_sizes=(16,))
        >>> critic.in_keys, critic(spec.rand())["agents", "state_value"].shape
        ([('agents', 'observation')], torch.Size([8, 3, 1]))
        >>> make_critic(spec, network=nn.Linear(critic_input_size(spec), 1))(spec.rand())["agents", "state_value"].shape
        torch.Size([8, 3, 1])
    """
    n_agents = group_spec(observation_spec, group, "observation").shape[-1]
    body_kwargs = {"share_params": share_params, "hidden_sizes": hidden_sizes, "activation": activation, "rnn_hidden_size": rnn_hidden_size,
                   "rnn_layers": rnn_layers, "rnn_encoder": rnn_encoder, "layer_norm": layer_norm}
    if centralized:
        critic = _centralized_critic(observation_spec, group, n_agents, state_key, observation_key, input_preprocessor, body, network, **body_kwargs)
    else:
        pre, in_key, n_in = observation_input(observation_spec, group, observation_key)
        pre, in_key = with_preprocessor(pre, in_key, group, input_preprocessor, "critic_input_normalized")
        critic = TensorDictSequential(*pre, body_module(body, n_in, 1, n_agents, in_key=in_key, out_key=(group, "state_value"),
                                                        state_key=(group, "rnn_state_critic"), network=network, **body_kwargs))
    return critic.to(device) if device is not None else critic


def _centralized_critic(observation_spec: Composite, group: str, n_agents: int, state_key: NestedKey | None, observation_key: NestedKey,
                        preprocessor: nn.Module | None, body: str, network: nn.Module | None, *, share_params: bool,
                        hidden_sizes: Sequence[int], activation: type[nn.Module], rnn_hidden_size: int, rnn_layers: int,
                        rnn_encoder: Sequence[int], layer_norm: bool) -> TensorDictModule:
    """The value of every agent of ``group`` from the global input: a :class:`CentralizedCritic`, or a GRU on it."""
    check_user_network(network, body)
    in_keys, ndims = centralized_inputs(observation_spec, state_key, observation_key)
    n_in = _flat_size(observation_spec, in_keys)
    if body == "gru":
        gru = GRUBody(n_in, 1, n_agents, hidden_size=rnn_hidden_size, layers=rnn_layers, share_params=share_params, team_input=True,
                      hidden_sizes=hidden_sizes, activation=activation, preprocessor=preprocessor, input_ndims=ndims,
                      encoder_sizes=rnn_encoder, layer_norm=layer_norm)
        return gru_module(gru, in_keys, (group, "state_value"), (group, "rnn_state_critic"))
    if body != "mlp":
        raise ValueError(f"unknown body {body!r}; use one of {BODIES}.")
    net = CentralizedCritic(ndims, n_in, n_agents, share_params=share_params, hidden_sizes=hidden_sizes, activation=activation,
                            preprocessor=preprocessor, network=network)
    return TensorDictModule(net, in_keys=in_keys, out_keys=[(group, "state_value")])
