"""What a training run is made of, built once from a config: env, groups, acting policy, collector, step functions.

:class:`Learner` is plain state; the loop (:mod:`~mappo_td.train.loop`), checkpoints
(:mod:`~mappo_td.train.checkpoint`) and evaluation (:mod:`~mappo_td.train.evaluate`)
are functions of it, and :class:`~mappo_td.MAPPOTrainer` is the facade over all of them.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import EnvBase

from mappo_td.config import EnvConfig, TrainConfig, check_checkpoint_interval
from mappo_td.envs import group_map as env_group_map
from mappo_td.envs import make_env, pettingzoo_time_limit, resolve_device, with_episode_stats
from mappo_td.fast import accelerate
from mappo_td.keys import NestedKey
from mappo_td.models.recurrent import recurrent_states, with_recurrent_state
from mappo_td.train.acting import ActingPolicy
from mappo_td.train.build import Group, build_groups
from mappo_td.train.data import update_keys
from mappo_td.train.distributed import all_reduce_sum, broadcast_state, init_distributed, rank_seed, world
from mappo_td.train.render import check_render
from mappo_td.train.rollout import TensorRollout
from mappo_td.train.stats import TrainingStats, finite_keys
from mappo_td.train.step import masked_update_step, update_step


@dataclass
class Learner:
    """The state of one training run (see :func:`build_learner`)."""

    cfg: TrainConfig
    device: torch.device
    env: EnvBase
    group_map: dict[str, list[str]]
    groups: list[Group]
    acting: ActingPolicy
    collector: Collector | TensorRollout  # TorchRL's, or the lean rollout where it applies (batched PettingZoo tasks)
    stats: TrainingStats
    step_fns: dict[str, Callable]  # per group: update_step (masked_update_step with a KL stop), wrapped by the fast path
    keep_updating: dict[str, torch.Tensor]  # per group with a KL threshold: the early-stop mask, reset in place each epoch
    reward_keys: list[NestedKey]
    update_keys: list[NestedKey]  # what a minibatch carries
    user_env: bool = False  # the env was given by the caller (evaluation then uses it too)
    rank: int = 0  # this process's rank under torchrun (0 alone writes outputs)
    world_size: int = 1  # processes training together (each with its own num_envs environments)
    timestep: int = 0  # environment steps taken (each advances every parallel env)
    iteration: int = 0
    updates: int = 0  # gradient steps
    wall_s: float = 0.0  # wall-clock seconds of training so far (resumed runs continue the count)
    frames_at: tuple[int, int] = (0, 0)  # (timestep, frames) where the frame count was set (a resume); see frames

    @property
    def frames(self) -> int:
        """Frames collected by every process so far (the count at ``frames_at``, then ``num_envs × world_size`` per timestep)."""
        return self.frames_at[1] + (self.timestep - self.frames_at[0]) * self.cfg.env.num_envs * self.world_size


def check_device(cfg: TrainConfig) -> torch.device:
    """The run's device, checked against the fast mode before anything is built.

    Example:
        >>> check_device(TrainConfig.from_dict({"device": "cpu", "fast": "cudagraphs"}))
        Traceback (most recent call last):
        ...
        ValueError: fast='cudagraphs' needs a CUDA device, the run is on cpu; use fast='compile' (or 'off') on CPU.
    """
    device = resolve_device(cfg.device)
    if cfg.fast == "cudagraphs" and device.type != "cuda":
        raise ValueError(f"fast='cudagraphs' needs a CUDA device, the run is on {device}; use fast='compile' (or 'off') on CPU.")
    return device


def episode_length(cfg: EnvConfig) -> int | None:
    """The time limit that ends every episode of ``cfg``'s environment (``max_steps``: VMAS, and PettingZoo tasks that
    have one of their own, their ``max_cycles``), or None where episodes end by themselves (classic board games).

    Example:
        >>> episode_length(EnvConfig(max_steps=50)), episode_length(EnvConfig(backend="pettingzoo", scenario="connect_four_v3"))
        (50, None)
    """
    return cfg.max_steps if cfg.backend == "vmas" or pettingzoo_time_limit(cfg.scenario) else None


def check_run(cfg: TrainConfig, device: torch.device, rank: int = 0) -> None:
    """What can only be checked against the environment ``cfg`` builds, before anything is run or written: a
    ``checkpoint_interval`` under which episodes never finish (refused; one that cuts them short: a warning, from
    rank 0), and, with ``eval_render``, that the environment renders frames.

    Example:
        >>> check_run(TrainConfig.from_dict({"experiment": {"checkpoint_interval": 40}}), torch.device("cpu"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: checkpoint_interval=40 puts checkpoints as little as 32 steps apart (...), less than an episode (100 steps): ...
    """
    warning = check_checkpoint_interval(cfg.mappo, cfg.timesteps, episode_length(cfg.env))
    if warning and rank == 0:
        warnings.warn(warning, stacklevel=3)
    x = cfg.mappo.experiment
    if x.eval_interval and x.eval_render:
        check_render(cfg.env, device)


def sized_to(cfg: TrainConfig, env: EnvBase) -> TrainConfig:
    """``cfg`` with ``env.num_envs`` set to the number of environments ``env`` steps at once (its batch size), which wins.

    Example:
        >>> from mappo_td.envs import EnvConfig
        >>> sized_to(TrainConfig(), make_env(EnvConfig(num_envs=3))).env.num_envs
        3
    """
    n = env.batch_size.numel()
    return cfg if cfg.env.num_envs == n else dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, num_envs=n))


def build_learner(cfg: TrainConfig, env: EnvBase | None = None, models: Mapping[str, Mapping[str, nn.Module]] | None = None) -> Learner:
    """Check (``check_run``), seed, then build everything a run needs from ``cfg`` (``env``: use this TorchRL multi-agent
    env instead of ``cfg.env``, its batch size as ``env.num_envs``;
    ``models``: by group, ``{"policy": network, "critic": network}`` in place of the MLPs, see ``build_group``).

    Under ``torchrun`` (several processes) this joins the process group, seeds each rank's
    environments and sampling apart (``rank_seed``), gives
    every rank rank 0's parameters and makes the groups data-parallel
    (``make_data_parallel``).

    Example:
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}}))
        >>> lrn.group_map, list(lrn.step_fns), lrn.keep_updating
        ({'agents': ['agent_0', 'agent_1', 'agent_2']}, ['agents'], {})
    """
    device = init_distributed(check_device(cfg), cfg.dist_timeout)
    rank, world_size = world()
    torch.manual_seed(cfg.seed)
    user_env = env is not None
    if user_env:  # its own size wins: frames, config.json and the collector follow it
        cfg = sized_to(cfg, env)
    else:
        check_run(cfg, device, rank)
    env = with_episode_stats(env) if user_env else make_env(cfg.env, device, rank_seed(cfg.seed, rank))
    gmap = env_group_map(env)
    groups = build_groups(cfg, env.observation_spec, env.full_action_spec, gmap, device, models)
    if world_size > 1:
        make_data_parallel(groups)
        torch.manual_seed(rank_seed(cfg.seed, rank))  # sampling and minibatch draws differ per rank
    env = with_recurrent_state(env, *[m for g in groups for m in (g.policy, g.critic)])  # InitTracker + primer (body=gru)
    acting = ActingPolicy({g.name: g.policy for g in groups}, {g.name: env.full_action_spec[g.name, "action"] for g in groups},
                          cfg.mappo.random_timesteps, fast=cfg.fast,
                          critics={g.name: g.critic for g in groups if recurrent_states(g.critic)})
    collector = TensorRollout.of(env, acting, cfg.mappo.rollouts, cfg.fast)[0]  # the lean rollout: batched PettingZoo tasks
    collector = collector or Collector(env, acting, frames_per_batch=cfg.frames_per_iteration, total_frames=-1, device=device,
                                       auto_register_policy_transforms=False, trust_policy=True)
    checked = finite_keys(env, gmap)
    reward_keys = [k for k in checked if k[-1] == "reward"]
    alive_keys = [g.loss.tensor_keys.alive for g in groups if g.loss.tensor_keys.alive in env.observation_spec.keys(True)]
    return Learner(
        cfg=cfg, device=device, env=env, group_map=gmap, groups=groups, acting=acting, collector=collector,
        stats=TrainingStats(gmap, checked, device, reduce=all_reduce_sum if world_size > 1 else None),
        step_fns={g.name: accelerate(functools.partial(update_step if g.kl_threshold is None else masked_update_step, g), cfg.fast)
                  for g in groups},
        keep_updating={g.name: torch.ones_like(g.optimizer.lr, dtype=torch.bool) for g in groups if g.kl_threshold is not None},
        reward_keys=reward_keys, update_keys=update_keys(groups, [*reward_keys, *alive_keys]), user_env=user_env, rank=rank, world_size=world_size,
    )


def make_data_parallel(groups: list[Group]) -> None:
    """Make ``groups`` train as one across the process group: rank 0's parameters and statistics on every rank,
    gradients and KL averaged in the update step, advantage standardization and running standardizers global.

    Example:
        >>> lrn = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}}))
        >>> make_data_parallel(lrn.groups)  # one process: nothing to share, but the same code path
        >>> lrn.groups[0].data_parallel, lrn.groups[0].gae.reduce is all_reduce_sum
        (True, True)
    """
    for g in groups:
        broadcast_state([g.policy, g.critic, g.loss, *g.preprocessors.values()])
        g.data_parallel = True
        g.gae.reduce = all_reduce_sum
        for p in g.preprocessors.values():
            p.reduce = all_reduce_sum
