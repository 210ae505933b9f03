"""The agent API's input layer: one call's dicts by agent name as the trainer's TensorDict step, every input checked
(:class:`~mappo_td.agent.checks.InputCheck`), legal-action masks picked by their precedence
(:mod:`~mappo_td.agent.action_masks`), dead agents zeroed and masked out (:mod:`~mappo_td.agent.alive`).

==============================  =====================================  ==================================================
entry (group ``g``)             from                                   dead agents
==============================  =====================================  ==================================================
``(g, "observation")``          ``states`` (a Dict's mask taken out)   zeros
``(g, "action_mask")``          :data:`~.action_masks.SOURCES`         every action legal
``(g, "mask")`` (alive)         present, not dead, a legal action      false
``(g, "action")``, log-prob     ``actions``, the last ``act``          zeros (stored, never used)
``("next", g, ...)``            ``next_states``, ``rewards``, flags    zeros; ``terminated`` and ``truncated`` true
==============================  =====================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.data import MultiCategorical, Unbounded

from mappo_td.agent.action_masks import MASK_KEY, acting, illegal, mask_sources, mask_spec, split_observation_space, strip_masks
from mappo_td.agent.alive import AliveTracker
from mappo_td.agent.checks import InputCheck
from mappo_td.agent.external import ExternalEnv, empty_step

IN_STATES = "; an agent given in states needs its action (one left out of states is dead: leave it out of every input)"
IN_NEXT_STATES = ("; an agent given in next_states needs its reward and done flags (one alive at the step and left out of "
                  "next_states died there: reward 0, terminated and truncated, as a PettingZoo parallel env's dicts say)")


class StepInputs:
    """Builds :meth:`~mappo_td.agent.MAPPO.act`'s and ``record_transition``'s TensorDicts for ``env``'s groups
    (``masks``: ``{group: mask width}`` of the masked ones), and keeps who is alive (:attr:`alive`).

    Example:
        >>> import gymnasium as gym
        >>> from mappo_td.agent.spaces import group_specs
        >>> obs = {a: gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (4,)), "action_mask": gym.spaces.Box(0, 1, (3,))})
        ...        for a in ("p_0", "p_1")}
        >>> gmap = {"p": ["p_0", "p_1"]}
        >>> env = ExternalEnv(gmap, *group_specs(gmap, obs, {a: gym.spaces.Discrete(3) for a in obs}, 2, masks={"p": 3}))
        >>> inputs = StepInputs(env, obs, {"p": 3})
        >>> states = {"p_0": {"observation": torch.zeros(2, 4), "action_mask": torch.tensor([[1, 0, 1], [0, 0, 0]])},
        ...           "p_1": {"observation": torch.zeros(2, 4), "action_mask": torch.ones(2, 3)}}
        >>> td = inputs.act_step(states, infos={"p_1": {"action_mask": torch.tensor([[0, 1, 0], [1, 1, 1]])}})
        >>> td["p", "action_mask"][0].int().tolist(), td["p", "mask"].tolist()  # infos win over the Dict entry; no legal action: waits
        ([[1, 0, 1], [0, 1, 0]], [[True, True], [False, True]])
    """

    def __init__(self, env: ExternalEnv, observation_spaces: Mapping[str, Any], masks: Mapping[str, int]) -> None:
        self.env, self.group_map, self.masks = env, env.group_map, dict(masks)
        self.num_envs, self.device = env.batch_size[0], env.device
        self.names = [a for agents in self.group_map.values() for a in agents]
        self.split = {a: list(s.spaces) for a, s in observation_spaces.items() if split_observation_space(s)[1] is not None}
        self.bare = [a for a in self.split if set(observation_spaces[a].spaces) == {"observation", MASK_KEY}]
        self.nvec = {g: (env.full_action_spec[g, "action"].nvec.reshape(-1, env.full_action_spec[g, "action"].shape[-1])[0].tolist()
                         if isinstance(env.full_action_spec[g, "action"], MultiCategorical) else None) for g in self.group_map}
        self.alive = AliveTracker(self.group_map, self.num_envs, self.device)

    def _known(self, call: str, inputs: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Every input a dict by agent name, naming no agent outside ``possible_agents``."""
        for key, d in inputs.items():
            if d is None:
                continue
            if not isinstance(d, Mapping):
                raise TypeError(f"{call}: {key} must be a dict by agent name, got {type(d).__name__}.")
            unknown = [k for k in d if k not in self.names]
            if unknown:
                raise ValueError(f"{call}: {key}: unknown agent name(s) {unknown}; valid names: {self.names}.")

    def _unmasked(self, call: str, action_masks: Mapping[str, Any] | None, infos: Mapping[str, Any] | None) -> None:
        """Refuse masks given for agents whose policy takes none (they would be ignored: illegal actions)."""
        given = [a for g, agents in self.group_map.items() if g not in self.masks for a in agents
                 if a in (action_masks or {}) or (isinstance((infos or {}).get(a), Mapping) and MASK_KEY in infos[a])]
        if given:
            raise ValueError(f"{call}: an action mask is given for agent(s) {given}, whose policy takes none: construct "
                             "MAPPO(..., action_masks=True) to mask every Discrete / MultiDiscrete agent (a Dict observation "
                             "space with an 'action_mask' entry masks its agents by itself).")

    def observe(self, check: InputCheck, states: Mapping[str, Any], key: str, present: Mapping[str, torch.Tensor]) -> TensorDictBase:
        """A step with every group's observation of ``states``: zeros where ``present`` (by group) is false."""
        for a in (a for a in self.split if a in states and not (isinstance(states[a], Mapping) and MASK_KEY in states[a])):
            got = f"a dict without {MASK_KEY!r}" if isinstance(states[a], Mapping) else f"a {type(states[a]).__name__}"
            raise ValueError(f"{check.call}: {key}[{a!r}] is {got}; its space is a Dict: give a dict with every key of the space "
                             f"{self.split[a]}. Nothing was stored.")
        states = strip_masks(states, list(self.split), self.bare)
        td = empty_step(self.num_envs, self.device)
        for g, agents in self.group_map.items():
            absent = [a for a in agents if a not in states]
            for path, x in check.observation(states, key, agents, self.env.observation_spec[g, "observation"], absent=absent,
                                             live=present[g]).items():
                td.set((g, "observation", *path), x)
        return td

    def action_mask(self, check: InputCheck, g: str, sources: Mapping[str, Mapping[str, Any]], present: torch.Tensor,
                    base: torch.Tensor | None = None) -> torch.Tensor:
        """Group ``g``'s masks ``[num_envs, n_agents, width]``: each agent's from its source, else ``base`` (default:
        every action legal); every action legal where ``present`` is false."""
        agents, width = self.group_map[g], self.masks[g]
        out = base.clone() if base is not None else torch.ones(self.num_envs, len(agents), width, dtype=torch.bool, device=self.device)
        for source, values in sources.items():
            idx = [i for i, a in enumerate(agents) if a in values]
            sub = [agents[i] for i in idx]
            path = () if source == "action_masks" else (MASK_KEY,)
            out[:, idx] = check.stack(values, source, sub, mask_spec(width, self.num_envs, len(sub), self.device), path,
                                      live=present[:, idx])
        return torch.where(present.unsqueeze(-1), out, True)

    def act_step(self, states: Mapping[str, Any], infos: Mapping[str, Any] | None = None,
                 action_masks: Mapping[str, Any] | None = None) -> TensorDictBase:
        """``act``'s input step: observations, legal-action masks (``action_masks`` > ``infos`` > the Dict entry of
        ``states``), alive masks; every input checked (one host read)."""
        check = InputCheck("act", self.num_envs, self.device)
        if infos is not None and not isinstance(infos, Mapping):
            raise TypeError(f"act: infos must be a dict by agent name (the env's infos), got {type(infos).__name__}.")
        bare = [a for a in self.names if (infos or {}).get(a) is not None and not isinstance(infos[a], Mapping)]
        if bare:
            a = bare[0]
            raise TypeError(f"act: infos[{a!r}] is a {type(infos[a]).__name__}, not a dict: infos are the env's, a dict per agent; "
                            f"give a legal-action mask as infos[{a!r}][{MASK_KEY!r}] (or as action_masks={{{a!r}: mask}}).")
        self._known("act", {"states": states, "action_masks": action_masks})
        self._unmasked("act", action_masks, infos)
        self.alive.check_start("act", states)
        present = {g: self.alive.present(states, g, agents) for g, agents in self.group_map.items()}
        td = self.observe(check, states, "states", present)
        for g, agents in self.group_map.items():
            alive = present[g]
            if g in self.masks:
                mask = self.action_mask(check, g, mask_sources(agents, action_masks, infos, states), present[g])
                td.set((g, "action_mask"), mask)
                alive = alive & acting(mask, self.nvec[g])
            td.set((g, "mask"), alive)
        check.verify()
        return td

    def transition(self, states: Mapping[str, Any], actions: Mapping[str, Any], rewards: Mapping[str, Any],
                   next_states: Mapping[str, Any], terminated: Mapping[str, Any], truncated: Mapping[str, Any],
                   log_prob: Mapping[str, Any] | None, action_masks: Mapping[str, Any] | None,
                   last: TensorDictBase | None) -> tuple[TensorDictBase, TensorDictBase]:
        """``(step, next)`` of one transition, every input checked before it is returned. The step's legal-action
        masks: ``action_masks``, else those of ``last`` (the last ``act``, whose log-probs are stored), or, with
        ``log_prob`` given, the Dict entry of ``states``."""
        inputs = {"states": states, "actions": actions, "rewards": rewards, "next_states": next_states, "terminated": terminated,
                  "truncated": truncated, "log_prob": log_prob, "action_masks": action_masks}
        self._known("record_transition", inputs)
        self._unmasked("record_transition", action_masks, None)
        self.alive.check_start("record_transition", states)
        check, env = InputCheck("record_transition", self.num_envs, self.device), self.env
        present = {g: self.alive.present(states, g, agents) for g, agents in self.group_map.items()}
        step = self.observe(check, states, "states", present)
        nxt = empty_step(self.num_envs, self.device)
        absent = [a for a in self.names if a not in states]
        gone = [a for a in self.names if a not in states or a not in next_states]  # reward and flags optional: dead or dying
        for g, agents in self.group_map.items():
            p, kw = present[g], {"absent": absent, "live": present[g], "hint": IN_STATES}
            kw_next = {**kw, "absent": gone, "hint": IN_NEXT_STATES}
            action = check.stack(actions, "actions", agents, env.full_action_spec[g, "action"], **kw)
            step.set((g, "action"), action)
            step.set((g, "action_log_prob"), last.get((g, "action_log_prob")) if log_prob is None else
                     check.stack(log_prob, "log_prob", agents, Unbounded((self.num_envs, len(agents)), device=self.device), **kw))
            nxt.set((g, "reward"), check.stack(rewards, "rewards", agents, env.full_reward_spec[g, "reward"], **kw_next))
            for k, flags in (("terminated", terminated), ("truncated", truncated)):  # a dead agent is done, as one without flags
                unreported = torch.tensor([[a not in flags] for a in agents], device=self.device)
                nxt.set((g, k), check.stack(flags, k, agents, env.full_done_spec[g, k], **kw_next) | ~p.unsqueeze(-1) | unreported)
            alive = p
            if g in self.masks:
                sources = mask_sources(agents, action_masks, None, states if log_prob is not None else None)
                mask = self.action_mask(check, g, sources, p, None if log_prob is not None else last.get((g, "action_mask")))
                step.set((g, "action_mask"), mask)
                alive = p & acting(mask, self.nvec[g])
                check.refuse_where("actions", agents, alive & illegal(action, mask, self.nvec[g]), "is an action its action mask forbids",
                                   "give legal actions (those act() returned are), or the mask they were chosen under (action_masks=)")
            step.set((g, "mask"), alive)
        self._next_observations(check, nxt, next_states, present)
        check.verify()
        return step, nxt

    def _next_observations(self, check: InputCheck, nxt: TensorDictBase, next_states: Mapping[str, Any],
                           present: Mapping[str, torch.Tensor]) -> None:
        """``nxt``'s observations and alive masks; an agent alive at the step may be left out of ``next_states`` only
        where it is done (its next observation is then zeros)."""
        for g, agents in self.group_map.items():
            given = torch.tensor([a in next_states for a in agents], dtype=torch.bool, device=self.device)
            done = (nxt.get((g, "terminated")) | nxt.get((g, "truncated"))).squeeze(-1)
            check.refuse_where("next_states", agents, present[g] & ~given & ~done,
                               "is missing though the agent is alive at the step and neither terminated nor truncated",
                               "give its next observation (an agent may be left out of next_states at the step it is done, or once dead)")
            nxt.set((g, "mask"), present[g] & ~done)
        live = {g: present[g] & torch.tensor([a in next_states for a in agents], dtype=torch.bool, device=self.device)
                for g, agents in self.group_map.items()}
        nxt.update(self.observe(check, next_states, "next_states", live))
