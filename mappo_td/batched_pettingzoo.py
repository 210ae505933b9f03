"""N PettingZoo parallel-API envs as one batched TorchRL env, stepped in this process or by a pool of worker processes.

:class:`BatchedPettingZooEnv` has the specs, keys and layout of TorchRL's
``SerialEnv(N, PettingZooWrapper(..., use_mask=True, categorical_actions=True))`` over the
same tasks and seeds, and gives the same tensors: per-group ``observation``, ``reward``,
``done``/``terminated``/``truncated``, the alive ``mask``, the legal-action ``action_mask``
where the task has one, and the ``info`` entries. It steps the tasks directly and writes
each entry into preallocated arrays, converting to tensors once per step (TorchRL's path
encodes every agent's entry on its own and pays a sub-env's bookkeeping per env). With
``num_workers=K > 1``, K processes each step their share of the envs into the same arrays,
held in shared memory (``WorkerPool``); the stepping itself is ``Tasks``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from torchrl.data import Composite
from torchrl.envs import EnvBase, PettingZooWrapper
from torchrl.envs.utils import _aggregate_end_of_traj

from mappo_td.pettingzoo_arrays import NotBatchable, Tasks, seed_chain

__all__ = ["BatchedPettingZooEnv", "NotBatchable"]


class BatchedPettingZooEnv(EnvBase):
    """``num_envs`` PettingZoo parallel envs (from ``make()``) as one TorchRL env of batch size ``[num_envs]``.

    An env is done when any of its agents is (TorchRL's ``done_on_any`` for parallel tasks); an agent missing
    from the step's dicts is dead: zero observation and reward, ``mask`` false. ``set_seed(s)`` seeds env 0
    with ``s`` and each next env with TorchRL's next seed, as ``SerialEnv`` does. ``num_workers`` > 1: that many
    processes step the envs (forked; where a platform only spawns, ``make`` must be picklable by cloudpickle); ``pool`` is then
    the ``WorkerPool``, else ``None``.

    Example:
        >>> from mpe2 import simple_spread_v3
        >>> env = BatchedPettingZooEnv(lambda: simple_spread_v3.parallel_env(continuous_actions=False), 4)
        >>> td = env.rollout(3)
        >>> td["next", "agent", "reward"].shape, env.group_map
        (torch.Size([4, 3, 3, 1]), {'agent': ['agent_0', 'agent_1', 'agent_2']})
    """

    def __init__(self, make: Callable[[], object], num_envs: int, device: torch.device | str = "cpu", num_workers: int = 1) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if not 1 <= num_workers <= num_envs:
            raise ValueError(f"num_workers must be between 1 and num_envs ({num_envs}), got {num_workers}: each worker "
                             "process steps at least one env.")
        probe = PettingZooWrapper(make(), categorical_actions=True, use_mask=True, device="cpu")
        if not probe.parallel:
            probe.close()
            raise NotBatchable("BatchedPettingZooEnv steps parallel-API tasks; wrap an AEC task with TorchRL's PettingZooWrapper.")
        super().__init__(device=device, batch_size=torch.Size([num_envs]))
        self.group_map: dict[str, list[str]] = {g: list(a) for g, a in probe.group_map.items()}
        self.has_action_mask = dict(probe.has_action_mask)
        self.info_keys = {g: list(probe.observation_spec[g, "info"].keys()) if (g, "info") in probe.observation_spec.keys(True) else []
                          for g in self.group_map}
        self._make_specs(probe)
        probe.close()
        self.num_workers = num_workers
        self._buf = self.observation_spec.zero()
        self._buf.update(self.full_done_spec.zero())
        self._buf.update(self.full_reward_spec.zero())
        self._act = self.full_action_spec.zero().cpu()
        self._leaves: dict | None = None  # the output buffers by key (step_buffers)
        if num_workers > 1:
            from mappo_td.pettingzoo_pool import WorkerPool

            self._buf.share_memory_()
            self._act.share_memory_()
            self._tasks = self.pool = WorkerPool(make, self, num_workers)
        else:
            self.pool = None
            self._tasks = Tasks([make() for _ in range(num_envs)], self.group_map, self.has_action_mask, self.info_keys,
                                *self.arrays(self._buf, self._act))

    def _make_specs(self, probe: PettingZooWrapper) -> None:
        n = self.batch_size[0]
        for g in self.group_map:
            if isinstance(probe.observation_spec[g, "observation"], Composite):
                raise NotBatchable(f"group {g!r} has Dict observations; BatchedPettingZooEnv takes array observations "
                                 "(use TorchRL's PettingZooWrapper for this task).")
        self.observation_spec = probe.observation_spec.expand(n, *probe.observation_spec.shape).to(self.device)
        self.action_spec = probe.full_action_spec.expand(n, *probe.full_action_spec.shape).to(self.device)
        self.reward_spec = probe.full_reward_spec.expand(n, *probe.full_reward_spec.shape).to(self.device)
        self.done_spec = probe.full_done_spec.expand(n, *probe.full_done_spec.shape).to(self.device)

    def arrays(self, buf: TensorDictBase, act: TensorDictBase) -> tuple[dict, dict]:
        """numpy views of an output buffer (every leaf by key) and of an action buffer (by group), which ``Tasks`` writes and reads."""
        return ({k: v.numpy() for k, v in buf.items(include_nested=True, leaves_only=True)},
                {g: act.get((g, "action")).numpy() for g in self.group_map})

    def set_seed(self, seed: int | None = None, static_seed: bool = False) -> int | None:
        """Seed and reset env ``i`` with TorchRL's ``i``-th next seed of ``seed`` (as ``SerialEnv`` does); returns the next seed."""
        self._tasks.seed(seed)
        return seed if static_seed else seed_chain(seed, self.batch_size[0])[-1]

    def _set_seed(self, seed: int | None) -> None:  # set_seed above does the work
        raise NotImplementedError

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs) -> TensorDictBase:
        n = self.batch_size[0]
        if tensordict is None:
            ids = list(range(n))
        else:
            needs = tensordict.get("_reset", None)
            if needs is None:
                needs = _aggregate_end_of_traj(tensordict, reset_keys=self.reset_keys)
            ids = needs.reshape(n, -1).any(-1).nonzero().squeeze(-1).tolist()
        if kwargs.get("seed") is not None:
            self._tasks.seed(kwargs["seed"])
        else:
            self._tasks.reset(ids)
        return self._out(reset=True)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        self.step_buffers({g: tensordict.get((g, "action")) for g in self.group_map})
        return self._out()

    def step_buffers(self, actions: dict[str, torch.Tensor]) -> dict:
        """Step every env with ``actions`` (by group) and return the env's own output buffers by key (every observation,
        done and reward leaf, ``[num_envs, ...]``, on the CPU): no TensorDict, no copy, overwritten by the next step or reset.

        The lean rollout (:class:`~mappo_td.train.rollout.TensorRollout`) reads these; ``step()`` gives the same values.

        Example:
            >>> from mpe2 import simple_spread_v3
            >>> env = BatchedPettingZooEnv(lambda: simple_spread_v3.parallel_env(continuous_actions=False), 2)
            >>> _ = env.reset()
            >>> out = env.step_buffers({"agent": torch.zeros(2, 3, dtype=torch.long)})
            >>> out["agent", "reward"].shape, out["done"].shape
            (torch.Size([2, 3, 1]), torch.Size([2, 1]))
        """
        for g in self.group_map:
            self._act.get((g, "action")).copy_(actions[g])
        self._tasks.step()
        if self._leaves is None:
            self._leaves = dict(self._buf.items(include_nested=True, leaves_only=True))
        return self._leaves

    def _out(self, reset: bool = False) -> TensorDictBase:
        out = self._buf.exclude(*self.reward_keys) if reset else self._buf  # a reset gives no reward, as TorchRL's wrapper
        return out.clone().to(self.device) if self.device.type != "cpu" else out.clone()

    def render(self, *args, **kwargs):
        """The first env's frame, as its task renders it (make the tasks with ``render_mode="rgb_array"``)."""
        return self._tasks.render()

    def close(self, *, raise_if_closed: bool = True) -> None:
        """Close every task (and stop the worker processes)."""
        self._tasks.close()
