"""Policy builders for one agent group, from its TorchRL specs.

========================  ==========================  =========================================
action spec               distribution                network output (per agent)
========================  ==========================  =========================================
``Categorical`` (n)       ``torch`` Categorical       ``(group, "logits")``  ``[*B, n_agents, n]``
``MultiCategorical``      :class:`MultiCategorical`   ``(group, "logits")``  ``[*B, n_agents, sum(nvec)]``
``Bounded``/``Unbounded`` diagonal Gaussian           ``(group, "loc")``, ``(group, "scale")``
                          (``TanhNormal`` if squashed)
                          multivariate Gaussian       ``(group, "loc")``, ``(group, "scale_tril")``
========================  ==========================  =========================================

Every policy reads ``(group, observation_key)`` (``[*B, n_agents, *F]``; a nested
Composite (Dict space) is flattened leaf by leaf in sorted key order) and writes
``(group, "action")`` and ``(group, "action_log_prob")`` (``[*B, n_agents]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from tensordict.nn import TensorDictModule, TensorDictModuleBase, TensorDictSequential
from torch import distributions as D
from torch import nn
from torchrl.data import Binary, Bounded, Categorical, Composite, MultiCategorical, MultiOneHot, OneHot, TensorSpec
from torchrl.modules import MLP, IndependentNormal, MultiAgentMLP, ProbabilisticActor, TanhNormal

from mappo_td.distributions import (
    MultiCategorical as MultiCategoricalDist,
)
from mappo_td.distributions import (
    MultivariateNormalHead,
    StateDependentScale,
    StateIndependentScale,
)

NestedKey = str | tuple[str, ...]
Distribution = Literal["auto", "gaussian", "multivariate_gaussian"]


def _as_tuple(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def observation_leaves(observation_spec: Composite, key: NestedKey, batch_ndim: int) -> list[tuple[tuple[str, ...], torch.Size]]:
    """``(key, event_shape)`` of every leaf under ``key``, in a fixed (sorted) order.

    ``batch_ndim`` is how many leading dims of each leaf are batch (environment
    batch dims, plus the agent dim for a group entry).

    Example:
        >>> spec = Composite(obs=Composite(b=Composite(x=Bounded(-1, 1, (4, 3, 2))), a=Bounded(-1, 1, (4, 3, 5)), shape=(4, 3)), shape=(4,))
        >>> observation_leaves(spec, "obs", 2)
        [(('obs', 'a'), torch.Size([5])), (('obs', 'b', 'x'), torch.Size([2]))]
    """
    key = _as_tuple(key)
    try:
        spec = observation_spec[key]
    except KeyError:
        raise KeyError(
            f"no observation {key} in the spec; available keys: "
            f"{sorted(map(str, observation_spec.keys(include_nested=True, leaves_only=True)))}"
        ) from None
    if not isinstance(spec, Composite):
        return [(key, spec.shape[batch_ndim:])]
    leaves = sorted((_as_tuple(k) for k in spec.keys(include_nested=True, leaves_only=True)), key=lambda k: k)
    return [(key + k, spec[k].shape[batch_ndim:]) for k in leaves]


class ConcatFlat(nn.Module):
    """Flattens the trailing ``event_ndims[i]`` dims of each input and concatenates them on the last dim.

    Example:
        >>> ConcatFlat([1, 2])(torch.zeros(4, 3), torch.zeros(4, 2, 5)).shape
        torch.Size([4, 13])
    """

    def __init__(self, event_ndims: Sequence[int]) -> None:
        super().__init__()
        self.event_ndims = list(event_ndims)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [x.unsqueeze(-1) if k == 0 else x.flatten(-k) for x, k in zip(inputs, self.event_ndims)]
        return torch.cat(flat, dim=-1) if len(flat) > 1 else flat[0]


def _group_spec(spec: Composite, group: str, what: str) -> Composite:
    if group not in spec.keys():
        groups = [k for k in spec.keys() if isinstance(spec[k], Composite)]
        raise KeyError(f"no group {group!r} in the {what} spec; groups present: {groups}.")
    return spec[group]


def observation_input(observation_spec: Composite, group: str, observation_key: NestedKey = "observation") -> tuple[list[TensorDictModuleBase], NestedKey, int]:
    """Modules that turn a group's observation into one flat ``[*B, n_agents, F]`` tensor.

    Returns ``(modules, key_of_flat_input, F)``; ``modules`` is empty when the
    observation is already a flat Box.

    Example:
        >>> from torchrl.data import Unbounded
        >>> spec = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> observation_input(spec, "agents")[1:]
        (('agents', 'observation'), 6)
    """
    gspec = _group_spec(observation_spec, group, "observation")
    leaves = observation_leaves(gspec, observation_key, len(gspec.shape))
    n_features = sum(int(torch.Size(s).numel()) for _, s in leaves)
    if len(leaves) == 1 and len(leaves[0][1]) == 1:
        return [], (group, *leaves[0][0]), n_features
    out_key = (group, "observation_vec")
    flat = TensorDictModule(ConcatFlat([len(s) for _, s in leaves]), in_keys=[(group, *k) for k, _ in leaves], out_keys=[out_key])
    return [flat], out_key, n_features


def agent_mlp(n_in: int, n_out: int, n_agents: int, *, share_params: bool, hidden_sizes: Sequence[int],
              activation: type[nn.Module] = nn.Tanh, **kwargs) -> nn.Module:
    """A decentralized per-agent MLP on ``[*B, n_agents, n_in]``.

    Shared parameters: TorchRL's ``MLP`` on the last dim (what ``MultiAgentMLP(share_params=True,
    centralized=False)`` computes, without its per-call parameter swap); separate: ``MultiAgentMLP``.

    Example:
        >>> agent_mlp(4, 2, 3, share_params=True, hidden_sizes=(8,))(torch.zeros(5, 3, 4)).shape
        torch.Size([5, 3, 2])
    """
    if share_params:
        return MLP(in_features=n_in, out_features=n_out, depth=len(hidden_sizes), num_cells=list(hidden_sizes),
                   activation_class=activation, **kwargs)
    return MultiAgentMLP(n_in, n_out, n_agents, centralized=False, share_params=False, depth=len(hidden_sizes),
                         num_cells=list(hidden_sizes), activation_class=activation, **kwargs)


def _with_preprocessor(
    pre: list[TensorDictModuleBase], in_key: NestedKey, group: str, preprocessor: nn.Module | None, name: str
) -> tuple[list[TensorDictModuleBase], NestedKey]:
    """Append ``preprocessor`` (e.g. a RunningStandardizer) on the flat input, writing ``(group, name)``."""
    if preprocessor is None:
        return pre, in_key
    out_key = (group, name)
    return [*pre, TensorDictModule(preprocessor, in_keys=[in_key], out_keys=[out_key])], out_key


def _action_head(
    action_spec: TensorSpec,
    group: str,
    n_agents: int,
    share_params: bool,
    distribution: Distribution,
    state_dependent_std: bool,
    tanh_squash: bool | None,
    log_std_init: float,
) -> tuple[int, list[nn.Module | TensorDictModuleBase], dict, type, dict]:
    """(n_net_outputs, post-net modules, dist in_keys, dist class, dist kwargs) for an action spec."""
    g = group
    if isinstance(action_spec, (OneHot, MultiOneHot)):
        raise TypeError(
            f"one-hot action spec {type(action_spec).__name__} for group {g!r} is not supported; "
            "ask the environment for categorical actions (e.g. VmasEnv(..., categorical_actions=True))."
        )
    if isinstance(action_spec, Binary):
        raise TypeError(f"unsupported action spec Binary for group {g!r}: use Categorical, MultiCategorical (e.g. nvec=[2] * k) or a continuous Box.")
    if isinstance(action_spec, MultiCategorical):  # before Categorical: it is a subclass
        nvec = [int(n) for n in action_spec.nvec.reshape(-1, action_spec.nvec.shape[-1])[0]]
        return sum(nvec), [], {"logits": (g, "logits")}, MultiCategoricalDist, {"nvec": nvec}
    if isinstance(action_spec, Categorical):
        return action_spec.space.n, [], {"logits": (g, "logits")}, D.Categorical, {}
    if action_spec.domain != "continuous" or action_spec.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise TypeError(f"unsupported action spec {type(action_spec).__name__} for group {g!r}: use Categorical, MultiCategorical or a continuous Box.")
    a = action_spec.shape[-1]
    bounded = isinstance(action_spec, Bounded)
    squash = bounded if tanh_squash is None else tanh_squash
    if squash and not bounded:
        raise ValueError(f"tanh_squash=True needs a bounded action spec; group {g!r} has {type(action_spec).__name__}.")
    param_shape = [a] if share_params else [n_agents, a]
    if distribution == "multivariate_gaussian":
        if squash:
            raise ValueError("the multivariate Gaussian is not squashed: pass tanh_squash=False with distribution='multivariate_gaussian'.")
        head = TensorDictModule(MultivariateNormalHead(param_shape, log_std_init), in_keys=[(g, "loc")], out_keys=[(g, "loc"), (g, "scale_tril")])
        return a, [head], {"loc": (g, "loc"), "scale_tril": (g, "scale_tril")}, D.MultivariateNormal, {}
    if distribution not in ("auto", "gaussian"):
        raise ValueError(f"unknown distribution {distribution!r}; use 'auto', 'gaussian' or 'multivariate_gaussian'.")
    if state_dependent_std:
        scale = TensorDictModule(StateDependentScale(), in_keys=[(g, "net_out")], out_keys=[(g, "loc"), (g, "scale")])
        n_out = 2 * a
    else:
        scale = TensorDictModule(StateIndependentScale(param_shape, log_std_init), in_keys=[(g, "loc")], out_keys=[(g, "loc"), (g, "scale")])
        n_out = a
    keys = {"loc": (g, "loc"), "scale": (g, "scale")}
    if squash:
        idx = (0,) * (action_spec.ndim - 2)  # drop env batch dims: bounds are [n_agents, A]
        low, high = action_spec.space.low[idx], action_spec.space.high[idx]
        return n_out, [scale], keys, TanhNormal, {"low": low, "high": high, "tanh_loc": False}
    return n_out, [scale], keys, IndependentNormal, {"tanh_loc": False}


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


def _policy_parts(observation_spec: Composite, action_spec: Composite, group: str, observation_key: NestedKey,
                  input_preprocessor: nn.Module | None, share_params: bool, distribution: Distribution,
                  state_dependent_std: bool, tanh_squash: bool | None, log_std_init: float) -> _PolicyParts:
    gspec = _group_spec(action_spec, group, "action")
    n_agents = gspec.shape[-1]
    pre, in_key, n_in = observation_input(observation_spec, group, observation_key)
    pre, in_key = _with_preprocessor(pre, in_key, group, input_preprocessor, "observation_normalized")
    n_out, post, dist_keys, dist_cls, dist_kwargs = _action_head(
        gspec["action"], group, n_agents, share_params, distribution, state_dependent_std, tanh_squash, log_std_init
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
    share_params: bool = True,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.Tanh,
    distribution: Distribution = "auto",
    state_dependent_std: bool = False,
    tanh_squash: bool | None = None,
    log_std_init: float = 0.0,
    observation_key: NestedKey = "observation",
    input_preprocessor: nn.Module | None = None,
    device: torch.device | str | None = None,
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
        input_preprocessor: module applied to the flat observation (e.g. a RunningStandardizer).

    Example:
        >>> from torchrl.data import Unbounded
        >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
        >>> policy = make_policy(obs, act, hidden_sizes=(16,))
        >>> out = policy(obs.rand())
        >>> out["agents", "action"].shape, out["agents", "action_log_prob"].shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
    """
    parts = _policy_parts(observation_spec, action_spec, group, observation_key, input_preprocessor, share_params,
                          distribution, state_dependent_std, tanh_squash, log_std_init)
    net = agent_mlp(parts.n_in, parts.n_out, parts.n_agents, share_params=share_params, hidden_sizes=hidden_sizes, activation=activation)
    policy = parts.actor(group, *parts.pre, TensorDictModule(net, in_keys=[parts.in_key], out_keys=[parts.net_out_key]))
    return policy.to(device) if device is not None else policy


def make_shared_actor_critic(
    observation_spec: Composite,
    action_spec: Composite,
    group: str = "agents",
    *,
    centralized: bool = False,
    share_params: bool = True,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.Tanh,
    distribution: Distribution = "auto",
    tanh_squash: bool | None = None,
    log_std_init: float = 0.0,
    observation_key: NestedKey = "observation",
    input_preprocessor: nn.Module | None = None,
    device: torch.device | str | None = None,
):
    """One trunk, a policy head and a value head, both reading the group's own observations.

    Returns a :class:`torchrl.modules.ActorValueOperator`; use
    ``get_policy_operator()`` and ``get_value_operator()``. A centralized critic
    reads other inputs than the policy, so ``centralized=True`` is an error.

    Example:
        >>> from torchrl.data import Unbounded
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
                          distribution, False, tanh_squash, log_std_init)
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
