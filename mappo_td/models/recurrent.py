"""The recurrent (GRU) body of agent groups: per-agent hidden states, reset at ``is_init``, step or sequence mode.

==========================  ===================================  ====================================
entry                        step mode (collection)               sequence mode (training)
==========================  ===================================  ====================================
input                        ``[*B, n_agents, F]`` (team: ``[*B, F]``)   ``[*B, T, n_agents, F]`` (``[*B, T, F]``)
``"is_init"`` (InitTracker)  ``[*B, 1]``                          ``[*B, T, 1]``
``(group, state)`` in        ``[*B, n_agents, layers, H]``        ``[*B, T, n_agents, layers, H]``: only
                                                                  step 0's is read (the chunk's first)
output                       ``[*B, n_agents, n_out]``            ``[*B, T, n_agents, n_out]``
``("next", group, state)``   the state after the step             the state after each step
==========================  ===================================  ====================================

The mode is TorchRL's: ``with torchrl.modules.set_recurrent_mode(True)`` selects
sequence mode (time is the last batch dim), as for TorchRL's own ``GRUModule``. Both
modes run the same cell on the same steps, so they agree exactly; ``is_init`` zeroes the
state before the step it marks, inside a sequence too. The cell is ``torch.nn.GRUCell``
(one per layer; with separate parameters :class:`AgentGRUCell`, the same equations with
weights stacked per agent): ``torch.compile`` traces it whole, where it skips ``torch.nn.GRU``
(``benchmarks/RESULTS.md``, "GRU cell"). An MLP head follows the GRU, as in the reference.
:func:`make_tensordict_primer` and :func:`with_recurrent_state` make an environment carry the states.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Composite, Unbounded
from torchrl.envs import EnvBase, InitTracker, TensorDictPrimer
from torchrl.modules import MLP, recurrent_mode

from mappo_td.defaults import BODIES, DEFAULT_HIDDEN_SIZES, DEFAULT_RNN_HIDDEN_SIZE
from mappo_td.keys import NestedKey
from mappo_td.models.bodies import agent_mlp, check_user_network
from mappo_td.models.inputs import ConcatFlat
from mappo_td.models.layers import norm_mlp
from mappo_td.transforms import with_transforms

IS_INIT = "is_init"  # TorchRL's InitTracker key: True at the first step of an episode


class AgentGRUCell(nn.Module):
    """``n_agents`` GRU cells with their own parameters, stacked ``[n_agents, ...]`` (as per-agent optimization needs)
    and run in one batched matmul: ``torch.nn.GRUCell``'s equations and initialization, agent by agent.

    Example:
        >>> cell = AgentGRUCell(4, 8, n_agents=3)
        >>> cell(torch.zeros(5, 3, 4), torch.zeros(5, 3, 8)).shape, cell.weight_ih.shape
        (torch.Size([5, 3, 8]), torch.Size([3, 24, 4]))
    """

    def __init__(self, input_size: int, hidden_size: int, n_agents: int) -> None:
        super().__init__()
        bound = hidden_size ** -0.5
        self.weight_ih = nn.Parameter(torch.empty(n_agents, 3 * hidden_size, input_size).uniform_(-bound, bound))
        self.weight_hh = nn.Parameter(torch.empty(n_agents, 3 * hidden_size, hidden_size).uniform_(-bound, bound))
        self.bias_ih = nn.Parameter(torch.empty(n_agents, 3 * hidden_size).uniform_(-bound, bound))
        self.bias_hh = nn.Parameter(torch.empty(n_agents, 3 * hidden_size).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``x`` ``[*B, n_agents, input_size]``, ``h`` ``[*B, n_agents, hidden_size]`` -> the new ``h``."""
        gi = torch.einsum("...ni,nhi->...nh", x, self.weight_ih) + self.bias_ih
        gh = torch.einsum("...ni,nhi->...nh", h, self.weight_hh) + self.bias_hh
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)  # (1 - z) * n + z * h


def _gru_layers(n_in: int, hidden_size: int, layers: int, n_agents: int | None = None) -> nn.ModuleList:
    """``layers`` cells: ``torch.nn.GRUCell`` (shared), or :class:`AgentGRUCell` (one set of parameters per agent)."""
    def cell(i: int) -> nn.Module:
        n = n_in if i == 0 else hidden_size
        return nn.GRUCell(n, hidden_size) if n_agents is None else AgentGRUCell(n, hidden_size, n_agents)
    return nn.ModuleList(cell(i) for i in range(layers))


