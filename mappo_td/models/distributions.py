"""Action distributions: which one each action spec gets (:func:`action_head`), and the parts
TorchRL does not ship (multi-categorical, a state-independent multivariate Gaussian head,
the log-std heads).

========================  ==========================  =========================================
action spec               distribution                network output (per agent)
========================  ==========================  =========================================
``Categorical`` (n)       ``torch`` Categorical       ``(group, "logits")``  ``[*B, n_agents, n]``
  with an action mask     :class:`MaskedCategorical`  + ``(group, "action_mask")`` ``[*B, n_agents, n]``
``MultiCategorical``      :class:`MultiCategorical`   ``(group, "logits")``  ``[*B, n_agents, sum(nvec)]``
  with an action mask     (``mask=``)                 + ``(group, "action_mask")`` ``[*B, n_agents, sum(nvec)]``
``Bounded``/``Unbounded`` diagonal Gaussian           ``(group, "loc")``, ``(group, "scale")``
                          (``TanhNormal`` if squashed)
                          multivariate Gaussian       ``(group, "loc")``, ``(group, "scale_tril")``
========================  ==========================  =========================================

An action mask (``True`` = legal) is used when the observation spec has one for the group
(``action_mask_key``, default ``(group, "action_mask")``: TorchRL's PettingZoo wrapper with
``use_mask=True`` writes it). Masked actions get probability 0 when sampling, in the mode,
in ``log_prob`` and in the entropy. A row with no legal action at all (an agent that does not
act this step: dead, or waiting for its turn) counts every action as legal, so sampling stays
defined; the alive mask keeps such steps out of the loss (:mod:`mappo_td.keys`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import distributions as D
from torch import nn
from torchrl.data import Binary, Bounded, Categorical, MultiOneHot, OneHot, TensorSpec
from torchrl.data import MultiCategorical as MultiCategoricalSpec
from torchrl.modules import IndependentNormal, TanhNormal
from torchrl.modules import MaskedCategorical as _TorchRLMaskedCategorical

from mappo_td.defaults import LOG_STD_MAX, LOG_STD_MIN
from mappo_td.keys import NestedKey

Distribution = Literal["auto", "gaussian", "multivariate_gaussian"]

_NO_SAMPLE_SHAPE = torch.Size()


def legal_mask(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` (bool, ``True`` = legal) with rows that allow no action opened to every action (no host sync).

    Example:
        >>> legal_mask(torch.tensor([[True, False], [False, False]]))
        tensor([[ True, False],
                [ True,  True]])
    """
    mask = mask.bool()
    return mask | ~mask.any(-1, keepdim=True)


class MaskedCategorical(_TorchRLMaskedCategorical):
    """TorchRL's ``MaskedCategorical`` (illegal actions: probability 0 in samples, mode, ``log_prob`` and entropy),
    with :func:`legal_mask` applied so that a row without any legal action stays a valid distribution.

    Example:
        >>> dist = MaskedCategorical(torch.zeros(2, 3), mask=torch.tensor([[True, False, True], [False, False, False]]))
        >>> bool((dist.sample((100,))[:, 0] != 1).all()), dist.entropy()
        (True, tensor([0.6931, 1.0986]))
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor, **kwargs) -> None:
        super().__init__(logits=logits, mask=legal_mask(mask), **kwargs)


def policy_mask_key(policy: nn.Module) -> NestedKey | None:
    """The key a policy's masked distribution reads its legal-action mask from (``None``: not masked).

    Example:
        >>> from torchrl.data import Binary, Composite, Unbounded
        >>> from mappo_td import make_policy
        >>> obs = Composite(agents=Composite(observation=Unbounded((3, 6)), action_mask=Binary(5, (3, 5)), shape=(3,)))
        >>> act = Composite(agents=Composite(action=Categorical(5, (3,)), shape=(3,)))
        >>> policy_mask_key(make_policy(obs, act)), policy_mask_key(make_policy(obs, act, action_mask=None))
        (('agents', 'action_mask'), None)
    """
    for m in policy.modules():
        if hasattr(m, "dist_keys") and hasattr(m, "distribution_class"):
            return dict(zip(m.dist_keys, m.in_keys)).get("mask")
    return None


def random_actions(action_spec: TensorSpec, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Uniform random actions of ``action_spec`` (its shape, env batch dims included); with ``mask`` (``True`` =
    legal, ``[*shape, n]`` or ``[*shape, sum(nvec)]``) uniform over the legal actions only.

    Example:
        >>> mask = torch.tensor([False, True, False]).expand(1000, 3)
        >>> bool((random_actions(Categorical(3, (1000,)), mask) == 1).all())
        True
    """
    if mask is None:
        return action_spec.rand()
    if isinstance(action_spec, MultiCategoricalSpec):
        nvec = [int(n) for n in action_spec.nvec.reshape(-1, action_spec.nvec.shape[-1])[0]]
        dist = MultiCategorical(torch.zeros(mask.shape, device=mask.device), nvec, mask=mask)
    elif isinstance(action_spec, Categorical):
        dist = MaskedCategorical(torch.zeros(mask.shape, device=mask.device), mask=mask)
    else:
        raise TypeError(f"an action mask needs Categorical or MultiCategorical actions, not {type(action_spec).__name__}.")
    return dist.sample().to(action_spec.dtype)


