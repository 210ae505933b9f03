"""Gymnasium spaces (or plain shapes) of named agents as TorchRL specs in the multi-agent layout.

Agents are grouped as TorchRL's PettingZoo wrapper groups them: by the name before the last
``_`` (``agent_0``, ``agent_1`` → ``agent``; ``adversary_0`` → ``adversary``), every agent of a
group with the same spaces. A group's entries are ``[num_envs, n_agents, *shape]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchrl.data import Bounded, Categorical, Composite, MultiCategorical, TensorSpec, Unbounded

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
                num_envs: int, device: torch.device | str = "cpu") -> tuple[Composite, Composite]:
    """``(observation_spec, action_spec)`` of the groups: ``(group, "observation")`` (+ ``(group, "mask")``, every agent
    alive) and ``(group, "action")``, batch ``[num_envs]``.

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
        obs[g] = Composite(observation=space_spec(observation_spaces[agents[0]], b, device, name=f"observation_spaces[{agents[0]!r}]"),
                           mask=Categorical(2, b, dtype=torch.bool, device=device), shape=b, device=device)
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


FAULTS = ("NaN or inf", "a non-integer value", "a value outside the space")
FIXES = ("fix them where they are made (nothing can learn from them)",
         "give integers, e.g. the actions act() returned (integer-valued floats are accepted)", "give values within the space")
ROLES = {"states": "observation", "next_states": "observation", "actions": "action", "log_prob": "log-probability",
         "rewards": "reward", "terminated": "done flag", "truncated": "done flag"}


