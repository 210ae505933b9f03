"""The multi-agent conventions every module shares, each in one place.

* :func:`broadcast_to_agents` turns a team-shared signal (``[*B, 1]``) into a
  per-agent one (``[*B, n_agents, 1]``); per-agent signals pass through.
* :func:`per_agent_tensor` expands a configuration value (a number, a dict keyed by
  agent or group name, or a sequence) into a tensor, checking names and range.
* :func:`masked_mean` / :func:`masked_std_mean` / :func:`standardize_per_agent`: the
  one set of (optionally masked) reductions that the loss and GAE share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mappo_td.schema import Bounds, check_in_bounds

PerAgent = float | int | Mapping[str, float] | Sequence[float] | torch.Tensor


def broadcast_to_agents(signal: torch.Tensor, value: torch.Tensor, *, name: str = "signal") -> torch.Tensor:
    """Return ``signal`` shaped like the per-agent ``value`` (``[*B, n_agents, 1]``).

    A team-shared signal has one dim fewer than ``value`` (``[*B, 1]``) and is
    expanded over the agents; a per-agent one has as many dims and passes through.
    The decision is made from the number of dims, never from sizes (a team signal
    ``[N, T, 1]`` with ``T == n_agents`` is still a team signal).

    Example:
        >>> v = torch.zeros(4, 3, 3, 1)  # [N, T, n_agents, 1] with T == n_agents
        >>> broadcast_to_agents(torch.zeros(4, 3, 1), v).shape
        torch.Size([4, 3, 3, 1])
        >>> broadcast_to_agents(torch.ones(4, 3, 3, 1), v).shape
        torch.Size([4, 3, 3, 1])
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"broadcast_to_agents needs the per-agent value tensor [*B, n_agents, 1] as its second argument, got {type(value).__name__}.")
    if signal.shape[-1:] != (1,):
        raise ValueError(
            f"{name} must end in a singleton dimension ([*B, 1] team-shared or [*B, n_agents, 1] "
            f"per agent), got shape {tuple(signal.shape)}; add one with .unsqueeze(-1)."
        )
    n_agents = value.shape[-2]
    if signal.ndim == value.ndim and signal.shape[-2] == n_agents:
        return signal
    if signal.ndim == value.ndim - 1:
        return signal.unsqueeze(-2).expand(*signal.shape[:-1], n_agents, 1)
    raise ValueError(
        f"{name} shape {tuple(signal.shape)} does not match value shape {tuple(value.shape)}: expected team-shared "
        f"{(*value.shape[:-2], 1)} or per agent {tuple(value.shape)}."
    )


