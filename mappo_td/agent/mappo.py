"""skrl's MAPPO agent API (skrl 1.x documentation): ``MAPPO(possible_agents, models, memories, observation_spaces, action_spaces,
device, cfg, shared_observation_spaces)`` driven by the user's own loop, over dicts of tensors keyed by agent name.

A thin layer over the trainer's units: the learner is built by
:func:`~mappo_td.train.learner.build_learner` on an :class:`~mappo_td.agent.external.ExternalEnv`
(the spaces as TorchRL specs), :meth:`MAPPO.act` runs the trainer's acting policy,
:meth:`MAPPO.record_transition` stores steps in the trainer's TensorDict layout and
:meth:`MAPPO.post_interaction` runs :func:`mappo_td.train.loop.update` every ``rollouts`` steps,
then logs and checkpoints like the trainer.

=====================  ==================================  ============================================
argument               per agent name                      shape
=====================  ==================================  ============================================
``states``             observation                          ``[num_envs, *obs_shape]`` (Dict: a dict)
``actions`` (returned) action                               Discrete ``[num_envs, 1]``, MultiDiscrete
                                                            ``[num_envs, k]``, Box ``[num_envs, *shape]``
``rewards``            reward                               ``[num_envs, 1]`` or ``[num_envs]``
``terminated``,        done flags                           ``[num_envs, 1]`` or ``[num_envs]``
``truncated``
=====================  ==================================  ============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from mappo_td.agent.external import ExternalEnv
from mappo_td.agent.memory import check_memories, read_rollout, write_step
from mappo_td.agent.models import MissingValue, check_models, group_models, instances
from mappo_td.agent.spaces import Space, check_agent_names, group_agents, group_specs
from mappo_td.config import TrainConfig, merge_config
from mappo_td.train.checkpoint import load_checkpoint, load_learner_state, save_learner
from mappo_td.train.learner import build_learner
from mappo_td.train.logging import RunLogger, new_run_dir
from mappo_td.train.loop import log_row, shape_rewards, update

MAPPO_DEFAULT_CONFIG: dict[str, Any] = TrainConfig().to_dict()["mappo"]  # skrl's MAPPO_DEFAULT_CONFIG keys, with its defaults


def _tensor(x: Any, device: torch.device, what: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device)
    try:
        return torch.as_tensor(np.asarray(x), device=device)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what}: expected a tensor or array, got {type(x).__name__} ({err}).") from None


class MAPPO:
    """MAPPO as an agent object for your own environment loop (skrl's API).

    Args:
        possible_agents: every agent's name.
        models: ``None`` (mappo_td's builders, from the config's ``model`` section), or by agent name
            ``{"policy": module, "value": module}`` (skrl's layout; the contract is in :mod:`mappo_td.agent.models`,
            sizes from :func:`~mappo_td.agent.model_sizes`). A policy alone can act; training needs the value too.
        memories: ``None`` (one internal buffer of ``rollouts`` steps), or one memory per agent name as in skrl
            (:class:`~mappo_td.agent.Memory`, or skrl's ``RandomMemory``, of at least ``rollouts`` steps; see
            :mod:`mappo_td.agent.memory` for what is stored under which name).
        observation_spaces, action_spaces: per agent name, gymnasium spaces or shapes.
        device: where models and buffers live.
        cfg: skrl's ``MAPPO_DEFAULT_CONFIG`` keys verbatim (values may be per-agent dicts), or mappo_td's
            typed layout (``{"mappo": ..., "model": ...}``).
        shared_observation_spaces: accepted for skrl's signature; the centralized critic reads every
            agent's observation (as the trainer does on PettingZoo).
        num_envs: environments stepped together (the first dim of every tensor).

    Example:
        >>> import gymnasium as gym, tempfile
        >>> names = ["agent_0", "agent_1"]
        >>> agent = MAPPO(names, observation_spaces={a: gym.spaces.Box(-1, 1, (4,)) for a in names},
        ...               action_spaces={a: gym.spaces.Discrete(3) for a in names}, device="cpu", num_envs=2,
        ...               cfg={"rollouts": 2, "experiment": {"directory": tempfile.mkdtemp()}})
        >>> agent.init()
        >>> states = {a: torch.zeros(2, 4) for a in names}
        >>> actions, log_prob, outputs = agent.act(states, timestep=0, timesteps=4)
        >>> actions["agent_0"].shape, log_prob["agent_0"].shape
        (torch.Size([2, 1]), torch.Size([2, 1]))
    """

    def __init__(self, possible_agents: Sequence[str], models: Mapping[str, Any] | None = None, memories: Mapping[str, Any] | None = None,
                 observation_spaces: Mapping[str, Space] | None = None, action_spaces: Mapping[str, Space] | None = None,
                 device: str | torch.device | None = None, cfg: Mapping[str, Any] | None = None,
                 shared_observation_spaces: Mapping[str, Space] | None = None, *, num_envs: int = 1) -> None:
        self.possible_agents = list(possible_agents)
        user = check_models(models, self.possible_agents) if models is not None else None
        for name, spaces in (("observation_spaces", observation_spaces), ("action_spaces", action_spaces)):
            if spaces is None:
                raise ValueError(f"{name} is required: a dict by agent name of gymnasium spaces (or shapes).")
            check_agent_names(spaces, self.possible_agents, name)
        d = dict(cfg or {})
        self.cfg = TrainConfig.from_dict(merge_config(d, {"env": {"num_envs": int(num_envs)}, "progress": False,
                                                          "device": str(device or "cpu")}))
        if self.cfg.model.body != "mlp":
            raise ValueError("model.body='gru' is not supported by the agent API yet; use the trainer (mappo-td train) for GRUs.")
        self.group_map = group_agents(self.possible_agents, [observation_spaces, action_spaces, *([instances(user)] if user else [])])
        obs_spec, act_spec = group_specs(self.group_map, observation_spaces, action_spaces, int(num_envs))
        nets = group_models(user, self.group_map) if user else None
        self.learner = build_learner(self.cfg, ExternalEnv(self.group_map, obs_spec, act_spec), models=nets)
        self._no_value = [v for g in (nets or {}).values() if isinstance(v := g["value"], MissingValue)]
        self.device, self.num_envs = self.learner.device, int(num_envs)
        self.memories = check_memories(memories, self.possible_agents, self.num_envs, self.cfg.mappo.rollouts) if memories else None
        self._steps: list[TensorDictBase] = []  # the internal buffer (memories=None)
        self._template: TensorDictBase | None = None  # with memories: one recorded step, the layout read_rollout rebuilds
        self._recorded = 0
        self._last: TensorDictBase | None = None
        self._returns = {g: torch.zeros(self.num_envs, len(a), 1, device=self.device) for g, a in self.group_map.items()}
        self._lengths = torch.zeros(self.num_envs, 1, dtype=torch.int64, device=self.device)  # episode statistics, as the trainer's
        self.logger: RunLogger | None = None

    # --- names and inputs ---------------------------------------------------------------------------
    def _stack(self, per_agent: Mapping[str, Any], what: str, group: str, tail: tuple[int, ...] | None = None) -> torch.Tensor:
        agents = self.group_map[group]
        missing = [a for a in agents if a not in per_agent]
        if missing:
            raise ValueError(f"{what}: no entry for agent(s) {missing}; every step needs every agent of {self.possible_agents}.")
        xs = [_tensor(per_agent[a], self.device, f"{what}[{a!r}]") for a in agents]
        for a, x in zip(agents, xs):
            if x.ndim == 0 or x.shape[0] != self.num_envs:
                raise ValueError(f"{what}[{a!r}] has shape {tuple(x.shape)}; its first dim must be num_envs={self.num_envs}.")
        out = torch.stack(xs, dim=1)
        if tail is not None:
            out = out.reshape(self.num_envs, len(agents), *tail)
        return out

    def _observe(self, states: Mapping[str, Any], td: TensorDictBase) -> TensorDictBase:
        for g in self.group_map:
            spec = self.learner.env.observation_spec[g, "observation"]
            if isinstance(states.get(self.group_map[g][0]), Mapping):
                for k in spec.keys(True, True):
                    sub = {a: states[a][k] if isinstance(k, str) else states[a][k[0]] for a in self.group_map[g] if a in states}
                    td.set((g, "observation", *((k,) if isinstance(k, str) else k)), self._stack(sub, f"states[...][{k!r}]", g,
                                                                                                   tuple(spec[k].shape[2:])).to(spec[k].dtype))
            else:
                td.set((g, "observation"), self._stack(states, "states", g, tuple(spec.shape[2:])).to(spec.dtype))
            td.set((g, "mask"), torch.ones(self.num_envs, len(self.group_map[g]), dtype=torch.bool, device=self.device))
        return td

    # --- skrl's methods -----------------------------------------------------------------------------
    def init(self, trainer_cfg: Mapping[str, Any] | None = None) -> None:
        """Create the run folder and its logger (TensorBoard, CSV), as the trainer's."""
        if self.logger is None:
            self.logger = RunLogger(new_run_dir(self.cfg), self.cfg)

    def act(self, states: Mapping[str, Any], timestep: int, timesteps: int) -> tuple[dict, dict, dict]:
        """``(actions, log_prob, outputs)`` by agent name for ``states``; uniform legal actions while
        ``timestep < random_timesteps``."""
        td = self._observe(states, TensorDict({}, batch_size=[self.num_envs], device=self.device))
        self.learner.acting.step = int(timestep)
        with torch.no_grad():
            td = self.learner.acting(td)
        self._last = td
        actions, log_prob = {}, {}
        for g, agents in self.group_map.items():
            a, lp = td.get((g, "action")), td.get((g, "action_log_prob"))
            for i, name in enumerate(agents):
                actions[name] = a[:, i].unsqueeze(-1) if a.ndim == 2 else a[:, i]
                log_prob[name] = lp[:, i].unsqueeze(-1)
        return actions, log_prob, {}

    def record_transition(self, states: Mapping[str, Any], actions: Mapping[str, Any], rewards: Mapping[str, Any],
                          next_states: Mapping[str, Any], terminated: Mapping[str, Any], truncated: Mapping[str, Any],
                          infos: Any, timestep: int, timesteps: int, log_prob: Mapping[str, Any] | None = None) -> None:
        """Store one step of every env, with the log-probabilities of the last :meth:`act` (or ``log_prob``, by agent
        name, for actions that did not come from it, e.g. replayed data)."""
        if self._last is None and log_prob is None:
            raise RuntimeError("record_transition needs the log-probabilities of the actions: call act() first, as skrl's loop does.")
        step = self._observe(states, TensorDict({}, batch_size=[self.num_envs], device=self.device))
        nxt = self._observe(next_states, TensorDict({}, batch_size=[self.num_envs], device=self.device))
        all_done = torch.ones(self.num_envs, 1, dtype=torch.bool, device=self.device)
        for g in self.group_map:
            spec = self.learner.env.full_action_spec[g, "action"]
            step.set((g, "action"), self._stack(actions, "actions", g, tuple(spec.shape[2:])).to(spec.dtype))
            lp = self._last.get((g, "action_log_prob")) if log_prob is None else self._stack(log_prob, "log_prob", g, ()).float()
            step.set((g, "action_log_prob"), lp)
            reward = self._stack(rewards, "rewards", g, (1,)).float()
            term = self._stack(terminated, "terminated", g, (1,)).bool()
            trunc = self._stack(truncated, "truncated", g, (1,)).bool()
            self._returns[g] += reward
            nxt.update({(g, "reward"): reward, (g, "terminated"): term, (g, "truncated"): trunc, (g, "done"): term | trunc,
                        (g, "episode_reward"): self._returns[g].clone()})
            all_done &= (term | trunc).all(dim=1)
        self._lengths += 1
        nxt.update({"done": all_done, "terminated": all_done.clone(), "truncated": torch.zeros_like(all_done),
                    "step_count": self._lengths.clone()})
        for g in self.group_map:  # a new episode starts where every agent of the env is done
            self._returns[g] *= ~all_done.unsqueeze(-1)
        self._lengths *= ~all_done
        step.set("next", nxt)
        self._recorded += 1
        if self.memories is None:
            self._steps.append(step)
            return
        write_step(self.memories, step, self.group_map)
        self._template = self._template if self._template is not None else step

    def pre_interaction(self, timestep: int, timesteps: int) -> None:
        """Nothing to do before a step (skrl's hook)."""

    def post_interaction(self, timestep: int, timesteps: int) -> None:
        """Every ``rollouts`` recorded steps: advantages and the update (the trainer's), then log and checkpoint at intervals."""
        m, lrn = self.cfg.mappo, self.learner
        if self._recorded < m.rollouts:
            return
        self._recorded = 0
        if self.memories is None:
            data = torch.stack(self._steps, dim=1)  # [num_envs, rollouts], the collector's layout
            self._steps = []
        else:
            data = read_rollout(self.memories, self._template, self.group_map, m.rollouts)
        lrn.cfg.timesteps = max(int(timesteps), 1)
        shape_rewards(lrn, data)
        lrn.stats.track(data)
        lrn.timestep, lrn.iteration = int(timestep) + 1, lrn.iteration + 1
        if lrn.timestep - 1 >= m.learning_starts:
            if self._no_value:
                raise ValueError(self._no_value[0].message())
            update(lrn, data)
        x = m.experiment
        if self.logger is not None and lrn.timestep // x.write_interval != (lrn.timestep - m.rollouts) // x.write_interval:
            lrn.stats.raise_if_nonfinite(lrn.timestep)
            self.logger.write(log_row(lrn, fps=float("nan")))
        if x.checkpoint_interval and lrn.timestep // x.checkpoint_interval != (lrn.timestep - m.rollouts) // x.checkpoint_interval:
            self.write_checkpoint(lrn.timestep, timesteps)

    def write_checkpoint(self, timestep: int, timesteps: int) -> Path:
        """Write ``<run>/checkpoints/agent_<timestep>.pt`` (the trainer's checkpoint format), atomically."""
        if self.logger is None:
            self.logger = RunLogger(new_run_dir(self.cfg), self.cfg)
        return save_learner(self.learner, self.logger.run_dir / "checkpoints" / f"agent_{timestep}.pt")

    def load(self, path: str | Path) -> None:
        """Restore models, optimizers, preprocessors and counters from a checkpoint of this agent or of the trainer."""
        load_learner_state(self.learner, load_checkpoint(path))

    def set_running_mode(self, mode: str) -> None:
        """skrl's ``"train"`` / ``"eval"``: the models' training flag."""
        for g in self.learner.groups:
            g.policy.train(mode == "train")
            g.critic.train(mode == "train")
