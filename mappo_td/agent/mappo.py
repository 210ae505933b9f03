"""skrl's MAPPO agent API (skrl 1.x documentation): ``MAPPO(possible_agents, models, memories, observation_spaces, action_spaces,
device, cfg, shared_observation_spaces)`` driven by the user's own loop, over dicts of tensors keyed by agent name.

A thin layer over the trainer's units: the learner is built by
:func:`~mappo_td.train.learner.build_learner` on an :class:`~mappo_td.agent.external.ExternalEnv`
(the spaces as TorchRL specs), :meth:`MAPPO.act` runs the trainer's acting policy,
:meth:`MAPPO.record_transition` stores steps in the trainer's TensorDict layout and
:meth:`MAPPO.post_interaction` runs the trainer's iteration (:func:`mappo_td.train.iteration.learn`: the update,
log rows and checkpoints at the same intervals) every ``rollouts`` steps.

=====================  ==================================  ============================================
argument               per agent name                      shape
=====================  ==================================  ============================================
``states``             observation                          ``[num_envs, *obs_shape]`` (Dict: a dict)
``actions`` (returned) action                               Discrete ``[num_envs, 1]``, MultiDiscrete
                                                            ``[num_envs, k]``, Box ``[num_envs, *shape]``
``rewards``            reward                               ``[num_envs, 1]`` or ``[num_envs]``
``terminated``,        done flags                           ``[num_envs, 1]`` or ``[num_envs]``
``truncated``
``action_masks=``,     legal actions (:mod:`.action_masks`)  ``[num_envs, n]`` (MultiDiscrete: ``sum(nvec)``)
``infos=`` (``act``)
=====================  ==================================  ============================================

An agent left out of the dicts is dead (:mod:`mappo_td.agent.alive`).
Recurrent models (``model.body="gru"``): the agent keeps each env's hidden states between calls and stores them
with the transitions (:mod:`mappo_td.agent.recurrent`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mappo_td.agent.action_masks import mask_widths
from mappo_td.agent.external import ExternalEnv
from mappo_td.agent.memory import check_memories, read_rollout, write_step
from mappo_td.agent.models import MissingCritic, check_model_sizes, check_models, group_models, instances
from mappo_td.agent.recurrent import HiddenStates
from mappo_td.agent.spaces import Space, check_agent_names, check_possible_agents, group_agents, group_specs
from mappo_td.agent.steps import StepInputs
from mappo_td.config import TrainConfig, auto_intervals, merge_config, resolve_auto_intervals
from mappo_td.train.checkpoint import load_checkpoint, load_learner_state, save_learner
from mappo_td.train.checkpoint_files import checkpoint_path
from mappo_td.train.iteration import Session, learn
from mappo_td.train.learner import build_learner
from mappo_td.train.logging import RunLogger, new_run_dir
from mappo_td.train.run_folder import claim_run_dir

MAPPO_DEFAULT_CONFIG: dict[str, Any] = TrainConfig().to_dict()["mappo"]  # skrl's MAPPO_DEFAULT_CONFIG keys, with its defaults


class MAPPO:
    """MAPPO as an agent object for your own environment loop (skrl's API).

    Args:
        possible_agents: every agent's name.
        models: ``None`` (mappo_td's builders, from the config's ``model`` section), or by agent name
            ``{"policy": module, "critic": module}`` (skrl's layout, whose ``"value"`` is read as ``"critic"``, with a
            deprecation warning; the contract is in :mod:`mappo_td.agent.models`, sizes from
            :func:`~mappo_td.agent.model_sizes`). A policy alone can act; training needs the critic too.
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
        action_masks: which agents' policies are masked (legal-action masks, :mod:`mappo_td.agent.action_masks`):
            ``None``, those whose observation space is a Dict with an ``"action_mask"`` entry; ``True``, every
            Discrete / MultiDiscrete agent (masks given through ``act``'s ``infos=`` or ``action_masks=``); ``False``, none.

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
                 shared_observation_spaces: Mapping[str, Space] | None = None, *, num_envs: int = 1,
                 action_masks: bool | None = None) -> None:
        self.possible_agents = check_possible_agents(possible_agents)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1 (the environments stepped together: every tensor's first dim), "
                             f"got {num_envs!r}.")
        user = check_models(models, self.possible_agents) if models is not None else None
        for name, spaces in (("observation_spaces", observation_spaces), ("action_spaces", action_spaces)):
            if spaces is None:
                raise ValueError(f"{name} is required: a dict by agent name of gymnasium spaces (or shapes).")
            check_agent_names(spaces, self.possible_agents, name)
        if shared_observation_spaces is not None:
            check_agent_names(shared_observation_spaces, self.possible_agents, "shared_observation_spaces")
        d = dict(cfg or {})
        self._auto = auto_intervals(d)  # skrl's "auto" intervals: made numbers from the config's timesteps, or init(trainer_cfg)'s
        self.cfg = TrainConfig.from_dict(merge_config(d, {"env": {"num_envs": int(num_envs)}, "progress": False,
                                                          "device": str(device or "cpu")}))
        if user and self.cfg.model.body != "mlp":
            raise ValueError(f"models= with model.body={self.cfg.model.body!r}: the agent takes feed-forward networks of your own "
                             "(model.body='mlp'), not recurrent ones yet; for a recurrent agent leave models=None and use mappo_td's "
                             "GRU (model.body='gru', model.rnn_hidden_size, model.rnn_layers, data_chunk_length).")
        if user:
            check_model_sizes(user, observation_spaces, action_spaces, centralized=self.cfg.model.centralized_critic,
                              state_dependent_std=self.cfg.model.state_dependent_std)
        self.group_map = group_agents(self.possible_agents, [observation_spaces, action_spaces, *([instances(user)] if user else [])])
        masks = mask_widths(self.group_map, observation_spaces, action_spaces, action_masks)
        obs_spec, act_spec = group_specs(self.group_map, observation_spaces, action_spaces, int(num_envs), masks=masks)
        nets = group_models(user, self.group_map) if user else None
        self.learner = build_learner(self.cfg, ExternalEnv(self.group_map, obs_spec, act_spec), models=nets)
        self.inputs = StepInputs(self.learner.env, observation_spaces, masks)  # checks, action masks, who is alive
        self._no_critic = [v for g in (nets or {}).values() if isinstance(v := g["critic"], MissingCritic)]
        self.device, self.num_envs = self.learner.device, int(num_envs)
        self.hidden_states = HiddenStates([m for g in self.learner.groups for m in (g.policy, g.critic)], self.num_envs, self.device)
        self.memories = check_memories(memories, self.possible_agents, self.num_envs, self.cfg.mappo.rollouts) if memories else None
        self._steps: list[TensorDictBase] = []  # the internal buffer (memories=None)
        self._template: TensorDictBase | None = None  # with memories: one recorded step, the layout read_rollout rebuilds
        self._recorded = 0
        self._last: TensorDictBase | None = None
        self._returns = {g: torch.zeros(self.num_envs, len(a), 1, device=self.device) for g, a in self.group_map.items()}
        self._lengths = torch.zeros(self.num_envs, 1, dtype=torch.int64, device=self.device)  # episode statistics, as the trainer's
        self.logger: RunLogger | None = None
        self.session: Session | None = None  # the trainer's iteration state (clocks, last row), from the first update
        self._made_at = time.perf_counter()

    # --- skrl's methods -----------------------------------------------------------------------------
    def init(self, trainer_cfg: Mapping[str, Any] | None = None) -> None:
        """Create the run folder and its logger (TensorBoard, CSV), as the trainer's. Optional, unlike skrl's: without
        it, every method works and the run folder is created at the first update. As skrl's, ``"auto"`` write and
        checkpoint intervals follow ``trainer_cfg["timesteps"]`` (``timesteps // 100``, ``// 10``; 0: off) when given."""
        if self._auto and "timesteps" in (trainer_cfg or {}) and self.logger is None:
            x = self.cfg.mappo.experiment
            x = dataclasses.replace(x, **resolve_auto_intervals(dict.fromkeys(self._auto, "auto"), int(trainer_cfg["timesteps"])))
            self.cfg = self.learner.cfg = dataclasses.replace(self.cfg, mappo=dataclasses.replace(self.cfg.mappo, experiment=x))
        self._run_logger()

    def _run_logger(self) -> RunLogger:
        if self.logger is None:  # a new run's folder, claimed as the trainer's: never one that holds another run
            run_dir = new_run_dir(self.cfg)
            self._lock = claim_run_dir(run_dir, "pass another experiment.experiment_name (or experiment.directory)")
            self.logger = RunLogger(run_dir, self.cfg)
        return self.logger

    def act(self, states: Mapping[str, Any], timestep: int, timesteps: int, *, infos: Mapping[str, Any] | None = None,
            action_masks: Mapping[str, Any] | None = None) -> tuple[dict, dict, dict]:
        """``(actions, log_prob, outputs)`` by agent name for the agents of ``states`` (one left out is dead:
        :mod:`mappo_td.agent.alive`); uniform legal actions while ``timestep < random_timesteps``. A masked agent's legal
        actions: ``action_masks[agent]`` > ``infos[agent]["action_mask"]`` > ``states[agent]["action_mask"]`` (a Dict
        space's entry) > all (:mod:`mappo_td.agent.action_masks`). Inputs are checked first (names, shapes, finite
        values: one host read), a wrong one is refused naming the agent, the shape expected and the shape given."""
        td = self.inputs.act_step(states, infos, action_masks)
        td = self.hidden_states.inputs(td)  # recurrent models: "is_init" and each env's states (mappo_td.agent.recurrent)
        self.learner.acting.step = int(timestep)
        with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):  # sampled, as the trainer's collector acts
            td = self.learner.acting(td)
        self._last = td
        actions, log_prob = {}, {}
        for g, agents in self.group_map.items():
            a, lp = td.get((g, "action")), td.get((g, "action_log_prob"))
            for i, name in (p for p in enumerate(agents) if p[1] in states):
                actions[name] = a[:, i].unsqueeze(-1) if a.ndim == 2 else a[:, i]
                log_prob[name] = lp[:, i].unsqueeze(-1)
        return actions, log_prob, {}

    def record_transition(self, states: Mapping[str, Any], actions: Mapping[str, Any], rewards: Mapping[str, Any],
                          next_states: Mapping[str, Any], terminated: Mapping[str, Any], truncated: Mapping[str, Any],
                          infos: Any, timestep: int, timesteps: int, log_prob: Mapping[str, Any] | None = None,
                          action_masks: Mapping[str, Any] | None = None) -> None:
        """Store one step of every env, with the log-probabilities of the last :meth:`act` (or ``log_prob``, by agent
        name, for actions that did not come from it, e.g. replayed data).

        Every input is checked before anything is stored (names; shapes ``[num_envs, ...]`` per agent; values finite,
        Discrete / MultiDiscrete actions integers within the space, integer-valued floats accepted; done flags 0/1),
        with one host read per call; a wrong one is refused naming the agent, the input, what was expected and given.
        Agents left out of ``states`` are dead (leave them out of every input), as are agents done earlier in the
        episode: :mod:`mappo_td.agent.alive`. The stored legal-action masks are the last ``act``'s (``action_masks``,
        by agent name, replaces them); ``infos`` (skrl's, of ``next_states``) are not read."""
        if self._last is None and log_prob is None:
            raise RuntimeError("record_transition needs the log-probabilities of the actions: call act() first, as skrl's loop does.")
        self.hidden_states.check(self._last)
        step, nxt = self.inputs.transition(states, actions, rewards, next_states, terminated, truncated, log_prob, action_masks, self._last)
        all_done = torch.ones(self.num_envs, 1, dtype=torch.bool, device=self.device)
        for g in self.group_map:
            term, trunc = nxt.get((g, "terminated")), nxt.get((g, "truncated"))
            self._returns[g] += nxt.get((g, "reward"))
            nxt.update({(g, "done"): term | trunc, (g, "episode_reward"): self._returns[g].clone()})
            all_done &= (term | trunc).all(dim=1)
        self._lengths += 1
        nxt.update({"done": all_done, "terminated": all_done.clone(), "truncated": torch.zeros_like(all_done),
                    "step_count": self._lengths.clone()})
        for g in self.group_map:  # a new episode starts where every agent of the env is done
            self._returns[g] *= ~all_done.unsqueeze(-1)
        self._lengths *= ~all_done
        self.inputs.alive.end_step({g: nxt.get((g, "done")) for g in self.group_map}, all_done)
        self.hidden_states.record(self._last, step, nxt, all_done)  # stored with the step, then advanced (reset where all_done)
        step.set("next", nxt)
        self._recorded += 1
        if self.memories is None:  # the last rollouts steps, as a memory of rollouts steps keeps them (e.g. an evaluation loop)
            self._steps.append(step)
            del self._steps[:-self.cfg.mappo.rollouts]
            return
        write_step(self.memories, step, self.group_map)
        self._template = self._template if self._template is not None else step

    def pre_interaction(self, timestep: int, timesteps: int) -> None:
        """Nothing to do before a step (skrl's hook)."""

    def post_interaction(self, timestep: int, timesteps: int) -> None:
        """Every ``rollouts`` recorded steps: the trainer's iteration on them (:func:`~mappo_td.train.iteration.learn`):
        advantages and the update, then a log row and a checkpoint at the config's intervals and at ``timesteps``."""
        m = self.cfg.mappo
        if self._recorded < m.rollouts:
            return
        self._recorded = 0
        if self.memories is None:
            data = torch.stack(self._steps, dim=1)  # [num_envs, rollouts], the collector's layout
            self._steps = []
        else:
            data = read_rollout(self.memories, self._template, self.group_map, m.rollouts)
        if self._no_critic and int(timestep) >= m.learning_starts:
            raise ValueError(self._no_critic[0].message())
        learn(self.learner, data, self._session(), timestep=int(timestep) + 1, timesteps=max(int(timesteps), 1))

    def _session(self) -> Session:
        if self.session is None:  # the envs are the user's: none restarts at a checkpoint; the clocks run from construction
            self.session = Session(self._run_logger(), restart_at_checkpoints=False, wall_before=self.learner.wall_s,
                                   started=self._made_at, logged_at=self._made_at)
        return self.session

    def write_checkpoint(self, timestep: int, timesteps: int) -> Path:
        """Write ``<run>/checkpoints/agent_<timestep>.pt`` (the trainer's checkpoint format), atomically."""
        return save_learner(self.learner, checkpoint_path(self._run_logger().run_dir, timestep))

    def load(self, path: str | Path) -> None:
        """Restore models, optimizers, preprocessors and counters from a checkpoint of this agent or of the trainer.
        As the trainer's resume, every env starts a new episode: hidden states zero, every agent alive, episode
        statistics from zero, and the steps recorded since the last update dropped (start new episodes in your envs too)."""
        load_learner_state(self.learner, load_checkpoint(path))
        self.hidden_states.reset()
        self.inputs.alive.reset()
        for r in self._returns.values():
            r.zero_()
        self._lengths.zero_()
        self._steps, self._recorded, self._last = [], 0, None

    def set_running_mode(self, mode: str) -> None:
        """skrl's ``"train"`` / ``"eval"``: the models' training flag."""
        for g in self.learner.groups:
            g.policy.train(mode == "train")
            g.critic.train(mode == "train")
