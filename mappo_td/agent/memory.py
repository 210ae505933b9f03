"""Per-agent memories as skrl keeps them: ``memories={agent: Memory(memory_size=rollouts, num_envs=N)}``.

The agent writes each agent's slice of every step into that agent's memory through skrl's memory
interface (``create_tensor(name, size=, dtype=)``, ``add_samples(**tensors)``,
``get_tensor_by_name(name)``, ``memory_index``), and reads the rollout back from there for the
update; so skrl's own ``RandomMemory`` works as well as :class:`Memory`. Tensors are
``[memory_size, num_envs, size]`` (flat), named as skrl names them where it has a name
(``observations``, ``actions``, ``log_prob``, ``rewards``, ``terminated``, ``truncated``), else
by their key (``next_observations``, ``mask``, ``episode_reward``, ...); what every agent of an env
shares (the env's ``done``, ``step_count``) is in each agent's memory under ``env_...``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from mappo_td.agent.spaces import check_agent_names
from mappo_td.keys import NestedKey

SKRL_NAMES: dict[tuple[str, ...], str] = {
    ("observation",): "observations", ("action",): "actions", ("action_log_prob",): "log_prob",
    ("next", "observation"): "next_observations", ("next", "reward"): "rewards",
    ("next", "terminated"): "terminated", ("next", "truncated"): "truncated",
}
METHODS = ("create_tensor", "add_samples", "get_tensor_by_name")


class Memory:
    """A rollout memory with skrl's interface: tensors ``[memory_size, num_envs, size]`` filled one step at a time.

    Example:
        >>> m = Memory(memory_size=2, num_envs=3)
        >>> m.create_tensor("rewards", size=1, dtype=torch.float32)
        True
        >>> m.add_samples(rewards=torch.ones(3, 1)); m.add_samples(rewards=2 * torch.ones(3, 1))
        >>> m.get_tensor_by_name("rewards")[:, 0, 0], m.memory_index, m.filled
        (tensor([1., 2.]), 0, True)
    """

    def __init__(self, memory_size: int, num_envs: int = 1, device: str | torch.device | None = None) -> None:
        if memory_size < 1 or num_envs < 1:
            raise ValueError(f"Memory needs memory_size >= 1 and num_envs >= 1, got {memory_size} and {num_envs}.")
        self.memory_size, self.num_envs = int(memory_size), int(num_envs)
        self.device = torch.device(device or "cpu")
        self.tensors: dict[str, torch.Tensor] = {}
        self.memory_index, self.filled = 0, False

    def __len__(self) -> int:
        return self.memory_size * self.num_envs if self.filled else self.memory_index * self.num_envs

    def create_tensor(self, name: str, *, size: int, dtype: torch.dtype | None = None) -> bool:
        """Allocate ``name`` as ``[memory_size, num_envs, size]``; ``False`` if it exists with that size and dtype."""
        if name in self.tensors:
            t = self.tensors[name]
            if t.shape[-1] != size or (dtype is not None and t.dtype != dtype):
                raise ValueError(f"tensor {name!r} exists with size {t.shape[-1]} and {t.dtype}, not {size} and {dtype}.")
            return False
        self.tensors[name] = torch.zeros(self.memory_size, self.num_envs, int(size), dtype=dtype, device=self.device)
        return True

    def add_samples(self, **tensors: torch.Tensor) -> None:
        """Store one step (``[num_envs, size]`` each) at ``memory_index``, then advance it (circularly)."""
        for name, x in tensors.items():
            if name in self.tensors:
                self.tensors[name][self.memory_index].copy_(x.reshape(self.num_envs, -1))
        self.memory_index += 1
        if self.memory_index >= self.memory_size:
            self.memory_index, self.filled = 0, True

    def get_tensor_by_name(self, name: str) -> torch.Tensor:
        """The whole tensor ``[memory_size, num_envs, size]``."""
        return self.tensors[name]

    def reset(self) -> None:
        """Forget what was stored (the tensors stay allocated)."""
        self.memory_index, self.filled = 0, False


def check_memories(memories: Mapping[str, Any], possible_agents: Sequence[str], num_envs: int, rollouts: int) -> dict[str, Any]:
    """One memory per agent (no instance shared by two), each with skrl's methods, ``num_envs`` envs and room for
    ``rollouts`` steps.

    Example:
        >>> check_memories({"a_0": Memory(4, num_envs=2)}, ["a_0"], num_envs=2, rollouts=8)
        Traceback (most recent call last):
        ...
        ValueError: memories['a_0'] holds 4 steps, fewer than rollouts=8: make it Memory(memory_size=8, num_envs=2).
    """
    check_agent_names(memories, possible_agents, "memories", " one memory, or leave memories=None for one internal buffer")
    owner: dict[int, str] = {}
    for a in possible_agents:
        first = owner.setdefault(id(memories[a]), a)
        if first != a:
            raise ValueError(f"memories[{first!r}] and memories[{a!r}] are the same instance: every agent needs a memory of its own "
                             f"(each step writes each agent's slice into its memory), e.g. {{name: Memory(memory_size={rollouts}, "
                             f"num_envs={num_envs}) for name in possible_agents}}.")
    for a in possible_agents:
        m = memories[a]
        lacking = [k for k in METHODS if not callable(getattr(m, k, None))]
        if lacking:
            raise TypeError(f"memories[{a!r}] ({type(m).__name__}) lacks {lacking}: use mappo_td.agent.Memory or skrl's RandomMemory.")
        if getattr(m, "num_envs", num_envs) != num_envs:
            raise ValueError(f"memories[{a!r}] is for {m.num_envs} envs, the agent steps {num_envs}: make it Memory(..., num_envs={num_envs}).")
        if getattr(m, "memory_size", rollouts) < rollouts:
            raise ValueError(f"memories[{a!r}] holds {m.memory_size} steps, fewer than rollouts={rollouts}: "
                             f"make it Memory(memory_size={rollouts}, num_envs={num_envs}).")
    return dict(memories)


def _name(path: tuple[str, ...]) -> str:
    return SKRL_NAMES.get(path, "_".join(path))


def _where(key: NestedKey, group_map: Mapping[str, Sequence[str]]) -> tuple[str | None, tuple[str, ...]]:
    """``(group, path within it)`` of a step key, or ``(None, path)`` for what the env's agents share."""
    key = (key,) if isinstance(key, str) else tuple(key)
    if key[0] in group_map:
        return key[0], key[1:]
    if key[0] == "next" and len(key) > 1 and key[1] in group_map:
        return key[1], ("next", *key[2:])
    return None, ("env", *key)


