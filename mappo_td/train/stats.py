"""Training statistics kept on the device (no host read between log intervals), and the non-finite guard."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase

from mappo_td.models.inputs import observation_leaves
from mappo_td.train.distributed import reduce_together
from mappo_td.train.step import LOSS_TERMS, N_LOSSES


class NonFiniteError(RuntimeError):
    """NaN or inf in what was collected (rewards, observations), in a loss term or in the parameters."""


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

    :meth:`track` (each rollout), :meth:`add_terms` (each step) and :meth:`check_params`
    (each update) only compute on the device; :meth:`row` reads them once per log interval
    and resets the sums in place (a captured step keeps writing to the same tensors);
    :meth:`raise_if_nonfinite` reads the flags at log and checkpoint time. With ``reduce``
    (a sum over data-parallel processes) both read the statistics of every process: episodes
    and updates counted over all of them, and a non-finite value anywhere stops every rank.

    Example:
        >>> s = TrainingStats({"agents": ["a", "b"]}, [("next", "agents", "reward")], torch.device("cpu"))
        >>> s.add_terms("agents", torch.ones(len(LOSS_TERMS))); s.count_update()
        >>> s.row({})["agents/kl_approx"]
        1.0
    """

    def __init__(self, group_map: dict[str, list[str]], keys: Sequence[tuple[str, ...]], device: torch.device,
                 reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.group_map, self.finite_keys = group_map, list(keys)
        self.reduce = reduce  # data-parallel: sums over every process, applied at log time
        self._index = {g: i for i, g in enumerate(group_map)}
        self.nonfinite = torch.zeros(len(self.finite_keys), dtype=torch.bool, device=device)
        self.bad_terms = torch.zeros(len(group_map), N_LOSSES, dtype=torch.bool, device=device)
        self.bad_params = torch.zeros(len(group_map), dtype=torch.bool, device=device)
        self.first_bad_update = torch.full((), -1, dtype=torch.long, device=device)  # timestep of the first non-finite update
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
        """Add one step's loss terms (:data:`~mappo_td.train.LOSS_TERMS`) of ``group``, flagging non-finite losses."""
        self.sums[f"{group}/terms"] += terms
        self.bad_terms[self._index[group]] |= ~torch.isfinite(terms[:N_LOSSES])

    def check_params(self, groups: Sequence[Any], timestep: int) -> None:
        """Flag groups whose parameters or optimizer state went non-finite in the update ending at ``timestep`` (no sync)."""
        for g in groups:
            state = [s for p in g.optimizer.params for s in g.optimizer.adam.state.get(p, {}).values() if s.is_floating_point()]
            finite = torch.stack([torch.isfinite(t).all() for t in [*g.optimizer.params, *state]]).all()
            self.bad_params[self._index[g.name]] |= ~finite
        bad = self.bad_terms.any() | self.bad_params.any()
        self.first_bad_update.copy_(torch.where((self.first_bad_update < 0) & bad, timestep, self.first_bad_update))

    def recent_rewards(self) -> dict[str, torch.Tensor]:
        """``[return sum, episodes]`` (device tensors) of the episodes finished since the last row: the team's
        (``"reward"``) and, with several groups, each group's (for the progress bar; nothing is read here).

        Example:
            >>> s = TrainingStats({"a": ["a0"], "b": ["b0"]}, [], torch.device("cpu"))
            >>> sorted(s.recent_rewards())
            ['a', 'b', 'reward']
        """
        n = self.sums["episodes"]
        out = {"reward": torch.stack([self.sums["ep_return"], n])}
        if len(self.group_map) > 1:
            out.update({g: torch.stack([self.sums[f"{g}/ep_return"], n]) for g in self.group_map})
        return out

    def count_update(self) -> None:
        """Count one minibatch step (of every group)."""
        self.sums["updates"] += 1

    def raise_if_nonfinite(self, timestep: int, cause: BaseException | None = None) -> None:
        """Raise :class:`NonFiniteError` naming what went non-finite (a host read; ``cause``: the error it explains,
        seen by this process alone: then the flags are not shared with the others)."""
        if self.reduce is not None and cause is None:  # every rank raises together, or none
            mine = [self.nonfinite, self.bad_terms, self.bad_params]
            for flag, count in zip(mine, reduce_together([f.int() for f in mine], self.reduce)):
                flag |= count > 0
        flags = torch.cat([self.nonfinite, self.bad_terms.flatten(), self.bad_params])
        if not bool(flags.any()):
            return
        what = []
        if bool(self.nonfinite.any()):
            what.append(f"NaN or inf in {[k for k, f in zip(self.finite_keys, self.nonfinite.tolist()) if f]} collected before timestep {timestep}")
        first = int(self.first_bad_update)
        for g, i in self._index.items():
            terms = [t for t, f in zip(LOSS_TERMS, self.bad_terms[i].tolist()) if f]
            if terms:
                what.append(f"non-finite loss term(s) {terms} of group {g!r}, first in the update at timestep {first}")
            if bool(self.bad_params[i]):
                what.append(f"non-finite parameters or optimizer state of group {g!r}, first after the update at timestep {first}")
        raise NonFiniteError(
            "; ".join(what) + ". The run stopped and the last good checkpoint was kept. Check the environment / rewards_shaper "
            "and the reward scale, lower the learning rate, or normalize inputs (state_preprocessor, value_preprocessor)."
        ) from cause

    def row(self, head: dict[str, Any]) -> dict[str, Any]:
        """The log row (``head`` first): mean episode reward and length, per-group terms; then reset to zero."""
        if self.reduce is not None:  # every process's sums (loss terms: / updates summed alike, so a mean over ranks)
            for v, total in zip(self.sums.values(), reduce_together(list(self.sums.values()), self.reduce)):
                v.copy_(total)
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
