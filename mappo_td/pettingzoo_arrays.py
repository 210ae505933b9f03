"""PettingZoo parallel-API envs stepped into numpy arrays laid out as TorchRL's ``PettingZooWrapper`` lays out tensors:
the work of :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv` in this process, and of each worker of its pool.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torchrl._utils import seed_generator


class NotBatchable(ValueError):
    """A task :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv` does not step (AEC API, Dict observations): use
    TorchRL's ``PettingZooWrapper``."""


def seed_chain(seed: int | None, n: int) -> list[int | None]:
    """The seeds TorchRL's ``SerialEnv.set_seed(seed)`` gives its ``n`` envs (and, last, the next free seed).

    Example:
        >>> s = seed_chain(3, 2); s[0], len(s)
        (3, 3)
    """
    out = [seed]
    for _ in range(n):
        out.append(seed_generator(out[-1]) if out[-1] is not None else None)
    return out


class Tasks:
    """PettingZoo parallel envs writing into numpy arrays laid out as TorchRL's wrapper lays out tensors.

    ``out``: ``{key: array [n_envs, ...]}`` for every observation, done and reward leaf; ``actions``: ``{group: array}``.
    Used in this process by :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv`, and by each worker of the pool on its share of the envs.
    """

    def __init__(self, envs: Sequence, group_map: dict[str, list[str]], has_action_mask: dict[str, bool],
                 info_keys: dict[str, list[str]], out: dict, actions: dict) -> None:
        self.envs, self.group_map, self.has_action_mask, self.info_keys = list(envs), group_map, has_action_mask, info_keys
        self.out, self.actions = out, actions

    def seed(self, seed: int | None) -> None:
        """Reset env ``i`` with the ``i``-th seed of :func:`seed_chain`."""
        for i, (env, s) in enumerate(zip(self.envs, seed_chain(seed, len(self.envs)))):
            self._write_reset(env, i, env.reset(seed=s))

    def reset(self, ids: Sequence[int]) -> None:
        """Reset the envs ``ids`` (their own generators continue)."""
        for i in ids:
            self._write_reset(self.envs[i], i, self.envs[i].reset())

    def step(self) -> None:
        """Step every env with its row of ``actions``."""
        acts = {g: a.copy() for g, a in self.actions.items()}  # fresh arrays each step, as TorchRL's wrapper passes
        for i, env in enumerate(self.envs):
            step = env.step({a: acts[g][i, j] for g, agents in self.group_map.items() for j, a in enumerate(agents)})
            self._write_step(env, i, *step)

    def render(self):
        """The first env's frame (the task renders in its constructor's ``render_mode``)."""
        return self.envs[0].render()

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()

    def _write_reset(self, env, i: int, reset: tuple[dict, dict]) -> None:
        obs, info = reset
        for k in ("done", "terminated", "truncated"):
            self.out[k][i] = False
        for g, agents in self.group_map.items():
            for k in ("done", "terminated", "truncated", "reward"):
                self.out[g, k][i] = 0
            self._write_agents(env, i, g, agents, obs, info)

    def _write_step(self, env, i: int, obs: dict, rew: dict, term: dict, trunc: dict, info: dict) -> None:
        any_term = any_trunc = False
        for g, agents in self.group_map.items():
            r, d, te, tr = self.out[g, "reward"], self.out[g, "done"], self.out[g, "terminated"], self.out[g, "truncated"]
            for j, a in enumerate(agents):
                if a in obs:
                    r[i, j, 0] = rew[a]
                    te[i, j, 0], tr[i, j, 0] = term[a], trunc[a]
                else:  # dead: what the dicts say, else terminated and truncated (TorchRL's convention)
                    if a in env.agents:
                        raise ValueError(f"agent {a} is missing from the step's observations but still in the task's agents {env.agents}.")
                    r[i, j, 0] = 0
                    te[i, j, 0], tr[i, j, 0] = term.get(a, True), trunc.get(a, True)
            np.logical_or(te[i], tr[i], out=d[i])
            any_term |= bool(te[i].any())
            any_trunc |= bool(tr[i].any())
            self._write_agents(env, i, g, agents, obs, info)
        self.out["terminated"][i], self.out["truncated"][i] = any_term, any_trunc
        self.out["done"][i] = any_term or any_trunc

    def _write_agents(self, env, i: int, g: str, agents: list[str], obs: dict, info: dict) -> None:
        """Observation, alive mask, legal-action mask and info entries of group ``g`` in env ``i``."""
        o, alive = self.out[g, "observation"], self.out[g, "mask"]
        amask = self.out[g, "action_mask"] if self.has_action_mask[g] else None
        infos = [(k, self.out[g, "info", k]) for k in self.info_keys[g]]
        acting = env.agents
        for j, a in enumerate(agents):
            alive[i, j] = a in acting
            if amask is not None:
                amask[i, j] = True
            if a not in obs:
                o[i, j] = 0
                for _, arr in infos:
                    arr[i, j] = 0
                continue
            ob, inf = obs[a], info.get(a, {})
            if isinstance(ob, dict):  # {"observation": ..., "action_mask": ...}
                if amask is not None and a in acting and "action_mask" in ob:
                    amask[i, j] = ob["action_mask"]
                ob = ob["observation"]
            elif amask is not None and a in acting and isinstance(inf, dict) and "action_mask" in inf:
                amask[i, j] = inf["action_mask"]
            o[i, j] = ob
            for k, arr in infos:
                if k in inf:
                    arr[i, j] = inf[k]
