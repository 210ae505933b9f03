"""Agents that die: which agents of which envs are alive, for the agent API.

A PettingZoo parallel env drops an agent from its dicts once it is done (KAZ, MAgent-style battles). The agent
API reads that as the trainer's :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv` does:

- an agent left out of ``states`` is dead in every env of the call; an agent whose ``terminated`` or ``truncated``
  was true in env ``i`` is dead there until that env's episode ends (every agent of it done), whatever it is given
  meanwhile (so with ``num_envs > 1`` a dead agent's entries may hold anything: they are replaced);
- an agent alive at a step and left out of ``next_states`` died there (some tasks, e.g. KAZ's ``line_death``, drop a
  dying agent from every dict of its last step): its ``rewards``, ``terminated``, ``truncated`` entries may be left out
  too (reward 0, done), as the trainer's env reads them. With ``num_envs > 1`` an agent cannot be left out of one env
  only: report it done there (``terminated`` or ``truncated`` true) at the step it leaves;
- a dead agent's observation, next observation and reward are zeros, its ``terminated`` and ``truncated`` true
  (so GAE never bootstraps through it), its alive mask ``(group, "mask")`` false: nothing of it reaches the loss,
  the advantage statistics or another agent's value;
- it comes back at its env's next episode: the first ``act`` after the episode ended needs every agent (a missing
  one there is an error: no agent is dead before its episode starts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


class AliveTracker:
    """Per group, which agents of which env are dead (``dead[group]``: ``[num_envs, n_agents]`` bool), and which envs
    start an episode at the next step (``starting``: ``[num_envs]``).

    Example:
        >>> t = AliveTracker({"agent": ["agent_0", "agent_1"]}, num_envs=2)
        >>> t.present({"agent_0": 0}, "agent", ["agent_0", "agent_1"]).tolist()
        [[True, False], [True, False]]
        >>> t.check_start("act", {"agent_0": 0})
        Traceback (most recent call last):
        ...
        ValueError: act: states has no entry for agent(s) ['agent_1'] at the first step of an episode in env(s) [0, 1]: every agent starts an episode (an agent left out of states is dead, which it can only be once its episode has begun); give every agent of ['agent_0', 'agent_1'].
        >>> t.end_step({"agent": torch.tensor([[False, True], [False, False]])}, torch.tensor([[False], [False]]))
        >>> t.present({"agent_0": 0, "agent_1": 0}, "agent", ["agent_0", "agent_1"]).tolist()  # agent_1 died in env 0
        [[True, False], [True, True]]
    """

    def __init__(self, group_map: Mapping[str, Sequence[str]], num_envs: int, device: torch.device | str = "cpu") -> None:
        self.agents = [a for agents in group_map.values() for a in agents]
        self.dead = {g: torch.zeros(num_envs, len(a), dtype=torch.bool, device=device) for g, a in group_map.items()}
        self.starting = torch.ones(num_envs, dtype=torch.bool, device=device)

    def reset(self) -> None:
        """Every env starts a new episode: every agent alive (after :meth:`~mappo_td.agent.MAPPO.load`)."""
        for d in self.dead.values():
            d.zero_()
        self.starting.fill_(True)

    def present(self, per_agent: Mapping[str, Any], group: str, agents: Sequence[str]) -> torch.Tensor:
        """``[num_envs, n_agents]``: the agents of ``group`` given in ``per_agent`` and not dead in that env."""
        given = torch.tensor([a in per_agent for a in agents], dtype=torch.bool, device=self.starting.device)
        return given & ~self.dead[group]

    def check_start(self, call: str, states: Mapping[str, Any]) -> None:
        """Refuse ``states`` that leave an agent out while an env starts its episode (a host read, only then)."""
        missing = [a for a in self.agents if a not in states]
        if not missing or not bool(self.starting.any()):
            return
        envs = self.starting.nonzero().flatten().tolist()
        raise ValueError(f"{call}: states has no entry for agent(s) {missing} at the first step of an episode in env(s) {envs[:8]}: "
                         "every agent starts an episode (an agent left out of states is dead, which it can only be once its "
                         f"episode has begun); give every agent of {self.agents}.")

    def end_step(self, done: Mapping[str, torch.Tensor], all_done: torch.Tensor) -> None:
        """After a recorded step: agents ``done`` (by group, ``[num_envs, n_agents]``) are dead until their env's episode
        ends; envs ``all_done`` (``[num_envs, 1]``) start a new one, every agent alive again."""
        ended = all_done.reshape(-1)
        for g, d in done.items():
            self.dead[g] = (self.dead[g] | d.reshape(self.dead[g].shape)) & ~ended.unsqueeze(-1)
        self.starting = ended.clone()
