"""Legal-action masks for the agent API: which agents have one, where each step's mask is read from, which wins.

A masked agent's legal actions at a step (``True`` / 1 = legal; ``[num_envs, n]`` for Discrete(n),
``[num_envs, sum(nvec)]`` for MultiDiscrete) come from the first of these that has an entry for it:

1. ``action_masks={agent: mask}``: the argument of :meth:`~mappo_td.agent.MAPPO.act` (or of ``record_transition``);
2. ``infos[agent]["action_mask"]``: ``act``'s ``infos=`` (the infos that came with ``states``: the env's reset's or its
   last step's; ``record_transition``'s ``infos`` are those of ``next_states``, and no mask is read from them);
3. ``states[agent]["action_mask"]``: the entry of a Dict observation space (PettingZoo's classic games), which is
   taken out of the observation (the policy and critic never see it);
4. every action legal.

An agent whose mask allows no action at a step (MultiDiscrete: no legal value for some sub-action) does not act there
(PettingZoo's classic games give the player who waits for its turn an all-zero mask): its alive mask is false, so that
step reaches no loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torchrl.data import Binary

MASK_KEY = "action_mask"
SOURCES = ("action_masks", "infos", "states")  # highest precedence first


def split_observation_space(space: Any) -> tuple[Any, Any]:
    """``(observation space, action-mask space or None)``: a Dict space's ``"action_mask"`` entry is taken out; what is
    left is its ``"observation"`` entry when that is all (as TorchRL's PettingZoo wrapper does), else a Dict of the rest.

    Example:
        >>> import gymnasium as gym
        >>> s = gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (3, 3, 2)), "action_mask": gym.spaces.Box(0, 1, (9,))})
        >>> obs, mask = split_observation_space(s)
        >>> obs.shape, mask.shape, split_observation_space(gym.spaces.Discrete(3))[1]
        ((3, 3, 2), (9,), None)
    """
    import gymnasium as gym

    if not isinstance(space, gym.spaces.Dict) or MASK_KEY not in space.spaces:
        return space, None
    rest = {k: v for k, v in space.spaces.items() if k != MASK_KEY}
    if not rest:
        raise ValueError(f"observation space {space} holds only an action mask: give the observation beside it.")
    return (rest["observation"] if list(rest) == ["observation"] else gym.spaces.Dict(rest)), space.spaces[MASK_KEY]


def mask_width(action_space: Any) -> int | None:
    """Entries of one agent's mask: ``n`` for Discrete(n), ``sum(nvec)`` for MultiDiscrete, ``None`` (no mask) otherwise.

    Example:
        >>> import gymnasium as gym
        >>> mask_width(gym.spaces.Discrete(7)), mask_width(gym.spaces.MultiDiscrete([2, 3])), mask_width(gym.spaces.Box(-1, 1, (2,)))
        (7, 5, None)
    """
    import gymnasium as gym

    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(np.asarray(action_space.nvec).sum())
    return None


def mask_widths(group_map: Mapping[str, Sequence[str]], observation_spaces: Mapping[str, Any], action_spaces: Mapping[str, Any],
                action_masks: bool | None = None) -> dict[str, int]:
    """``{group: mask width}`` of the groups whose policy is masked: ``action_masks=None`` those whose observation space
    is a Dict with an ``"action_mask"`` entry; ``True`` every Discrete / MultiDiscrete group; ``False`` none.

    Example:
        >>> import gymnasium as gym
        >>> obs = gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (4,)), "action_mask": gym.spaces.Box(0, 1, (7,))})
        >>> mask_widths({"player": ["player_0"]}, {"player_0": obs}, {"player_0": gym.spaces.Discrete(7)})
        {'player': 7}
        >>> mask_widths({"player": ["player_0"]}, {"player_0": obs}, {"player_0": gym.spaces.Discrete(6)})
        Traceback (most recent call last):
        ...
        ValueError: observation_spaces['player_0']['action_mask'] has shape (7,); the action space Discrete(6) needs masks of shape (6,).
    """
    out = {}
    for g, agents in group_map.items():
        a = agents[0]
        width, (_, mask_space) = mask_width(action_spaces[a]), split_observation_space(observation_spaces[a])
        if mask_space is not None and (width is None or tuple(mask_space.shape) != (width,)):
            need = "no mask (only Discrete and MultiDiscrete actions take one)" if width is None else f"masks of shape {(width,)}"
            raise ValueError(f"observation_spaces[{a!r}][{MASK_KEY!r}] has shape {tuple(mask_space.shape)}; "
                             f"the action space {action_spaces[a]} needs {need}.")
        if width is not None and (action_masks or (action_masks is None and mask_space is not None)):
            out[g] = width
    return out


def mask_spec(width: int, num_envs: int, n_agents: int, device: torch.device | str = "cpu") -> Binary:
    """The spec of a group's masks, ``[num_envs, n_agents, width]`` bools.

    Example:
        >>> mask_spec(7, 4, 2).shape
        torch.Size([4, 2, 7])
    """
    return Binary(width, (num_envs, n_agents, width), dtype=torch.bool, device=device)


def strip_masks(states: Mapping[str, Any], agents: Sequence[str], bare: Sequence[str]) -> dict[str, Any]:
    """``states`` without the Dict observations' ``"action_mask"`` entries of ``agents`` (for ``bare`` ones, whose Dict
    holds only ``"observation"`` beside it, that entry itself); entries that are not dicts are left for the checks.

    Example:
        >>> strip_masks({"p_0": {"observation": 1, "action_mask": 0}, "p_1": {"x": 2, "y": 3, "action_mask": 0}}, ["p_0", "p_1"], ["p_0"])
        {'p_0': 1, 'p_1': {'x': 2, 'y': 3}}
    """
    out = dict(states)
    for a in agents:
        x = states.get(a)
        if isinstance(x, Mapping):
            out[a] = x.get("observation", x) if a in bare else {k: v for k, v in x.items() if k != MASK_KEY}
    return out


def mask_sources(agents: Sequence[str], explicit: Mapping[str, Any] | None, infos: Mapping[str, Any] | None,
                 states: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``{source: {agent: mask}}``: each of ``agents``' mask from the first source (:data:`SOURCES` order) that has one;
    an agent no source has is left out (every action legal).

    Example:
        >>> sorted((s, list(m)) for s, m in mask_sources(["a", "b", "c"], {"a": 1}, {"a": {"action_mask": 2}, "b": {"action_mask": 3}},
        ...                                                 {"c": {"observation": 0}}).items())
        [('action_masks', ['a']), ('infos', ['b'])]
    """
    out: dict[str, dict[str, Any]] = {}
    for a in agents:
        for source, given in zip(SOURCES, (explicit, infos, states)):
            if not given or a not in given:
                continue
            entry = given[a]
            if source == "action_masks":
                out.setdefault(source, {})[a] = entry
                break
            if isinstance(entry, Mapping) and MASK_KEY in entry:
                out.setdefault(source, {})[a] = entry[MASK_KEY]
                break
    return out


