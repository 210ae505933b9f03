"""The lean rollout: TorchRL's collector loop on plain tensors, for batched PettingZoo tasks.

On MPE-sized tasks a step of 8 envs takes ~2.3 ms in the simulator, and TorchRL's collector,
transforms and TensorDict modules add another ~1.5 ms of bookkeeping per step (TensorDict
construction, key checks, a clone of every output). :class:`TensorRollout` runs the same
step on a ``{key: tensor}`` dict instead: the policies' networks as a
:class:`~mappo_td.fast.TensorPlan`, sampling through the policies' own distribution modules
(same draws, same order), the env's own arrays
(:meth:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv.step_buffers`), and the effect of
the transforms mappo_td puts on it (``StepCounter`` without a limit, ``RewardSum``,
``InitTracker``, the recurrent-state primer) written out by hand. Resets go through the
TorchRL env itself (``maybe_reset``), so its transforms decide them. It gives the collector's
tensors, key for key (``("collector", "traj_ids")`` left out: nothing reads it); a test
checks that against :class:`torchrl.collectors.Collector`, and ``benchmarks/mpe.py`` shows
why it exists. Anything else (other transforms, a non-plain network, other devices) keeps
TorchRL's collector: :meth:`TensorRollout.of` says why.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import ProbabilisticTensorDictSequential
from torchrl.envs import Compose, EnvBase, InitTracker, RewardSum, StepCounter, TensorDictPrimer, TransformedEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules.distributions.utils import sample_and_log_prob

from mappo_td.batched_pettingzoo import BatchedPettingZooEnv
from mappo_td.fast import TensorPlan, accelerate
from mappo_td.models.distributions import random_actions
from mappo_td.train.acting import ActingPolicy

_KNOWN = (StepCounter, RewardSum, InitTracker, TensorDictPrimer)


class TensorRollout:
    """``rollout()`` and ``reset()`` of TorchRL's ``Collector`` over ``env`` with ``acting``, on plain tensors.

    Build it with :meth:`of`, which returns ``None`` (and the reason) where the lean path does not apply.

    Example:
        >>> from mappo_td import TrainConfig
        >>> from mappo_td.train import build_learner
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {
        ...     "backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": 2, "continuous_actions": False}}))
        >>> lean, why = TensorRollout.of(lrn.env, lrn.acting, steps=4)
        >>> lean.rollout()["next", "agent", "reward"].shape, why
        (torch.Size([2, 4, 3, 1]), '')
    """

    def __init__(self, env: TransformedEnv, acting: ActingPolicy, steps: int, fast: str = "off") -> None:
        self.env, self.acting, self.steps = env, acting, steps
        self.base: BatchedPettingZooEnv = env.base_env
        transforms = list(env.transform) if isinstance(env.transform, Compose) else [env.transform]
        self.rewards = [(i, o) for t in transforms if isinstance(t, RewardSum) for i, o in zip(t.in_keys, t.out_keys)]
        self.init_keys = [t.init_key for t in transforms if isinstance(t, InitTracker)]
        self.count_keys = [t.step_count_key for t in transforms if isinstance(t, StepCounter)]
        self.reward_keys = set(self.base.reward_keys)
        self.plans = [TensorPlan.of(p[0]) for p in acting.policies]
        self.dists = [p[-1] for p in acting.policies]
        self.critic_plans = [TensorPlan.of(c) for c in acting.critics]
        self._inputs = list(dict.fromkeys(k for p in [*self.plans, *self.critic_plans] for k in p.in_keys))
        self._networks = accelerate(self._run_networks, fast)
        self._carrier: TensorDictBase | None = None

    @classmethod
    def of(cls, env: EnvBase, acting: ActingPolicy, steps: int, fast: str = "off") -> tuple[TensorRollout | None, str]:
        """The lean rollout of ``env`` with ``acting`` and ``""``, or ``None`` and why TorchRL's collector is kept."""
        base = getattr(env, "base_env", env)
        if not isinstance(base, BatchedPettingZooEnv):
            return None, "the env is not a BatchedPettingZooEnv"
        if env.device is None or env.device.type != "cpu":
            return None, f"the env is on {env.device} (the lean rollout steps CPU tasks)"
        transforms = list(env.transform) if isinstance(env.transform, Compose) else [env.transform] if env is not base else []
        if not isinstance(env, TransformedEnv) or not all(type(t) in _KNOWN for t in transforms):
            return None, f"transforms other than {[t.__name__ for t in _KNOWN]} are on the env"
        if any(isinstance(t, StepCounter) and t.max_steps is not None for t in transforms):
            return None, "a StepCounter sets a time limit (the task has none of its own)"
        for p in acting.policies:
            if not isinstance(p, ProbabilisticTensorDictSequential) or len(p) != 2 or TensorPlan.of(p[0], what="policy") is None:
                return None, "a policy is not a network followed by its distribution"
        if any(TensorPlan.of(c, what="critic") is None for c in acting.critics):
            return None, "a recurrent critic is not a plain chain of TensorDictModules"
        return cls(env, acting, steps, fast), ""

    def reset(self) -> None:
        """Start the next rollout from fresh episodes (TorchRL's ``Collector.reset``)."""
        self._carrier = None

    def _run_networks(self, values: dict) -> dict:
        """Every policy network, then every recurrent critic, on ``values`` (their outputs, by key)."""
        out = dict(values)
        for plan in [*self.plans, *self.critic_plans]:
            plan(out)
        return {k: v for k, v in out.items() if k not in values}

    def _act(self, values: dict) -> None:
        """The acting policy's outputs written into ``values``: network outputs, then per group an action and its log-probability."""
        values.update(self._networks({k: values[k] for k in self._inputs}))
        random = self.acting.step < self.acting.random_timesteps
        for name, prob, mask_key in zip(self.acting.names, self.dists, self.acting.mask_keys):
            dist = prob.get_dist(values)
            if random:
                action = random_actions(self.acting.action_specs[name], None if mask_key is None else values[mask_key])
                values[prob.dist_sample_keys[0]], values[prob.log_prob_key] = action, dist.log_prob(action)
            else:
                values[prob.dist_sample_keys[0]], values[prob.log_prob_key] = sample_and_log_prob(dist, reparameterize=dist.has_rsample)
        self.acting.step += 1

    def _next(self, root: dict, values: dict, arrays: dict) -> dict:
        """The ``"next"`` entries of a step: the env's, then what the transforms add (counts, returns, init flags, states)."""
        nxt = {k: v.clone() for k, v in arrays.items()}
        for k in self.count_keys:
            nxt[k] = root[k] + 1
        for i, o in self.rewards:
            nxt[o] = root[o] + nxt[i]
        for k in self.init_keys:
            nxt[k] = torch.zeros_like(root[k])
        nxt.update({k[1:]: v for k, v in values.items() if _is_next(k)})  # recurrent states, written by the networks
        return nxt

    def rollout(self) -> TensorDictBase:
        """``steps`` steps of every env: a ``[num_envs, steps]`` TensorDict with the collector's keys."""
        if self._carrier is None:
            self._carrier = self.env.reset()
        root = dict(self._carrier.items(True, True))
        out = None
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
            for t in range(self.steps):
                values = dict(root)
                self._act(values)
                nxt = self._next(root, values, self.base.step_buffers({g: values[g, "action"] for g in self.base.group_map}))
                if out is None:
                    out, root_leaves, next_leaves = self._allocate(values, nxt)
                for k, buf in root_leaves.items():
                    buf[:, t] = values[k]
                for k, buf in next_leaves.items():
                    buf[:, t] = nxt[k]
                root = {k: nxt.get(k, v) for k, v in root.items()}  # TorchRL's step_mdp: "next" becomes the root, rewards left out
                if root["done"].any():  # a host read, as TorchRL's step_and_maybe_reset makes (the tasks step on the host anyway)
                    self._carrier.update(root)
                    self._carrier = self.env.maybe_reset(self._carrier)
                    root = dict(self._carrier.items(True, True))
            self._carrier.update(root)
        return out

    def _allocate(self, values: dict, nxt: dict) -> tuple[TensorDictBase, dict, dict]:
        """The output TensorDict ``[num_envs, steps]``, its sub-TensorDicts sized as the carrier's, and its leaves: by
        the key of a step's values (the root entries), and by the key of a step's ``"next"`` entries."""
        n = self.base.batch_size[0]
        out = TensorDict({}, [n, self.steps])
        root_leaves = {k: self._leaf(out, _key(k), v) for k, v in values.items() if not _is_next(k)}
        next_leaves = {k: self._leaf(out, ("next", *_key(k)), v) for k, v in nxt.items()}
        return out, root_leaves, next_leaves

    def _leaf(self, out: TensorDictBase, key: tuple, v: torch.Tensor) -> torch.Tensor:
        """An empty ``[num_envs, steps, ...]`` buffer like ``v`` set at ``key`` of ``out`` (sub-TensorDicts made as needed)."""
        n = self.base.batch_size[0]
        for i in range(1, len(key)):
            sub = key[:i]
            if sub not in out.keys(True):
                inner = sub[1:] if sub[0] == "next" else sub
                like = self._carrier.get(inner, None) if inner else None
                extra = like.batch_size[1:] if isinstance(like, TensorDictBase) else ()
                out.set(sub, TensorDict({}, [n, self.steps, *extra]))
        buf = torch.empty((n, self.steps, *v.shape[1:]), dtype=v.dtype)
        out.set(key, buf)
        return buf


def _key(k: Any) -> tuple:
    return (k,) if isinstance(k, str) else tuple(k)


def _is_next(k: Any) -> bool:
    return isinstance(k, tuple) and k[0] == "next"