class GRUBody(nn.Module):
    """GRU layers, then an MLP head, for the ``n_agents`` agents of a group (see the module docstring for shapes).

    Args:
        n_in: input features (per agent; with ``team_input`` the one global input).
        n_out: output features per agent.
        n_agents: agents of the group.
        hidden_size, layers: the GRU's state size and depth (the state is ``[..., n_agents, layers, hidden_size]``).
        share_params: one GRU and head for all agents (else one each).
        team_input: the input has no agent dim (a centralized critic's global state): with
            ``share_params`` it runs once and every agent gets the result.
        hidden_sizes, activation: the MLP head after the GRU.
        preprocessor: applied to the input first (e.g. a RunningStandardScaler).
        input_ndims: several inputs, flattened by these trailing dims and concatenated first (a centralized critic's).
        encoder_sizes: MLP layers before the GRU (the MAPPO reference's layout; ``hidden_sizes`` ``[]`` then makes the
            head one Linear); ``layer_norm``: the reference's LayerNorms (``norm_mlp``).

    Example:
        >>> body = GRUBody(4, 2, 3, hidden_size=8)
        >>> h = torch.zeros(5, 3, 1, 8); x = torch.randn(5, 3, 4); first = torch.ones(5, 1, dtype=torch.bool)
        >>> y, h_next = body(x, first, h)
        >>> y.shape, h_next.shape
        (torch.Size([5, 3, 2]), torch.Size([5, 3, 1, 8]))
    """

    def __init__(self, n_in: int, n_out: int, n_agents: int, *, hidden_size: int = DEFAULT_RNN_HIDDEN_SIZE, layers: int = 1, share_params: bool = True,
                 team_input: bool = False, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES, activation: type[nn.Module] = nn.Tanh,
                 preprocessor: nn.Module | None = None, input_ndims: Sequence[int] | None = None, encoder_sizes: Sequence[int] = (),
                 layer_norm: bool = False) -> None:
        super().__init__()
        self.concat = ConcatFlat(input_ndims) if input_ndims is not None else None
        self.n_agents, self.hidden_size, self.layers = n_agents, hidden_size, layers
        self.share_params, self.team_input = share_params, team_input
        if (encoder_sizes or layer_norm) and not share_params:
            raise ValueError("model.rnn_encoder and model.layer_norm need share_params=true (one network for the group's agents).")
        pre = [preprocessor] if preprocessor is not None else []
        if encoder_sizes or layer_norm:  # the reference's layout: [LayerNorm], MLP, then the GRU
            pre.append(norm_mlp(n_in, None, encoder_sizes, activation, input_norm=layer_norm) if layer_norm else
                       MLP(in_features=n_in, out_features=encoder_sizes[-1], depth=len(encoder_sizes) - 1,
                           num_cells=list(encoder_sizes[:-1]), activation_class=activation, activate_last_layer=True))
            n_in = encoder_sizes[-1] if encoder_sizes else n_in
        self.preprocessor = nn.Sequential(*pre) if len(pre) > 1 else (pre[0] if pre else nn.Identity())
        self.cells = _gru_layers(n_in, hidden_size, layers, None if share_params else n_agents)
        if layer_norm:  # the GRU's output normalized, then the head (the reference: a Linear)
            self.head = norm_mlp(hidden_size, n_out, hidden_sizes, activation)
        elif share_params and team_input:
            self.head = MLP(in_features=hidden_size, out_features=n_out, depth=len(hidden_sizes), num_cells=list(hidden_sizes),
                            activation_class=activation)
        else:
            self.head = agent_mlp(hidden_size, n_out, n_agents, share_params=share_params, hidden_sizes=hidden_sizes,
                                  activation=activation)

    @property
    def state_shape(self) -> torch.Size:
        """The per-env shape of the hidden state, ``[n_agents, layers, hidden_size]``."""
        return torch.Size([self.n_agents, self.layers, self.hidden_size])

    def _units(self, x: torch.Tensor) -> torch.Tensor:
        """``[*B, U, F]``: U = 1 (a team input run once) or n_agents."""
        if not self.team_input:
            return x
        x = x.unsqueeze(-2)
        return x if self.share_params else x.expand(*x.shape[:-2], self.n_agents, x.shape[-1])

    def _cell(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: x ``[*B, U, F]``, h ``[*B, U, L, H]`` -> top output ``[*B, U, H]``, new state ``[*B, U, L, H]``."""
        lead, u = x.shape[:-2], x.shape[-2]
        if self.share_params:  # the units (agents) go into the batch of torch.nn.GRUCell
            inp, h = x.reshape(-1, x.shape[-1]), h.reshape(-1, self.layers, self.hidden_size)
        else:
            inp = x
        new = []
        for layer, cell in enumerate(self.cells):
            inp = cell(inp, h[..., layer, :])
            new.append(inp)
        return inp.reshape(*lead, u, self.hidden_size), torch.stack(new, -2).reshape(*lead, u, self.layers, self.hidden_size)

    def _step(self, x: torch.Tensor, is_init: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the full state ``[*B, n, L, H]``: the output before the head ``[*B, n, H]`` and the new state."""
        keep = (~is_init.bool()).to(h.dtype)
        keep = keep[..., None, None] if keep.ndim == h.ndim - 2 else keep[..., None]  # [*B, 1] -> [*B,1,1,1]; [*B, n, 1] -> [*B,n,1,1]
        h = h * keep
        x = self._units(x)
        if self.team_input and self.share_params:  # one state for the team: every agent holds the same copy
            y, h1 = self._cell(x, h[..., :1, :, :])
            return y, h1.expand(*h1.shape[:-3], self.n_agents, self.layers, self.hidden_size).contiguous()  # written in place later
        return self._cell(x, h)

    def _out(self, y: torch.Tensor) -> torch.Tensor:
        if self.team_input and self.share_params:
            out = self.head(y.squeeze(-2))
            return out.unsqueeze(-2).expand(*out.shape[:-1], self.n_agents, out.shape[-1])
        return self.head(y)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input(s), is_init, state)`` -> ``(output, next state)`` in step mode, or over the sequence in recurrent mode."""
        *xs, is_init, h = inputs
        if h.shape[-3:] != self.state_shape:
            raise ValueError(f"the recurrent state has shape {tuple(h.shape)}; it must end in {tuple(self.state_shape)} "
                             "([n_agents, layers, hidden_size]): build the env's primer from this model (make_tensordict_primer).")
        x = self.preprocessor(self.concat(*xs) if self.concat is not None else xs[0])
        if not recurrent_mode():
            y, h = self._step(x, is_init, h)
            return self._out(y), h
        t_dim = h.ndim - 4  # h is [*B, T, n, L, H]
        if t_dim < 1:
            raise ValueError(f"sequence mode (set_recurrent_mode(True)) needs a time dim: the state is [*B, T, n_agents, layers, H], "
                             f"got {tuple(h.shape)}; run single steps outside set_recurrent_mode(True).")
        state = h.select(t_dim, 0)
        ys, hs = [], []
        for x_t, init_t in zip(x.unbind(t_dim), is_init.unbind(t_dim)):
            y, state = self._step(x_t, init_t, state)
            ys.append(y)
            hs.append(state)
        return self._out(torch.stack(ys, t_dim)), torch.stack(hs, t_dim)


def gru_module(body: GRUBody, in_key: NestedKey | list[NestedKey], out_key: NestedKey, state_key: NestedKey) -> TensorDictModule:
    """``body`` as a ``TensorDictModule``: reads ``in_key`` (or a list), ``"is_init"`` and ``state_key``; writes ``out_key`` and ``("next", *state_key)``.

    Example:
        >>> m = gru_module(GRUBody(4, 2, 3, hidden_size=8), ("agents", "observation"), ("agents", "logits"), ("agents", "rnn_state"))
        >>> m.in_keys, m.out_keys[1]
        ([('agents', 'observation'), 'is_init', ('agents', 'rnn_state')], ('next', 'agents', 'rnn_state'))
    """
    state_key = (state_key,) if isinstance(state_key, str) else tuple(state_key)
    in_keys = list(in_key) if isinstance(in_key, list) else [in_key]
    module = TensorDictModule(body, in_keys=[*in_keys, IS_INIT, state_key], out_keys=[out_key, ("next", *state_key)])
    module.state_key = state_key
    return module


def recurrent_states(*modules: nn.Module) -> dict[tuple[str, ...], torch.Size]:
    """``{state key: per-env shape}`` of every GRU body inside ``modules`` (built by :func:`gru_module`).

    Example:
        >>> m = gru_module(GRUBody(4, 2, 3, hidden_size=8, layers=2), "x", "y", ("agents", "rnn_state"))
        >>> recurrent_states(m)
        {('agents', 'rnn_state'): torch.Size([3, 2, 8])}
    """
    out = {}
    for module in modules:
        for sub in module.modules():
            if isinstance(sub, TensorDictModule) and isinstance(sub.module, GRUBody) and hasattr(sub, "state_key"):
                out[sub.state_key] = sub.module.state_shape
    return out


def make_tensordict_primer(*modules: nn.Module, batch_size: Sequence[int] = (), reset_key: NestedKey | None = None) -> TensorDictPrimer:
    """A TorchRL ``TensorDictPrimer`` giving every recurrent state of ``modules`` zeros at reset, for envs of ``batch_size``.

    ``reset_key``: which of the env's reset keys marks a reset (needed when it has several, e.g. PettingZoo's
    root and per-group ``"_reset"``: the root one).

    Example:
        >>> m = gru_module(GRUBody(4, 2, 3, hidden_size=8), "x", "y", ("agents", "rnn_state"))
        >>> make_tensordict_primer(m, batch_size=(6,)).primers["agents", "rnn_state"].shape
        torch.Size([6, 3, 1, 8])
    """
    states = recurrent_states(*modules)
    if not states:
        raise ValueError("no recurrent state in the given modules: only GRU bodies (body='gru') need a primer.")
    return _primer(states, tuple(batch_size), reset_key)


def _primer(states: dict[tuple[str, ...], torch.Size], bs: tuple[int, ...], reset_key: NestedKey | None = None) -> TensorDictPrimer:
    return TensorDictPrimer(Composite({k: Unbounded(shape=(*bs, *s)) for k, s in states.items()}, shape=bs), reset_key=reset_key)


def with_recurrent_state(env: EnvBase, *modules: nn.Module) -> EnvBase:
    """``env`` wrapped with what recurrent ``modules`` need: TorchRL's ``InitTracker`` (unless present) and their primer.

    Returns a new ``TransformedEnv`` over ``env`` (which is not changed), or ``env`` itself when nothing is missing.

    Example:
        >>> from mappo_td.envs import make_env
        >>> from mappo_td.config import EnvConfig
        >>> env = make_env(EnvConfig(num_envs=2, max_steps=5))
        >>> m = gru_module(GRUBody(18, 2, 3, hidden_size=8), ("agents", "observation"), ("agents", "loc"), ("agents", "rnn_state"))
        >>> td = with_recurrent_state(env, m).reset()
        >>> td["agents", "rnn_state"].shape, td["is_init"].all().item()
        (torch.Size([2, 3, 1, 8]), True)
    """
    states = recurrent_states(*modules)
    if not states:
        return env
    transforms = [] if IS_INIT in env.observation_spec.keys() else [InitTracker()]
    missing = {k: s for k, s in states.items() if k not in env.observation_spec.keys(include_nested=True)}
    if missing:
        root = "_reset" if "_reset" in env.reset_keys else None  # several reset keys (PettingZoo): the env-wide one
        transforms.append(_primer(missing, tuple(env.batch_size), root if len(env.reset_keys) > 1 else None))
    return with_transforms(env, transforms)


def body_module(body: str, n_in: int, n_out: int, n_agents: int, *, in_key: NestedKey, out_key: NestedKey, state_key: NestedKey,
                share_params: bool, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES, activation: type[nn.Module] = nn.Tanh,
                rnn_hidden_size: int = DEFAULT_RNN_HIDDEN_SIZE, rnn_layers: int = 1, rnn_encoder: Sequence[int] = (), layer_norm: bool = False,
                network: nn.Module | None = None) -> TensorDictModule:
    """The network of a per-agent model as a ``TensorDictModule``: an MLP (``"mlp"``), GRU + MLP head (``"gru"``, state at
    ``state_key``), or the caller's own ``network`` (``[..., n_in] -> [..., n_out]``, in place of the MLP).

    Example:
        >>> body_module("gru", 4, 2, 3, in_key="x", out_key="y", state_key=("agents", "rnn_state"), share_params=True).in_keys
        ['x', 'is_init', ('agents', 'rnn_state')]
    """
    check_user_network(network, body)
    if network is not None:
        return TensorDictModule(network, in_keys=[in_key], out_keys=[out_key])
    if body == "mlp":
        net = agent_mlp(n_in, n_out, n_agents, share_params=share_params, hidden_sizes=hidden_sizes, activation=activation)
        return TensorDictModule(net, in_keys=[in_key], out_keys=[out_key])
    if body == "gru":
        gru = GRUBody(n_in, n_out, n_agents, hidden_size=rnn_hidden_size, layers=rnn_layers, share_params=share_params,
                      hidden_sizes=hidden_sizes, activation=activation, encoder_sizes=rnn_encoder, layer_norm=layer_norm)
        return gru_module(gru, in_key, out_key, state_key)
    raise ValueError(f"unknown body {body!r}; use one of {BODIES}.")
