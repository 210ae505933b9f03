"""A TorchRL env made of specs only: the environment is stepped by the user's own loop.

:class:`ExternalEnv` lets the agent API build its learner with the trainer's own
:func:`~mappo_td.train.learner.build_learner` (models, loss, optimizer, acting policy,
statistics) from gymnasium spaces; its transitions come from
:meth:`mappo_td.agent.MAPPO.record_transition`, never from ``step``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


class ExternalEnv(EnvBase):
    """Specs of ``group_map``'s groups (``[num_envs, n_agents, ...]``), per-agent rewards and done flags.

    Example:
        >>> from torchrl.data import Categorical as C
        >>> obs = Composite(agent=Composite(observation=Unbounded((2, 3, 4)), shape=(2, 3)), shape=(2,))
        >>> act = Composite(agent=Composite(action=C(5, (2, 3)), shape=(2, 3)), shape=(2,))
        >>> env = ExternalEnv({"agent": ["a_0", "a_1", "a_2"]}, obs, act)
        >>> env.reset()["agent", "observation"].shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, group_map: dict[str, list[str]], observation_spec: Composite, action_spec: Composite,
                 device: torch.device | str = "cpu") -> None:
        num_envs = observation_spec.shape[0]
        super().__init__(batch_size=torch.Size([num_envs]), device=device)
        self.group_map = group_map
        self.observation_spec = observation_spec.to(device)
        self.action_spec = action_spec.to(device)
        self.reward_spec = Composite({g: Composite(reward=Unbounded((num_envs, len(a), 1), device=device), shape=(num_envs, len(a)))
                                      for g, a in group_map.items()}, shape=(num_envs,), device=device)
        done = {g: Composite({k: Categorical(2, (num_envs, len(a), 1), dtype=torch.bool, device=device)
                              for k in ("done", "terminated", "truncated")}, shape=(num_envs, len(a))) for g, a in group_map.items()}
        root = {k: Categorical(2, (num_envs, 1), dtype=torch.bool, device=device) for k in ("done", "terminated", "truncated")}
        self.done_spec = Composite({**done, **root}, shape=(num_envs,), device=device)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        out = self.full_observation_spec.zero()
        out.update(self.full_done_spec.zero())
        for g in self.group_map:
            if (g, "mask") in out.keys(True):
                out.set((g, "mask"), torch.ones_like(out.get((g, "mask"))))
        return out

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        raise RuntimeError("this environment is stepped by your own loop: pass its transitions to MAPPO.record_transition.")

    def _set_seed(self, seed: int | None) -> None:
        return None


def empty_step(num_envs: int, device: torch.device | str) -> TensorDict:
    """An empty TensorDict for one step of ``num_envs`` envs.

    Example:
        >>> empty_step(4, "cpu").batch_size
        torch.Size([4])
    """
    return TensorDict({}, batch_size=[num_envs], device=device)
