"""GAE(λ) for multi-agent TensorDicts: terminated is not truncated, team or per-agent signals.

For every transition t (time runs along the last batch dim of the input)::

    δ_t = r_t + γ · (1 − terminated_{t+1}) · V(s'_t) − V(s_t)
    A_t = δ_t + γ · λ · (1 − done_{t+1}) · A_{t+1}
    R_t = A_t + V(s_t);   A ← (A − mean) / (std + 1e-8), per agent over the whole batch

``V(s'_t)`` is the value of the true next state (``("next", ...)`` holds the
observation seen before any reset). The ``_{t+1}`` flags are the
``("next", "terminated" | "done")`` entries of transition t. With
``time_limit_bootstrap=False`` (the default) truncation counts as termination
(the docs' "How mappo_td differs from skrl" page says where this differs from today's skrl).
The math (flags, broadcasting, per-agent γ/λ, the recursion, standardization) is
:func:`mappo_td.functional.mappo_gae`; this module reads and writes the TensorDict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.modules import set_recurrent_mode
from torchrl.objectives.value import ValueEstimatorBase

from mappo_td.defaults import BOUNDS
from mappo_td.functional.advantages import mappo_gae
from mappo_td.keys import KeyContract, NestedKey, group_keys
from mappo_td.multiagent import PerAgent, per_agent_tensor


class MAPPOGAE(KeyContract, ValueEstimatorBase):
    """GAE(λ) estimator for one agent group, usable by any TorchRL loss.

    =================================================  =================================  =========
    key (``set_keys`` name)                            shape                              direction
    =================================================  =================================  =========
    ``(group, "state_value")`` (value)                 ``[*B, T, n_agents, 1]``           in
    ``("next", group, "state_value")``                 ``[*B, T, n_agents, 1]``           in
    ``("next", group, "reward")`` (reward)             per agent, or team ``[*B, T, 1]``  in
    ``("next", "done" | "terminated" | "truncated")``  team or per agent                  in
    ``(group, "advantage")`` (advantage)               ``[*B, T, n_agents, 1]``           out
    ``(group, "value_target")`` (value_target)         ``[*B, T, n_agents, 1]``           out
    ``(group, "mask")`` (alive), optional              ``[*B, T, n_agents]`` bool         in
    =================================================  =================================  =========

    With an ``alive`` mask the standardization uses alive entries only (the reference's
    ``active_masks``); an agent's own ``done`` (per agent, as TorchRL's PettingZoo wrapper
    reports a death) stops the recursion, so nothing is bootstrapped through a dead agent.

    Signals are looked up per agent first (``("next", group, name)``), then at the
    root (team-shared). A missing ``truncated`` is ``done & ~terminated``. When
    ``value_network`` is given, both values are computed with it (no grad); a recurrent
    one (:mod:`mappo_td.models.recurrent`) runs in sequence mode over the rollout and in
    step mode on ``("next", ...)`` with the state stored there.

    Args:
        group: the agent group.
        gamma, lmbda: scalars, or per agent (dict by agent name, needs ``agents``).
        agents: the group's agent names (for per-agent dicts).
        time_limit_bootstrap: bootstrap from V(s') on truncation (else truncation = termination).
        standardize: standardize the advantage per agent over the batch.
        value_network: optional critic writing ``(group, "state_value")``.
        reduce: sums a tensor over data-parallel processes (e.g.
            ``mappo_td.train.distributed.all_reduce_sum``): the standardization then uses
            the statistics of every process's batch together.

    Example:
        >>> from tensordict import TensorDict
        >>> td = TensorDict({("agents", "state_value"): torch.zeros(2, 4, 3, 1),
        ...     ("next", "agents", "state_value"): torch.zeros(2, 4, 3, 1),
        ...     ("next", "agents", "reward"): torch.ones(2, 4, 3, 1),
        ...     ("next", "terminated"): torch.zeros(2, 4, 1, dtype=torch.bool),
        ...     ("next", "done"): torch.zeros(2, 4, 1, dtype=torch.bool)}, [2, 4])
        >>> out = MAPPOGAE(gamma=0.5, lmbda=1.0, standardize=False)(td)
        >>> out["agents", "value_target"][0, :, 0, 0]
        tensor([1.8750, 1.7500, 1.5000, 1.0000])
    """

    def __init__(
        self,
        group: str = "agents",
        *,
        gamma: PerAgent = 0.99,
        lmbda: PerAgent = 0.95,
        agents: Sequence[str] | None = None,
        time_limit_bootstrap: bool = False,
        standardize: bool = True,
        value_network: TensorDictModuleBase | None = None,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(value_network=value_network)
        self.group = group
        self.time_limit_bootstrap = bool(time_limit_bootstrap)
        self.standardize = bool(standardize)
        self.reduce = reduce
        self.agents = list(agents) if agents is not None else None
        self.register_buffer("gamma", per_agent_tensor(gamma, agents, name="gamma", group=group, bounds=BOUNDS["discount_factor"]))
        self.register_buffer("lmbda", per_agent_tensor(lmbda, agents, name="lambda", group=group, bounds=BOUNDS["lambda"]))
        self.set_keys(**group_keys(group))

    def _signal(self, nxt: TensorDictBase, key: NestedKey) -> torch.Tensor | None:
        """Per-agent entry if present, else the team entry at the root (same leaf name)."""
        value = nxt.get(key, None)
        if value is None and isinstance(key, tuple):
            value = nxt.get(key[-1], None)
        return value

    def value_estimate(self, tensordict: TensorDictBase, **kwargs) -> torch.Tensor:
        """Value targets ``R = A + V`` (not standardized) for ``tensordict``."""
        return self._compute(tensordict, standardize=False)[1]

    def _run_value_network(self, td: TensorDictBase) -> None:
        with set_recurrent_mode(True):  # a recurrent critic runs along time (the last batch dim) from the first state
            self.value_network(td)
        with set_recurrent_mode(False):  # V(s'_t): one step from the state after step t, ("next", ...)
            self.value_network(td.get("next"))

    @torch.no_grad()
    def _compute(self, td: TensorDictBase, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.tensor_keys
        if self.value_network is not None:
            self._run_value_network(td)
        nxt = td.get("next")
        value, next_value = td.get(keys.value, None), nxt.get(keys.value, None)
        if value is None or next_value is None:
            raise KeyError(
                f"MAPPOGAE needs {keys.value} and ('next', *{keys.value}) in the input; pass value_network=critic "
                "or run the critic on the data and on data['next'] first."
            )
        reward, terminated = self._signal(nxt, keys.reward), self._signal(nxt, keys.terminated)
        if reward is None or terminated is None:
            raise KeyError(f"MAPPOGAE needs ('next', reward) and ('next', terminated) (keys {keys.reward}, {keys.terminated}, per agent or at the root).")
        alive = td.get(keys.alive, None) if standardize else None
        if alive is not None and alive.shape != value.shape[:-1]:
            raise ValueError(f"alive mask at {keys.alive!r} has shape {tuple(alive.shape)}; expected "
                             f"{tuple(value.shape[:-1])} ([*B, T, n_agents]); rename it with set_keys(alive=...).")
        return mappo_gae(value, next_value, reward, terminated, self._signal(nxt, keys.truncated), self._signal(nxt, keys.done),
                         gamma=self.gamma, lmbda=self.lmbda, time_limit_bootstrap=self.time_limit_bootstrap, standardize=standardize,
                         alive=alive, reduce=self.reduce, time_dim=td.ndim - 1)  # time is the last batch dim (TorchRL collector layout)

    def forward(self, tensordict: TensorDictBase, **kwargs) -> TensorDictBase:
        """Write ``advantage`` (standardized if asked) and ``value_target`` into ``tensordict``."""
        adv, target = self._compute(tensordict, self.standardize)
        tensordict.set(self.tensor_keys.advantage, adv)
        tensordict.set(self.tensor_keys.value_target, target)
        return tensordict
