"""Policy builders for one agent group, from its TorchRL specs.

Every policy reads ``(group, observation_key)`` (``[*B, n_agents, *F]``; a nested
Composite (Dict space) is flattened leaf by leaf in sorted key order, see
:mod:`mappo_td.models.inputs`) and writes ``(group, "action")`` and
``(group, "action_log_prob")`` (``[*B, n_agents]``). The distribution for each action
space is chosen in :mod:`mappo_td.models.distributions`; a Discrete or MultiDiscrete policy
also reads the group's legal-action mask when the observation spec has one
(``(group, "action_mask")``, see :func:`action_mask_key`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import nn
from torchrl.data import Composite
from torchrl.modules import ProbabilisticActor

from mappo_td.defaults import DEFAULT_HIDDEN_SIZES, DEFAULT_RNN_HIDDEN_SIZE
from mappo_td.keys import NestedKey
from mappo_td.models.bodies import agent_mlp
from mappo_td.models.distributions import Distribution, action_head
from mappo_td.models.inputs import group_spec, observation_input, with_preprocessor
from mappo_td.models.recurrent import body_module


@dataclass
class _PolicyParts:
    """What both policy builders need: input modules, network sizes, and the distribution head."""

    n_agents: int
    pre: list  # observation flattening / preprocessing modules
    in_key: NestedKey
    n_in: int
    n_out: int
    post: list  # modules after the network (scale heads)
    dist_keys: dict
    dist_cls: type
    dist_kwargs: dict
    net_out_key: NestedKey

    def actor(self, group: str, *body: TensorDictModuleBase) -> ProbabilisticActor:
        return ProbabilisticActor(
            TensorDictSequential(*body, *self.post), in_keys=self.dist_keys, out_keys=[(group, "action")],
            distribution_class=self.dist_cls, distribution_kwargs=self.dist_kwargs, return_log_prob=True,
            log_prob_key=(group, "action_log_prob"),
        )


def action_mask_key(observation_spec: Composite, group: str, key: NestedKey | None | str = "auto") -> NestedKey | None:
    """Where ``group``'s legal-action mask is read from: ``key="auto"`` gives ``(group, "action_mask")`` when the
    observation spec has it (else ``None``: no mask); ``None`` turns masking off; any other key must be in the spec.

    Example:
        >>> from torchrl.data import Binary, Unbounded
        >>> spec = Composite(agents=Composite(observation=Unbounded((3, 6)), action_mask=Binary(5, (3, 5)), shape=(3,)))
        >>> action_mask_key(spec, "agents"), action_mask_key(spec, "agents", None)
        (('agents', 'action_mask'), None)
    """
    if key is None:
        return None
    if key == "auto":
        return (group, "action_mask") if (group, "action_mask") in observation_spec.keys(include_nested=True) else None
    if key not in observation_spec.keys(include_nested=True):
        raise KeyError(f"action mask key {key!r} is not in the observation spec of group {group!r}; "
                       f"keys present: {sorted(map(str, observation_spec.keys(include_nested=True, leaves_only=True)))}.")
    return key


def _policy_parts(observation_spec: Composite, action_spec: Composite, group: str, observation_key: NestedKey,
                  input_preprocessor: nn.Module | None, share_params: bool, distribution: Distribution,
                  state_dependent_std: bool, tanh_squash: bool | None, log_std_init: float,
                  mask_key: NestedKey | None | str = "auto") -> _PolicyParts:
    gspec = group_spec(action_spec, group, "action")
    n_agents = gspec.shape[-1]
    pre, in_key, n_in = observation_input(observation_spec, group, observation_key)
    pre, in_key = with_preprocessor(pre, in_key, group, input_preprocessor, "observation_normalized")
    n_out, post, dist_keys, dist_cls, dist_kwargs = action_head(
        gspec["action"], group, n_agents, share_params, distribution, state_dependent_std, tanh_squash, log_std_init,
        action_mask_key(observation_spec, group, mask_key),
    )
    return _PolicyParts(n_agents, pre, in_key, n_in, n_out, post, dist_keys, dist_cls, dist_kwargs,
                        _net_out_key(group, dist_keys, state_dependent_std))


def _net_out_key(group: str, distribution_keys: dict, state_dependent: bool) -> tuple[str, str]:
    if "logits" in distribution_keys:
        return (group, "logits")
    return (group, "net_out") if state_dependent else (group, "loc")


def make_policy(
    observation_spec: Composite,
    action_spec: Composite,
    group: str = "agents",
    *,
    share_params: bool = True, hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES, activation: type[nn.Module] = nn.Tanh,
    distribution: Distribution = "auto", state_dependent_std: bool = False, tanh_squash: bool | None = None, log_std_init: float = 0.0,
    observation_key: NestedKey = "observation", input_preprocessor: nn.Module | None = None, action_mask: NestedKey | None | str = "auto",
    body: str = "mlp", rnn_hidden_size: int = DEFAULT_RNN_HIDDEN_SIZE, rnn_layers: int = 1, rnn_encoder: Sequence[int] = (),
    layer_norm: bool = False, network: nn.Module | None = None, device: torch.device | str | None = None,
) -> ProbabilisticActor:
    """Build a decentralized stochastic policy for one agent group.

    Args:
        observation_spec: the environment's (root) observation spec, e.g. ``env.observation_spec``.
        action_spec: the environment's (root) full action spec, e.g. ``env.full_action_spec``.
        group: the agent group (``env.group_map`` key).
        share_params: one network for all agents of the group (``True``) or one each.
        hidden_sizes, activation: the MLP.
        distribution: Box actions only: ``"gaussian"`` (diagonal; ``"auto"``) or ``"multivariate_gaussian"``.
        state_dependent_std: the network outputs the log-std too (else a learned parameter).
        tanh_squash: squash Gaussian samples into the Box bounds (default: when the spec is bounded).
        log_std_init: initial log-std of Gaussian policies.
        input_preprocessor: module applied to the flat observation (e.g. a RunningStandardScaler).
        body: ``"mlp"`` or ``"gru"`` (:mod:`mappo_td.models.recurrent`: GRU of ``rnn_layers`` × ``rnn_hidden_size``,
            then the MLP as head; it also reads ``"is_init"`` and ``(group, "rnn_state")`` and writes
            ``("next", group, "rnn_state")``). ``rnn_encoder``, ``layer_norm``: the MAPPO reference's layout
            (MLP layers before the GRU; its LayerNorms), see :class:`~mappo_td.models.recurrent.GRUBody`.
        action_mask: the legal-action mask's key (:func:`action_mask_key`: ``"auto"`` uses ``(group, "action_mask")``
            when the spec has it; ``None``: no mask). A masked policy reads it and never picks an illegal action.
        network: your own network in place of the MLP (``body="mlp"`` only): it maps the flat (preprocessed)
            observation ``[..., n_in]`` to the distribution's parameters ``[..., n_out]`` over any leading dims
            (``[*B, n_agents]``: one network for every agent of the group); :func:`policy_io_sizes` gives both sizes.

    Example:
        >>> from torchrl.data import Categorical, Unbounded
        >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
        >>> policy = make_policy(obs, act, hidden_sizes=(16,))
        >>> out = policy(obs.rand())
        >>> out["agents", "action"].shape, out["agents", "action_log_prob"].shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
        >>> make_policy(obs, act, network=nn.Linear(6, 5))(obs.rand())["agents", "action"].shape
        torch.Size([8, 3])
    """
    parts = _policy_parts(observation_spec, action_spec, group, observation_key, input_preprocessor, share_params,
                          distribution, state_dependent_std, tanh_squash, log_std_init, action_mask)
    net = body_module(body, parts.n_in, parts.n_out, parts.n_agents, in_key=parts.in_key, out_key=parts.net_out_key,
                      state_key=(group, "rnn_state"), share_params=share_params, hidden_sizes=hidden_sizes, activation=activation,
                      rnn_hidden_size=rnn_hidden_size, rnn_layers=rnn_layers, rnn_encoder=rnn_encoder, layer_norm=layer_norm, network=network)
    policy = parts.actor(group, *parts.pre, net)
    return policy.to(device) if device is not None else policy


def policy_io_sizes(observation_spec: Composite, action_spec: Composite, group: str = "agents", *,
                    state_dependent_std: bool = False, distribution: Distribution = "auto",
                    observation_key: NestedKey = "observation") -> tuple[int, int]:
    """``(n_in, n_out)`` of a policy network of ``group``: the flat observation size, and what the distribution reads
    (Discrete(n): n logits; MultiDiscrete: ``sum(nvec)`` logits; Box of d dims: d means, 2d with ``state_dependent_std``).

    Example:
        >>> from torchrl.data import Categorical, Unbounded
        >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
        >>> policy_io_sizes(obs, act)
        (6, 5)
    """
    parts = _policy_parts(observation_spec, action_spec, group, observation_key, None, True, distribution,
                          state_dependent_std, None, 0.0, None)
    return parts.n_in, parts.n_out


def make_shared_actor_critic(
    observation_spec: Composite,
    action_spec: Composite,
    group: str = "agents",
    *,
    centralized: bool = False,
    share_params: bool = True,
    hidden_sizes: Sequence[int] = DEFAULT_HIDDEN_SIZES,
    activation: type[nn.Module] = nn.Tanh,
    distribution: Distribution = "auto",
    tanh_squash: bool | None = None,
    log_std_init: float = 0.0,
    observation_key: NestedKey = "observation",
    input_preprocessor: nn.Module | None = None,
    action_mask: NestedKey | None | str = "auto",
    device: torch.device | str | None = None,
):
    """One trunk, a policy head and a value head, both reading the group's own observations.

    Returns a :class:`torchrl.modules.ActorValueOperator`; use
    ``get_policy_operator()`` and ``get_value_operator()``. A centralized critic
    reads other inputs than the policy, so ``centralized=True`` is an error.

    Example:
        >>> from torchrl.data import Categorical, Unbounded
        >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
        >>> op = make_shared_actor_critic(obs, act, hidden_sizes=(16, 16))
        >>> op.get_value_operator()(obs.rand())["agents", "state_value"].shape
        torch.Size([8, 3, 1])
    """
    from torchrl.modules import ActorValueOperator

    if centralized:
        raise ValueError(
            "a shared policy-value model needs one input for both heads, but the centralized critic reads the "
            "global state (or all agents' observations) while the policy reads each agent's own observation; "
            "use centralized=False (IPPO-style critic) or build separate models with make_policy and make_critic."
        )
    if len(hidden_sizes) < 1:
        raise ValueError("a shared model needs at least one hidden layer (hidden_sizes).")
    parts = _policy_parts(observation_spec, action_spec, group, observation_key, input_preprocessor, share_params,
                          distribution, False, tanh_squash, log_std_init, action_mask)
    width = hidden_sizes[-1]
    trunk = agent_mlp(parts.n_in, width, parts.n_agents, share_params=share_params, hidden_sizes=hidden_sizes[:-1],
                      activation=activation, activate_last_layer=True)
    common = TensorDictSequential(*parts.pre, TensorDictModule(trunk, in_keys=[parts.in_key], out_keys=[(group, "hidden")]))

    def head(n: int) -> nn.Module:
        return agent_mlp(width, n, parts.n_agents, share_params=share_params, hidden_sizes=())

    policy = parts.actor(group, TensorDictModule(head(parts.n_out), in_keys=[(group, "hidden")], out_keys=[parts.net_out_key]))
    value = TensorDictModule(head(1), in_keys=[(group, "hidden")], out_keys=[(group, "state_value")])
    op = ActorValueOperator(common, policy, value)
    return op.to(device) if device is not None else op