def per_agent_tensor(
    value: PerAgent,
    agents: Sequence[str] | None,
    *,
    name: str,
    group: str | None = None,
    bounds: Bounds | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Expand a per-agent configuration value into a ``[n_agents, 1]`` tensor (``[]`` for a number without ``agents``).

    ``value`` is a number (every agent), a dict keyed by agent name (every agent of
    ``agents`` must be given) or by the ``group`` name, or a sequence/tensor of
    length ``n_agents``. An unknown name is an error that lists the valid ones
    (a dict for a whole run is cut to one group by :func:`select_group`). With
    ``bounds`` every value is range-checked (:func:`mappo_td.config.check_in_bounds`).

    Example:
        >>> per_agent_tensor({"agent_0": 0.9, "agent_1": 0.5}, ["agent_0", "agent_1"], name="gamma").flatten()
        tensor([0.9000, 0.5000])
        >>> per_agent_tensor(0.99, ["a", "b", "c"], name="gamma").shape, per_agent_tensor(0.99, None, name="gamma").shape
        (torch.Size([3, 1]), torch.Size([]))
    """
    if isinstance(value, Mapping):
        if agents is None:
            raise ValueError(f"{name} given by agent name: pass agents=[...] (the group's agent names).")
        valid = list(agents) + ([group] if group is not None else [])
        _check_names(value, valid, name)
        mine = dict(value)
        if group is not None and group in mine:
            if len(mine) > 1:
                raise ValueError(f"{name}: give either the group name {group!r} or agent names, not both.")
            out = [mine[group]] * len(agents)
        else:
            missing = [a for a in agents if a not in mine]
            if missing:
                raise ValueError(f"{name}: no value for agent(s) {missing}; give every agent of {list(agents)}.")
            out = [mine[a] for a in agents]
    elif isinstance(value, (torch.Tensor, Sequence)) and not isinstance(value, str):
        out = torch.as_tensor(value, dtype=torch.float64).flatten().tolist()
        if agents is not None and len(out) not in (1, len(agents)):
            raise ValueError(f"{name}: got {len(out)} values for {len(agents)} agents {list(agents)}.")
    else:  # a number: every agent
        out = [value]
    if bounds is not None:
        check_in_bounds(name, out, bounds)
    if agents is None and len(out) == 1 and not isinstance(value, (torch.Tensor, Sequence)):
        return torch.tensor(float(value), dtype=dtype, device=device)
    if agents is not None and len(out) == 1:
        out = out * len(agents)
    return torch.tensor([float(v) for v in out], dtype=dtype, device=device).unsqueeze(-1)


def _check_names(value: Mapping[str, Any], valid: Sequence[str], name: str) -> None:
    unknown = [k for k in value if k not in valid]
    if unknown:
        raise ValueError(f"{name}: unknown agent/group name(s) {unknown}; valid names: {list(valid)}.")


def select_group(value: PerAgent, group: str, agents: Sequence[str], valid_names: Sequence[str], *, name: str) -> PerAgent:
    """The part of a run-wide per-agent value that concerns ``group``: a dict is checked against every
    name of the run (``valid_names``) and cut to this group's names; anything else passes through.

    Example:
        >>> select_group({"r0": 0.9, "b0": 0.5, "b1": 0.4}, "blue", ["b0", "b1"], ["r0", "b0", "b1", "red", "blue"], name="gamma")
        {'b0': 0.5, 'b1': 0.4}
    """
    if not isinstance(value, Mapping):
        return value
    _check_names(value, valid_names, name)
    mine = {k: v for k, v in value.items() if k in agents or k == group}
    if not mine:
        raise ValueError(f"{name}: the dict gives no value for group {group!r} (agents {list(agents)}).")
    return mine


def all_names(group_map: Mapping[str, Sequence[str]]) -> list[str]:
    """Every agent name and group name of ``group_map`` (the names a per-agent dict may use).

    Example:
        >>> all_names({"red": ["r0"], "blue": ["b0", "b1"]})
        ['r0', 'b0', 'b1', 'red', 'blue']
    """
    return [a for agents in group_map.values() for a in agents] + list(group_map)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` counting only entries where ``mask`` (broadcast to ``x``) is true.

    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0, 100.0])
        >>> masked_mean(x, torch.tensor([True, True, True, False]))
        tensor(2.)
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim, keepdim=keepdim)
    m = mask.expand_as(x).to(x.dtype)
    dims = tuple(range(x.ndim)) if dim is None else dim
    return (x * m).sum(dim=dims, keepdim=keepdim) / m.sum(dim=dims, keepdim=keepdim).clamp_min(1.0)


def masked_std_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: Sequence[int], keepdim: bool = True,
                    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.std_mean`` (unbiased) over ``dim``, counting only entries where ``mask`` is true.

    ``reduce`` sums a tensor over data-parallel processes (e.g.
    :func:`mappo_td.train.distributed.all_reduce_sum`): the statistics are then those of
    the concatenation of every process's ``x`` (counts, sums and squared deviations are
    reduced; no host sync).

    Example:
        >>> x = torch.tensor([[1.0], [3.0], [50.0]])
        >>> masked_std_mean(x, torch.tensor([[True], [True], [False]]), dim=[0])
        (tensor([[1.4142]]), tensor([[2.]]))
        >>> masked_std_mean(x, None, dim=[0], reduce=lambda t: t * 2)[1]  # two processes holding the same x
        tensor([[18.]])
    """
    dim = list(dim)
    if mask is None and reduce is None:
        return torch.std_mean(x, dim=dim, keepdim=keepdim)
    m = torch.ones_like(x) if mask is None else mask.expand_as(x).to(x.dtype)
    reduce = reduce or (lambda t: t)
    n = reduce(m.sum(dim=dim, keepdim=True))
    mean = reduce((x * m).sum(dim=dim, keepdim=True)) / n.clamp_min(1.0)
    var = reduce(((x - mean).pow(2) * m).sum(dim=dim, keepdim=True)) / (n - 1).clamp_min(1.0)
    if not keepdim:
        mean, var = mean.squeeze(dim), var.squeeze(dim)
    return var.sqrt(), mean


def standardize_per_agent(advantage: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8,
                          reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``(A − mean) / (std + eps)`` over every dim but the agent dim (``-2``), over ``mask``'s entries if given
    (``reduce``: statistics over every data-parallel process, see :func:`masked_std_mean`).

    Example:
        >>> a = standardize_per_agent(torch.randn(50, 3, 1) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1))
        >>> torch.allclose(a.std(dim=0), torch.ones(3, 1), atol=1e-4)
        True
    """
    dims = [d for d in range(advantage.ndim) if d != advantage.ndim - 2]
    std, mean = masked_std_mean(advantage, mask, dims, reduce=reduce)
    return (advantage - mean) / (std + eps)
