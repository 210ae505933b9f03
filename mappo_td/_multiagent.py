"""The two multi-agent conventions every module shares, each in one place.

* :func:`broadcast_to_agents` turns a team-shared signal (``[*B, 1]``) into a
  per-agent one (``[*B, n_agents, 1]``); per-agent signals pass through.
* :func:`per_agent_tensor` expands a configuration value (a scalar, or a dict
  keyed by agent or group name) into a ``[n_agents, 1]`` tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

PerAgent = float | int | bool | Mapping[str, float] | Sequence[float] | torch.Tensor


def broadcast_to_agents(signal: torch.Tensor, n_agents: int, *, name: str = "signal") -> torch.Tensor:
    """Return ``signal`` with an agent dimension: ``[*B, 1]`` -> ``[*B, n_agents, 1]``.

    A signal that already has one (``[*B, n_agents, 1]``) is returned as is.

    Example:
        >>> broadcast_to_agents(torch.zeros(4, 7, 1), 3).shape
        torch.Size([4, 7, 3, 1])
        >>> broadcast_to_agents(torch.zeros(4, 7, 3, 1), 3).shape
        torch.Size([4, 7, 3, 1])
    """
    if signal.shape[-1:] != (1,):
        raise ValueError(
            f"{name} must end in a singleton dimension ([*B, 1] team-shared or [*B, n_agents, 1] "
            f"per agent), got shape {tuple(signal.shape)}; add one with .unsqueeze(-1)."
        )
    if signal.ndim >= 2 and signal.shape[-2] == n_agents and signal.ndim >= 3:
        return signal
    return signal.unsqueeze(-2).expand(*signal.shape[:-1], n_agents, 1)


def per_agent_tensor(
    value: PerAgent,
    agents: Sequence[str],
    *,
    name: str,
    group: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Expand a per-agent configuration value into a ``[n_agents, 1]`` tensor.

    ``value`` is a scalar (all agents), a dict keyed by agent name (every agent
    of ``agents`` must be given, or the ``group`` name), or a sequence/tensor of
    length ``n_agents``. Unknown names are errors that list the valid ones.

    Example:
        >>> per_agent_tensor({"agent_0": 0.9, "agent_1": 0.5}, ["agent_0", "agent_1"], name="gamma").flatten()
        tensor([0.9000, 0.5000])
        >>> per_agent_tensor(0.99, ["a", "b", "c"], name="gamma").shape
        torch.Size([3, 1])
    """
    n = len(agents)
    if isinstance(value, Mapping):
        valid = list(agents) + ([group] if group is not None else [])
        unknown = [k for k in value if k not in valid]
        if unknown:
            raise ValueError(f"{name}: unknown agent name(s) {unknown}; valid names are {valid}.")
        if group is not None and group in value:
            if len(value) > 1:
                raise ValueError(f"{name}: give either the group name {group!r} or agent names, not both.")
            out = [float(value[group])] * n
        else:
            missing = [a for a in agents if a not in value]
            if missing:
                raise ValueError(f"{name}: no value for agent(s) {missing}; give every agent of {list(agents)}.")
            out = [float(value[a]) for a in agents]
        return torch.tensor(out, dtype=dtype, device=device).unsqueeze(-1)
    if isinstance(value, torch.Tensor) or isinstance(value, Sequence):
        t = torch.as_tensor(value, dtype=dtype, device=device).flatten()
        if t.numel() == 1:
            return t.expand(n).clone().unsqueeze(-1)
        if t.numel() != n:
            raise ValueError(f"{name}: got {t.numel()} values for {n} agents {list(agents)}.")
        return t.unsqueeze(-1)
    return torch.full((n, 1), float(value), dtype=dtype, device=device)
