"""The multi-agent conventions every module shares, each in one place.

* :func:`per_agent_tensor` expands a configuration value (a number, a dict keyed by
  agent or group name, or a sequence) into a tensor, checking names and range;
  :func:`select_group` and :func:`all_names` cut a run-wide value to one group.
* :func:`broadcast_to_agents` (a team-shared signal ``[*B, 1]`` as a per-agent one
  ``[*B, n_agents, 1]``) and the masked reductions :func:`masked_mean` /
  :func:`masked_std_mean` / :func:`standardize_per_agent` live in
  :mod:`mappo_td.functional.reductions` (plain tensor math); they are importable from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mappo_td.defaults import Bounds, check_in_bounds
from mappo_td.functional.reductions import broadcast_to_agents, masked_mean, masked_std_mean, standardize_per_agent

__all__ = ["PerAgent", "all_names", "broadcast_to_agents", "masked_mean", "masked_std_mean", "per_agent_tensor", "select_group",
           "standardize_per_agent"]

PerAgent = float | int | Mapping[str, float] | Sequence[float] | torch.Tensor


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
    ``bounds`` every value is range-checked (:func:`mappo_td.defaults.check_in_bounds`).

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
