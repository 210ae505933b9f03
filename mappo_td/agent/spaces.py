"""Gymnasium spaces (or plain shapes) of named agents as TorchRL specs in the multi-agent layout.

Agents are grouped as TorchRL's PettingZoo wrapper groups them: by the name before the last
``_`` (``agent_0``, ``agent_1`` → ``agent``; ``adversary_0`` → ``adversary``), every agent of a
group with the same spaces. A group's entries are ``[num_envs, n_agents, *shape]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, TensorSpec, Unbounded

from mappo_td.agent.action_masks import mask_spec, split_observation_space

Space = Any  # a gymnasium space (Box, Discrete, MultiDiscrete, Dict) or a shape (tuple of ints)


def check_agent_names(d: Mapping[str, Any], agents: Sequence[str], what: str, hint: str = "") -> None:
    """``d`` (by agent name) names only ``agents``, and every one of them; the error lists the valid names.

    Example:
        >>> check_agent_names({"a_0": 1, "bob": 2}, ["a_0"], "models")
        Traceback (most recent call last):
        ...
        ValueError: models: unknown agent name(s) ['bob']; valid names: ['a_0'].
        >>> check_agent_names({}, ["a_0"], "memories", " one memory, or memories=None")
        Traceback (most recent call last):
        ...
        ValueError: memories: no entry for agent(s) ['a_0']; give every agent of ['a_0'] one memory, or memories=None.
    """
    unknown = [k for k in d if k not in agents]
    if unknown:
        raise ValueError(f"{what}: unknown agent name(s) {unknown}; valid names: {list(agents)}.")
    missing = [a for a in agents if a not in d]
    if missing:
        raise ValueError(f"{what}: no entry for agent(s) {missing}; give every agent of {list(agents)}{hint}.")


def group_agents(agents: Sequence[str], spaces: Sequence[Mapping[str, Space]] = ()) -> dict[str, list[str]]:
    """``{group: [agent names]}`` by name prefix (as TorchRL's PettingZoo wrapper); an agent whose entry in any of
    ``spaces`` (mappings by agent name: its spaces, or its model instances) differs from its group's first agent's
    gets a group of its own, named after it.

    Example:
        >>> group_agents(["adversary_0", "agent_0", "agent_1"])
        {'adversary': ['adversary_0'], 'agent': ['agent_0', 'agent_1']}
    """
    out: dict[str, list[str]] = {}
    for a in agents:
        g = a.rsplit("_", 1)[0] if "_" in a else a
        first = out.get(g, [None])[0]
        if first is not None and any(repr(s[a]) != repr(s[first]) for s in spaces):
            g = a
        out.setdefault(g, []).append(a)
    return out


def _box(low: np.ndarray, high: np.ndarray, shape: tuple, dtype: torch.dtype, device: torch.device) -> TensorSpec:
    low_t = torch.as_tensor(np.array(low, dtype=np.float64), dtype=dtype).expand(shape)
    high_t = torch.as_tensor(np.array(high, dtype=np.float64), dtype=dtype).expand(shape)
    if torch.isfinite(low_t).all() and torch.isfinite(high_t).all():
        return Bounded(low_t.clone(), high_t.clone(), shape=shape, dtype=dtype, device=device)
    return Unbounded(shape, dtype=dtype, device=device)


def space_spec(space: Space, batch: Sequence[int], device: torch.device | str = "cpu", *, name: str = "space") -> TensorSpec:
    """The TorchRL spec of ``space`` with leading ``batch`` dims (``[num_envs, n_agents]``).

    Example:
        >>> import gymnasium as gym
        >>> type(space_spec(gym.spaces.Discrete(5), (8, 3))).__name__, type(space_spec(gym.spaces.Box(-1, 1, (2,)), (8, 3))).__name__
        ('Categorical', 'BoundedContinuous')
        >>> space_spec((4,), (8, 3)).shape, space_spec(gym.spaces.MultiDiscrete([2, 3]), (8, 3)).shape
        (torch.Size([8, 3, 4]), torch.Size([8, 3, 2]))
    """
    import gymnasium as gym

    batch = tuple(batch)
    device = torch.device(device)
    if isinstance(space, (tuple, list)) and all(isinstance(d, int) for d in space):
        return Unbounded((*batch, *space), device=device)
    if isinstance(space, gym.spaces.Discrete):
        return Categorical(int(space.n), batch, device=device)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return MultiCategorical([int(n) for n in np.asarray(space.nvec).reshape(-1)], (*batch, int(np.asarray(space.nvec).size)), device=device)
    if isinstance(space, gym.spaces.Box):
        dtype = torch.float32 if np.issubdtype(space.dtype, np.floating) else torch.int64
        return _box(np.asarray(space.low), np.asarray(space.high), (*batch, *space.shape), dtype, device)
    if isinstance(space, gym.spaces.Dict):
        return Composite({k: space_spec(v, batch, device, name=f"{name}.{k}") for k, v in space.spaces.items()}, shape=batch, device=device)
    raise TypeError(f"{name}: unsupported space {space!r}; use gymnasium Box, Discrete, MultiDiscrete or Dict (or a shape tuple).")


def group_specs(group_map: Mapping[str, Sequence[str]], observation_spaces: Mapping[str, Space], action_spaces: Mapping[str, Space],
                num_envs: int, device: torch.device | str = "cpu", masks: Mapping[str, int] | None = None) -> tuple[Composite, Composite]:
    """``(observation_spec, action_spec)`` of the groups: ``(group, "observation")`` (a Dict space's ``"action_mask"``
    entry taken out: :func:`~mappo_td.agent.action_masks.split_observation_space`), ``(group, "mask")`` (alive),
    ``(group, "action_mask")`` for the groups of ``masks`` (``{group: mask width}``) and ``(group, "action")``, batch ``[num_envs]``.

    Example:
        >>> import gymnasium as gym
        >>> obs, act = group_specs({"agent": ["agent_0", "agent_1"]}, {"agent_0": (6,), "agent_1": (6,)},
        ...                        {"agent_0": gym.spaces.Discrete(5), "agent_1": gym.spaces.Discrete(5)}, num_envs=4)
        >>> obs["agent", "observation"].shape, act["agent", "action"].shape
        (torch.Size([4, 2, 6]), torch.Size([4, 2]))
    """
    obs, act = {}, {}
    for g, agents in group_map.items():
        b = (num_envs, len(agents))
        observation = split_observation_space(observation_spaces[agents[0]])[0]
        obs[g] = Composite(observation=space_spec(observation, b, device, name=f"observation_spaces[{agents[0]!r}]"),
                           mask=Categorical(2, b, dtype=torch.bool, device=device), shape=b, device=device)
        if g in (masks or {}):
            obs[g]["action_mask"] = mask_spec(masks[g], num_envs, len(agents), device)
        act[g] = Composite(action=space_spec(action_spaces[agents[0]], b, device, name=f"action_spaces[{agents[0]!r}]"), shape=b, device=device)
    return Composite(obs, shape=(num_envs,), device=device), Composite(act, shape=(num_envs,), device=device)


def check_possible_agents(possible_agents: Sequence[str]) -> list[str]:
    """``possible_agents`` as a list, refused when a name is not a string or appears twice.

    Example:
        >>> check_possible_agents(["agent_0", "agent_1", "agent_0"])
        Traceback (most recent call last):
        ...
        ValueError: possible_agents names ['agent_0'] more than once: every agent needs a name of its own (got ['agent_0', 'agent_1', 'agent_0']).
    """
    names = list(possible_agents)
    bad = [a for a in names if not isinstance(a, str)]
    if bad or not names:
        raise TypeError(f"possible_agents must be a non-empty list of agent names (strings), got {names!r}.")
    twice = sorted({a for a in names if names.count(a) > 1})
    if twice:
        raise ValueError(f"possible_agents names {twice} more than once: every agent needs a name of its own (got {names}).")
    return names