def acting(mask: torch.Tensor, nvec: Sequence[int] | None = None) -> torch.Tensor:
    """``[*B]`` bool: where ``mask`` (``[*B, n]``; MultiDiscrete ``[*B, sum(nvec)]`` with ``nvec``) allows an action: some
    legal value for every sub-action (an agent without one does not act, as with an all-zero Discrete mask).

    Example:
        >>> mask = torch.tensor([[True, False, True], [False, False, True], [False, False, False]])
        >>> acting(mask).tolist(), acting(mask, nvec=[2, 1]).tolist()
        ([True, True, False], [True, False, False])
    """
    if nvec is None:
        return mask.any(-1)
    return torch.stack([m.any(-1) for m in mask.split(list(nvec), dim=-1)], dim=-1).all(-1)


def illegal(action: torch.Tensor, mask: torch.Tensor, nvec: Sequence[int] | None = None) -> torch.Tensor:
    """``[*B]`` bool: where ``action`` (Discrete ``[*B]``, MultiDiscrete ``[*B, k]`` with ``nvec``) is not allowed by
    ``mask`` (``[*B, n]`` / ``[*B, sum(nvec)]``); out-of-range actions are left to the range check.

    Example:
        >>> mask = torch.tensor([[True, False, True], [True, True, False]])
        >>> illegal(torch.tensor([1, 1]), mask), illegal(torch.tensor([[0, 0], [0, 0]]), mask, nvec=[1, 2])
        (tensor([ True, False]), tensor([ True, False]))
    """
    if nvec is None:
        return ~mask.gather(-1, action.clamp(0, mask.shape[-1] - 1).unsqueeze(-1)).squeeze(-1)
    n = torch.as_tensor(list(nvec), device=action.device)
    offsets = torch.cumsum(n, 0) - n
    index = torch.minimum(action.clamp(min=0), n - 1) + offsets
    return ~mask.gather(-1, index).all(-1)