def _tensor(x: Any, device: torch.device, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    try:
        return torch.as_tensor(np.asarray(x), device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{what}: expected a tensor or array, got {type(x).__name__} ({err}).") from None


def _faults(x: torch.Tensor, spec: TensorSpec) -> torch.Tensor:
    """``[len(FAULTS), num_envs, n_agents]``: where ``x`` (``[num_envs, n_agents, *tail]``, as given) is NaN or inf,
    not an integer though ``spec`` holds integers (Discrete, MultiDiscrete, flags), outside ``spec``'s categories."""
    flat = x.reshape(*x.shape[:2], -1)
    none = torch.zeros(flat.shape, dtype=torch.bool, device=x.device)
    if flat.dtype == torch.bool:
        return torch.stack([none, none, none]).any(-1)
    nonfinite = ~torch.isfinite(flat) if flat.is_floating_point() else none
    integral = not spec.dtype.is_floating_point
    nonint = (flat != flat.round()) & ~nonfinite if integral and flat.is_floating_point() else none
    if isinstance(spec, MultiCategorical):
        outside = (flat < 0) | (flat >= spec.nvec.reshape(flat.shape).to(x.device))
    elif isinstance(spec, Categorical):
        outside = (flat < 0) | (flat >= spec.space.n)
    else:
        outside = none
    return torch.stack([nonfinite, nonint, outside]).any(-1)


def _allowed(spec: TensorSpec) -> str:
    if spec.dtype == torch.bool:
        return "0 or 1 (or bool)"
    if isinstance(spec, MultiCategorical):
        return f"MultiDiscrete: integers 0 <= a < nvec, nvec={spec.nvec.reshape(-1, spec.nvec.shape[-1])[0].tolist()}"
    if isinstance(spec, Categorical):
        return f"Discrete({spec.space.n}): integers 0..{spec.space.n - 1}"
    return "finite values" if spec.dtype.is_floating_point else f"integers ({spec.dtype})"


class InputCheck:
    """The inputs of one :class:`~mappo_td.agent.MAPPO` call, by agent name, checked against the groups' specs before
    anything is stored: names and shapes (``[num_envs, *shape of one agent's entry]``; a single value also
    ``[num_envs]``) as each input is stacked, from tensor metadata; values (finite; integers within the space for
    Discrete / MultiDiscrete actions and done flags) in :meth:`verify`, all at once with one host read per call.
    Every error names the call, the input, the agent, what was expected and what was given.

    Example:
        >>> check = InputCheck("record_transition", num_envs=2, device="cpu")
        >>> x = check.stack({"a_0": torch.tensor([1, 3])}, "actions", ["a_0"], Categorical(4, (2, 1)))
        >>> x.shape, check.verify()
        (torch.Size([2, 1]), None)
        >>> check.stack({"a_0": torch.tensor([[1.0], [5.0]])}, "actions", ["a_0"], Categorical(4, (2, 1))).dtype
        torch.int64
        >>> check.verify()
        Traceback (most recent call last):
        ...
        ValueError: record_transition: actions['a_0'] has a value outside the space at env(s) [1] (got 5.0); expected Discrete(4): integers 0..3: give values within the space. Nothing was stored.
    """

    def __init__(self, call: str, num_envs: int, device: torch.device | str) -> None:
        self.call, self.num_envs, self.device = call, int(num_envs), torch.device(device)
        self._entries: list[tuple[str, list[str], str, torch.Tensor, torch.Tensor, TensorSpec]] = []

    def _label(self, key: str, agent: str, path: tuple[str, ...] = ()) -> str:
        return f"{key}[{agent!r}]" + "".join(f"[{p!r}]" for p in path)

    def _shaped(self, x: torch.Tensor, label: str, key: str, tail: tuple[int, ...]) -> torch.Tensor:
        n = self.num_envs
        accepted = [(n,), (n, 1)] if len(tail) <= 1 and math.prod(tail) == 1 else [(n, *tail)]
        if tuple(x.shape) not in accepted:
            raise ValueError(f"{self.call}: {label} has shape {tuple(x.shape)}; expected {' or '.join(map(str, accepted))} "
                             f"(num_envs={n}, then the shape of one agent's {ROLES.get(key, key)}: {tail}); give every agent's "
                             f"{ROLES.get(key, key)} in that shape. Nothing was stored.")
        return x.reshape(n, *tail)

    def stack(self, per_agent: Mapping[str, Any], key: str, agents: Sequence[str], spec: TensorSpec,
              path: tuple[str, ...] = ()) -> torch.Tensor:
        """``per_agent``'s entries of ``agents`` checked and stacked: ``[num_envs, n_agents, *tail]`` in ``spec``'s
        dtype (``spec``: the group's ``[num_envs, n_agents, *tail]``)."""
        missing = [a for a in agents if a not in per_agent]
        if missing:
            raise ValueError(f"{self.call}: {key}: no entry for agent(s) {missing}; every step needs every agent ({list(agents)}).")
        tail = tuple(spec.shape[2:])
        xs = [self._shaped(_tensor(per_agent[a], self.device, self._label(key, a, path)), self._label(key, a, path), key, tail)
              for a in agents]
        x = torch.stack(xs, dim=1)
        self._entries.append((key, list(agents), "".join(f"[{p!r}]" for p in path), x, _faults(x, spec), spec))
        return x.to(spec.dtype)

    def observation(self, states: Mapping[str, Any], key: str, agents: Sequence[str], spec: TensorSpec) -> dict[tuple[str, ...], torch.Tensor]:
        """Every leaf of ``agents``' observations (a Dict space's entries by key path) checked and stacked."""
        if not isinstance(spec, Composite):
            return {(): self.stack(states, key, agents, spec)}
        out = {}
        for path in spec.keys(True, True):
            path = (path,) if isinstance(path, str) else tuple(path)
            out[path] = self.stack({a: self._entry(states, key, a, path) for a in agents if a in states}, key, agents, spec[path], path)
        return out

    def _entry(self, states: Mapping[str, Any], key: str, agent: str, path: tuple[str, ...]) -> Any:
        x = states[agent]
        for i, p in enumerate(path):
            got = f"a {type(x).__name__}" if not isinstance(x, Mapping) else f"a dict without {p!r}"
            if not isinstance(x, Mapping) or p not in x:
                raise ValueError(f"{self.call}: {self._label(key, agent, path[:i])} is {got}; its space is a Dict: give a dict "
                                 f"with every key of the space. Nothing was stored.")
            x = x[p]
        return x

    def verify(self) -> None:
        """Refuse the call if any value checked so far is wrong (one host read); the error names the first."""
        if not self._entries:
            return
        flags = torch.cat([f.any(1).flatten() for *_, f, _ in self._entries]).tolist()  # the one host read
        if not any(flags):
            return
        i = flags.index(True)
        for key, agents, sub, x, faults, spec in self._entries:
            if i >= faults.shape[0] * len(agents):
                i -= faults.shape[0] * len(agents)
                continue
            kind, a = divmod(i, len(agents))
            envs = faults[kind, :, a].nonzero().flatten().tolist()
            value = x[envs[0], a]
            raise ValueError(f"{self.call}: {key}[{agents[a]!r}]{sub} has {FAULTS[kind]} at env(s) {envs[:8]} "
                             f"(got {value.tolist() if value.ndim else value.item()}); expected {_allowed(spec)}: {FIXES[kind]}. "
                             "Nothing was stored.")