def write_step(memories: Mapping[str, Any], step: TensorDictBase, group_map: Mapping[str, Sequence[str]]) -> None:
    """Each agent's slice of ``step`` (``[num_envs]``, the trainer's layout) into its memory, tensors created on first use."""
    samples: dict[str, dict[str, torch.Tensor]] = {a: {} for agents in group_map.values() for a in agents}
    for key in step.keys(include_nested=True, leaves_only=True):
        group, path = _where(key, group_map)
        x = step.get(key)
        for i, a in enumerate(group_map[group] if group is not None else samples):
            samples[a][_name(path)] = (x[:, i] if group is not None else x).reshape(x.shape[0], -1)
    for a, tensors in samples.items():
        for name, x in tensors.items():
            if name not in getattr(memories[a], "tensors", {}):
                memories[a].create_tensor(name, size=x.shape[-1], dtype=x.dtype)
        memories[a].add_samples(**tensors)


def read_rollout(memories: Mapping[str, Any], like: TensorDictBase, group_map: Mapping[str, Sequence[str]], steps: int) -> TensorDict:
    """The last ``steps`` steps of every memory as one TensorDict ``[num_envs, steps]`` with ``like``'s keys and shapes
    (``like``: one recorded step), agents stacked back into their groups."""
    first = memories[next(iter(memories))]
    index = (torch.arange(steps) + first.memory_index - steps) % first.memory_size  # chronological, wherever the index stands

    def agent_series(a: str, name: str, shape: torch.Size) -> torch.Tensor:  # [num_envs, steps, *shape]
        return memories[a].get_tensor_by_name(name)[index].transpose(0, 1).reshape(shape[0], steps, *shape[1:])

    out = TensorDict({}, batch_size=[like.batch_size[0], steps], device=like.device)
    for key in like.keys(include_nested=True, leaves_only=True):
        group, path = _where(key, group_map)
        x = like.get(key)
        if group is None:
            out.set(key, agent_series(next(iter(memories)), _name(path), x.shape))
        else:
            per = [agent_series(a, _name(path), x[:, i].shape) for i, a in enumerate(group_map[group])]
            out.set(key, torch.stack(per, dim=2))
    return out
