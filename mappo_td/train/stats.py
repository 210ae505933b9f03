"""Training statistics kept on the device (no host read between log intervals), and the non-finite guard."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase

from mappo_td.models.inputs import observation_leaves
from mappo_td.train.step import LOSS_TERMS


class NonFiniteError(RuntimeError):
    """NaN or inf in rewards or observations."""


def finite_keys(env: EnvBase, group_map: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """The collected entries checked for NaN/inf: every group's observation leaves and reward, and the root state.

    Example:
        >>> from mappo_td.envs import EnvConfig, group_map, make_env
        >>> env = make_env(EnvConfig(num_envs=2))
        >>> finite_keys(env, group_map(env))
        [('next', 'agents', 'observation'), ('next', 'agents', 'reward')]
    """
    keys: list[tuple[str, ...]] = []
    spec = env.observation_spec
    for g in group_map:
        keys += [("next", g, *k) for k, _ in observation_leaves(spec[g], "observation", len(spec[g].shape))]
        keys.append(("next", g, "reward") if (g, "reward") in env.full_reward_spec.keys(True) else ("next", "reward"))
    if "state" in spec.keys():
        keys.append(("next", "state"))
    return list(dict.fromkeys(keys))


def episode_returns(td: TensorDictBase, group_map: dict[str, list[str]]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Episode returns so far (TorchRL's ``RewardSum``), ``[N, T]``: per group (mean over its agents) and
    the team's (mean over every agent of every group).

    Example:
        >>> from tensordict import TensorDict
        >>> td = TensorDict({("next", "red", "episode_reward"): torch.ones(2, 4, 1, 1),
        ...                  ("next", "blue", "episode_reward"): torch.zeros(2, 4, 3, 1)}, [2, 4])
        >>> per_group, team = episode_returns(td, {"red": ["r0"], "blue": ["b0", "b1", "b2"]})
        >>> float(per_group["red"][0, 0]), float(team[0, 0])
        (1.0, 0.25)
    """
    per_group = {g: td.get(("next", g, "episode_reward")).mean(dim=(-1, -2)) for g in group_map}
    total = sum(per_group[g] * len(agents) for g, agents in group_map.items())
    return per_group, total / sum(len(agents) for agents in group_map.values())


class TrainingStats:
    """Sums of loss terms, finished-episode statistics and non-finite flags, as device tensors.

    :meth:`track` (each rollout) and :meth:`add_terms` (each step) only add on the
    device; :meth:`row` reads them once per log interval and resets them in place
    (a captured step keeps writing to the same tensors).

    Example:
        >>> s = TrainingStats({"agents": ["a", "b"]}, [("next", "agents", "reward")], torch.device("cpu"))
        >>> s.add_terms("agents", torch.ones(len(LOSS_TERMS))); s.count_update()
        >>> s.row({})["agents/kl_approx"]
        1.0
    """

    def __init__(self, group_map: dict[str, list[str]], keys: Sequence[tuple[str, ...]], device: torch.device) -> None:
        self.group_map, self.finite_keys = group_map, list(keys)
        self.nonfinite = torch.zeros(len(self.finite_keys), dtype=torch.bool, device=device)
        self.sums = {f"{g}/terms": torch.zeros(len(LOSS_TERMS), device=device) for g in group_map}
        self.sums.update({k: torch.zeros((), device=device) for k in ("updates", "ep_return", "ep_length", "episodes")})
        self.sums.update({f"{g}/ep_return": torch.zeros((), device=device) for g in group_map})

    def track(self, data: TensorDictBase) -> None:
        """Accumulate non-finite flags and finished-episode statistics of a ``[N, T]`` rollout."""
        self.nonfinite |= torch.stack([~torch.isfinite(data.get(k)).all() for k in self.finite_keys])
        done = data.get(("next", "done")).squeeze(-1).float()
        per_group, team = episode_returns(data, self.group_map)
        for g, ret in per_group.items():
            self.sums[f"{g}/ep_return"] += (ret * done).sum()
        self.sums["ep_return"] += (team * done).sum()
        self.sums["ep_length"] += (data.get(("next", "step_count")).squeeze(-1).float() * done).sum()
        self.sums["episodes"] += done.sum()

    def add_terms(self, group: str, terms: torch.Tensor) -> None:
        """Add one step's loss terms (:data:`~mappo_td.train.step.LOSS_TERMS`) of ``group``."""
        self.sums[f"{group}/terms"] += terms

    def count_update(self) -> None:
        """Count one minibatch step (of every group)."""
        self.sums["updates"] += 1

    def raise_if_nonfinite(self, timestep: int) -> None:
        """Raise :class:`NonFiniteError` naming the keys where NaN/inf was seen (a host read)."""
        if bool(self.nonfinite.any()):
            bad = [k for k, flag in zip(self.finite_keys, self.nonfinite.tolist()) if flag]
            raise NonFiniteError(
                f"NaN or inf in {bad} collected before timestep {timestep}; the run stopped and the last good checkpoint "
                "was kept. Check the environment / rewards_shaper, or normalize inputs (state_preprocessor)."
            )

    def row(self, head: dict[str, Any]) -> dict[str, Any]:
        """The log row (``head`` first): mean episode reward and length, per-group terms; then reset to zero."""
        s = {k: float(v) for k, v in self.sums.items() if v.ndim == 0}  # host reads, once per interval
        for g in self.group_map:
            s.update({f"{g}/{t}": v for t, v in zip(LOSS_TERMS, self.sums[f"{g}/terms"].tolist())})
        n_up, n_ep = s["updates"], s["episodes"]
        row = dict(head)
        row["reward/episode_mean"] = s["ep_return"] / n_ep if n_ep else math.nan
        row["episode/length_mean"] = s["ep_length"] / n_ep if n_ep else math.nan
        row["episode/count"] = n_ep
        for g in self.group_map:
            if len(self.group_map) > 1:
                row[f"reward/{g}/episode_mean"] = s[f"{g}/ep_return"] / n_ep if n_ep else math.nan
            for t in LOSS_TERMS:
                row[f"{g}/{t}"] = s[f"{g}/{t}"] / n_up if n_up else math.nan
        for v in self.sums.values():
            v.zero_()
        return row