class MultiCategorical(D.Distribution):
    """One Categorical per action dimension (a MultiDiscrete space); log-probs and entropies are summed.

    Args:
        logits: ``[*B, sum(nvec)]`` concatenated logits.
        nvec: number of choices of each dimension.
        mask: optional ``[*B, sum(nvec)]`` bools, ``True`` = legal (each dimension's part: a :class:`MaskedCategorical`).

    Example:
        >>> dist = MultiCategorical(torch.zeros(2, 5), nvec=[2, 3])
        >>> dist.sample().shape
        torch.Size([2, 2])
        >>> torch.allclose(dist.log_prob(torch.tensor([[0, 1], [1, 2]])), torch.log(torch.tensor(1 / 6)))
        True
        >>> masked = MultiCategorical(torch.zeros(5), nvec=[2, 3], mask=torch.tensor([False, True, True, True, False]))
        >>> masked.mode.tolist(), round(float(masked.entropy()), 4)  # dim 0: only 1 is legal; dim 1: 0 or 1
        ([1, 0], 0.6931)
    """

    arg_constraints: dict = {}
    has_enumerate_support = False

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int], mask: torch.Tensor | None = None,
                 validate_args: bool | None = None) -> None:
        self.nvec = [int(n) for n in nvec]
        if logits.shape[-1] != sum(self.nvec) or (mask is not None and mask.shape[-1] != sum(self.nvec)):
            raise ValueError(f"MultiCategorical: logits (and mask) end in {logits.shape[-1]}"
                             f"{'' if mask is None else f' ({mask.shape[-1]})'}, expected sum(nvec)={sum(self.nvec)}.")
        self.logits = logits
        chunks = logits.split(self.nvec, dim=-1)
        if mask is None:
            self._dists = [D.Categorical(logits=chunk) for chunk in chunks]
        else:
            self._dists = [MaskedCategorical(chunk, m) for chunk, m in zip(chunks, mask.split(self.nvec, dim=-1))]
        super().__init__(batch_shape=logits.shape[:-1], event_shape=torch.Size([len(self.nvec)]), validate_args=False)

    def sample(self, sample_shape: torch.Size = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        return torch.stack([d.sample(sample_shape) for d in self._dists], dim=-1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(d.log_prob(v) for d, v in zip(self._dists, value.long().unbind(-1)))

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self._dists)

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([d.logits.argmax(-1) for d in self._dists], dim=-1)  # masked logits are -inf

    @property
    def deterministic_sample(self) -> torch.Tensor:
        return self.mode


class MultivariateNormalHead(nn.Module):
    """Turns ``loc`` into ``(loc, scale_tril)`` with a learned, state-independent Cholesky factor.

    The diagonal is ``exp(log_std)`` (``log_std`` clamped to ``[min_log_std, max_log_std]``,
    as skrl does); the strictly lower triangle is learned from zero.
    ``param_shape`` is ``[A]`` (shared across agents) or ``[n_agents, A]``.

    Example:
        >>> head = MultivariateNormalHead([3])
        >>> loc, tril = head(torch.zeros(5, 3))
        >>> tril.shape, torch.allclose(tril, torch.eye(3).expand(5, 3, 3))
        (torch.Size([5, 3, 3]), True)
    """

    def __init__(self, param_shape: Sequence[int], log_std_init: float = 0.0, min_log_std: float = LOG_STD_MIN, max_log_std: float = LOG_STD_MAX) -> None:
        super().__init__()
        *lead, a = param_shape
        self.log_std = nn.Parameter(torch.full((*lead, a), float(log_std_init)))
        self.off_diag = nn.Parameter(torch.zeros(*lead, a, a))
        self.min_log_std, self.max_log_std = min_log_std, max_log_std
        self.register_buffer("_lower", torch.tril(torch.ones(a, a), diagonal=-1), persistent=False)

    def forward(self, loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        std = self.log_std.clamp(self.min_log_std, self.max_log_std).exp()
        tril = torch.diag_embed(std) + self.off_diag * self._lower
        return loc, tril.expand(*loc.shape, loc.shape[-1])


class StateIndependentScale(nn.Module):
    """Turns ``loc`` into ``(loc, scale)`` with a learned ``log_std`` (skrl's Gaussian: clamp, then exp).

    ``param_shape`` is ``[A]`` (shared across agents) or ``[n_agents, A]`` (one per agent).

    Example:
        >>> with torch.no_grad():
        ...     loc, scale = StateIndependentScale([2], log_std_init=0.0)(torch.zeros(4, 3, 2))
        >>> scale.shape, float(scale[0, 0, 0])
        (torch.Size([4, 3, 2]), 1.0)
    """

    def __init__(self, param_shape: Sequence[int], log_std_init: float = 0.0, min_log_std: float = LOG_STD_MIN, max_log_std: float = LOG_STD_MAX) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.full(tuple(param_shape), float(log_std_init)))
        self.min_log_std, self.max_log_std = min_log_std, max_log_std

    def forward(self, loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = self.log_std.clamp(self.min_log_std, self.max_log_std).exp()
        return loc, scale.expand_as(loc)


class StateDependentScale(nn.Module):
    """Splits ``[*B, 2A]`` network output into ``(loc, scale)``, ``scale = exp(clamp(log_std))``.

    Example:
        >>> loc, scale = StateDependentScale()(torch.zeros(4, 6))
        >>> loc.shape, float(scale.min())
        (torch.Size([4, 3]), 1.0)
    """

    def __init__(self, min_log_std: float = LOG_STD_MIN, max_log_std: float = LOG_STD_MAX) -> None:
        super().__init__()
        self.min_log_std, self.max_log_std = min_log_std, max_log_std

    def forward(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, log_std = out.chunk(2, dim=-1)
        return loc, log_std.clamp(self.min_log_std, self.max_log_std).exp()


def action_head(
    action_spec: TensorSpec,
    group: str,
    n_agents: int,
    share_params: bool,
    distribution: Distribution,
    state_dependent_std: bool,
    tanh_squash: bool | None,
    log_std_init: float,
    action_mask_key: NestedKey | None = None,
) -> tuple[int, list[nn.Module | TensorDictModuleBase], dict, type, dict]:
    """``(n_net_outputs, post-net modules, dist in_keys, dist class, dist kwargs)`` for one group's action spec.

    ``action_mask_key``: where the legal-action mask is (Categorical and MultiCategorical only; ``None``: no mask).

    Example:
        >>> n, post, keys, cls, kw = action_head(Categorical(5, (8, 3)), "agents", 3, True, "auto", False, None, 0.0)
        >>> n, keys, cls.__name__
        (5, {'logits': ('agents', 'logits')}, 'Categorical')
        >>> action_head(Categorical(5, (8, 3)), "agents", 3, True, "auto", False, None, 0.0, ("agents", "action_mask"))[2:4]
        ({'logits': ('agents', 'logits'), 'mask': ('agents', 'action_mask')}, <class 'mappo_td.models.distributions.MaskedCategorical'>)
    """
    g = group
    if isinstance(action_spec, (OneHot, MultiOneHot)):
        raise TypeError(f"one-hot action spec {type(action_spec).__name__} for group {g!r} is not supported; "
                        "ask the environment for categorical actions (e.g. VmasEnv(..., categorical_actions=True)).")
    if isinstance(action_spec, Binary):
        raise TypeError(f"unsupported action spec Binary for group {g!r}: use Categorical, MultiCategorical (e.g. nvec=[2] * k) or a continuous Box.")
    discrete_keys = {"logits": (g, "logits")} | ({} if action_mask_key is None else {"mask": action_mask_key})
    if isinstance(action_spec, MultiCategoricalSpec):  # before Categorical: it is a subclass
        nvec = [int(n) for n in action_spec.nvec.reshape(-1, action_spec.nvec.shape[-1])[0]]
        return sum(nvec), [], discrete_keys, MultiCategorical, {"nvec": nvec}
    if isinstance(action_spec, Categorical):
        return action_spec.space.n, [], discrete_keys, D.Categorical if action_mask_key is None else MaskedCategorical, {}
    if action_mask_key is not None:
        raise ValueError(f"group {g!r} has an action mask at {action_mask_key!r} but continuous actions "
                         f"({type(action_spec).__name__}); action masks apply to Categorical and MultiCategorical actions.")
    if action_spec.domain != "continuous" or action_spec.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise TypeError(f"unsupported action spec {type(action_spec).__name__} for group {g!r}: use Categorical, MultiCategorical or a continuous Box.")
    return _gaussian_head(action_spec, g, [action_spec.shape[-1]] if share_params else [n_agents, action_spec.shape[-1]],
                          distribution, state_dependent_std, tanh_squash, log_std_init)


def _gaussian_head(action_spec: TensorSpec, g: str, param_shape: list[int], distribution: Distribution, state_dependent_std: bool,
                   tanh_squash: bool | None, log_std_init: float) -> tuple[int, list[nn.Module | TensorDictModuleBase], dict, type, dict]:
    """:func:`action_head` for a continuous Box of ``A`` dims: a (multivariate) Gaussian, squashed into the bounds or not."""
    a = param_shape[-1]
    bounded = isinstance(action_spec, Bounded)
    squash = bounded if tanh_squash is None else tanh_squash
    if squash and not bounded:
        raise ValueError(f"tanh_squash=True needs a bounded action spec; group {g!r} has {type(action_spec).__name__}.")
    if distribution == "multivariate_gaussian":
        if squash:
            raise ValueError("the multivariate Gaussian is not squashed: pass tanh_squash=False with distribution='multivariate_gaussian'.")
        head = TensorDictModule(MultivariateNormalHead(param_shape, log_std_init), in_keys=[(g, "loc")], out_keys=[(g, "loc"), (g, "scale_tril")])
        return a, [head], {"loc": (g, "loc"), "scale_tril": (g, "scale_tril")}, D.MultivariateNormal, {}
    if distribution not in ("auto", "gaussian"):
        raise ValueError(f"unknown distribution {distribution!r}; use 'auto', 'gaussian' or 'multivariate_gaussian'.")
    n_out = 2 * a if state_dependent_std else a  # state-dependent: the network outputs the log-std too
    scale_head = StateDependentScale() if state_dependent_std else StateIndependentScale(param_shape, log_std_init)
    scale = TensorDictModule(scale_head, in_keys=[(g, "net_out" if state_dependent_std else "loc")], out_keys=[(g, "loc"), (g, "scale")])
    keys = {"loc": (g, "loc"), "scale": (g, "scale")}
    if squash:
        idx = (0,) * (action_spec.ndim - 2)  # drop env batch dims: bounds are [n_agents, A]
        low, high = action_spec.space.low[idx], action_spec.space.high[idx]
        return n_out, [scale], keys, TanhNormal, {"low": low, "high": high, "tanh_loc": False}
    return n_out, [scale], keys, IndependentNormal, {"tanh_loc": False}
