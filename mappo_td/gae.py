"""GAE(λ) for multi-agent TensorDicts with SPEC §2 semantics.

For every transition t (time runs along the last batch dim of the input)::

    δ_t = r_t + γ · (1 − terminated_{t+1}) · V(s'_t) − V(s_t)
    A_t = δ_t + γ · λ · (1 − done_{t+1}) · A_{t+1}
    R_t = A_t + V(s_t);   A ← (A − mean) / (std + 1e-8), per agent over the whole batch

``V(s'_t)`` is the value of the true next state (``("next", ...)`` holds the
observation seen before any reset). The ``_{t+1}`` flags are the
``("next", "terminated" | "done")`` entries of transition t. With
``time_limit_bootstrap=False`` (the default) truncation counts as termination.
The recursion itself is TorchRL's :func:`generalized_advantage_estimate`; this
module owns flag handling, broadcasting, per-agent γ/λ and standardization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torchrl.objectives.value import ValueEstimatorBase
from torchrl.objectives.value.functional import generalized_advantage_estimate

from mappo_td._multiagent import PerAgent, broadcast_to_agents, per_agent_tensor

NestedKey = str | tuple[str, ...]


def _gamma_like(value: PerAgent, agents: Sequence[str] | None, group: str, name: str) -> torch.Tensor:
    if isinstance(value, (int, float)):
        return torch.tensor(float(value))
    if agents is None:
        raise ValueError(f"{name} given per agent: pass agents=[...] (the group's agent names) to the estimator.")
    return per_agent_tensor(value, agents, name=name, group=group)


def standardize_per_agent(advantage: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(A − mean) / (std + eps)`` over every dim but the agent dim (``-2``).

    Example:
        >>> a = standardize_per_agent(torch.randn(50, 3, 1) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1))
        >>> torch.allclose(a.std(dim=0), torch.ones(3, 1), atol=1e-4)
        True
    """
    dims = [d for d in range(advantage.ndim) if d != advantage.ndim - 2]
    std, mean = torch.std_mean(advantage, dim=dims, keepdim=True)
    return (advantage - mean) / (std + eps)


class MAPPOGAE(ValueEstimatorBase):
    """GAE(λ) estimator for one agent group (SPEC §2), usable by any TorchRL loss.

    ===========================================  =========================  ==========
    key (``set_keys`` name)                        shape                      direction
    ===========================================  =========================  ==========
    ``(group, "state_value")`` (value)             ``[*B, T, n_agents, 1]``     in
    ``("next", group, "state_value")``             ``[*B, T, n_agents, 1]``     in
    ``("next", group, "reward")`` (reward)         per agent, or team ``[*B, T, 1]`` in
    ``("next", "done" | "terminated" | "truncated")``  team or per agent          in
    ``(group, "advantage")`` (advantage)           ``[*B, T, n_agents, 1]``     out
    ``(group, "value_target")`` (value_target)     ``[*B, T, n_agents, 1]``     out
    ===========================================  =========================  ==========

    Signals are looked up per agent first (``("next", group, name)``), then at the
    root (team-shared). A missing ``truncated`` is ``done & ~terminated``. When
    ``value_network`` is given, both values are computed with it (no grad).

    Args:
        group: the agent group.
        gamma, lmbda: scalars, or per agent (dict by agent name, needs ``agents``).
        agents: the group's agent names (for per-agent dicts).
        time_limit_bootstrap: bootstrap from V(s') on truncation (else truncation = termination).
        standardize: standardize the advantage per agent over the batch.
        value_network: optional critic writing ``(group, "state_value")``.

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

    @dataclass
    class _AcceptedKeys:
        """Keys of the estimator: advantage, value_target, value, reward, done, terminated, truncated."""

        advantage: NestedKey = ("agents", "advantage")
        value_target: NestedKey = ("agents", "value_target")
        value: NestedKey = ("agents", "state_value")
        reward: NestedKey = ("agents", "reward")
        done: NestedKey = ("agents", "done")
        terminated: NestedKey = ("agents", "terminated")
        truncated: NestedKey = ("agents", "truncated")
        steps_to_next_obs: NestedKey = "steps_to_next_obs"
        sample_log_prob: NestedKey = ("agents", "action_log_prob")

    default_keys = _AcceptedKeys

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
    ) -> None:
        super().__init__(value_network=value_network)
        self.group = group
        self.time_limit_bootstrap = bool(time_limit_bootstrap)
        self.standardize = bool(standardize)
        self.register_buffer("gamma", _gamma_like(gamma, agents, group, "gamma"))
        self.register_buffer("lmbda", _gamma_like(lmbda, agents, group, "lambda"))
        for name, t in (("gamma", self.gamma), ("lambda", self.lmbda)):
            if not bool(((t >= 0) & (t <= 1)).all()):
                raise ValueError(f"{name} must lie in [0, 1], got {t.flatten().tolist()}.")
        self.set_keys(**{k: (group, k if k != "value" else "state_value") for k in ("advantage", "value_target", "value", "reward", "done", "terminated", "truncated")})
        self.set_keys(sample_log_prob=(group, "action_log_prob"))

    def set_keys(self, **kwargs: NestedKey) -> None:
        """Rename the keys read and written (names as in the class table); unknown names raise ``ValueError``."""
        valid = list(self._AcceptedKeys.__dataclass_fields__)
        unknown = [k for k in kwargs if k not in valid]
        if unknown:
            raise ValueError(f"unknown key name(s) {unknown} for MAPPOGAE.set_keys; valid names: {valid}.")
        super().set_keys(**kwargs)

    def _signal(self, nxt: TensorDictBase, key: NestedKey) -> torch.Tensor | None:
        """Per-agent entry if present, else the team entry at the root (same leaf name)."""
        value = nxt.get(key, None)
        if value is None and isinstance(key, tuple):
            value = nxt.get(key[-1], None)
        return value

    def value_estimate(self, tensordict: TensorDictBase, **kwargs) -> torch.Tensor:
        """Value targets ``R = A + V`` (not standardized) for ``tensordict``."""
        return self._compute(tensordict)[1]

    @torch.no_grad()
    def _compute(self, td: TensorDictBase) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.tensor_keys
        if self.value_network is not None:
            self.value_network(td)
            self.value_network(td.get("next"))
        nxt = td.get("next")
        value, next_value = td.get(keys.value, None), nxt.get(keys.value, None)
        if value is None or next_value is None:
            raise KeyError(
                f"MAPPOGAE needs {keys.value} and ('next', *{keys.value}) in the input; pass value_network=critic "
                "or run the critic on the data and on data['next'] first."
            )
        n_agents = value.shape[-2]
        reward = self._signal(nxt, keys.reward)
        terminated = self._signal(nxt, keys.terminated)
        if reward is None or terminated is None:
            raise KeyError(f"MAPPOGAE needs ('next', reward) and ('next', terminated) (keys {keys.reward}, {keys.terminated}, per agent or at the root).")
        reward = broadcast_to_agents(reward, n_agents, name="reward")
        if reward.shape != value.shape:
            raise ValueError(
                f"reward shape {tuple(reward.shape)} does not match value shape {tuple(value.shape)}; the critic must write "
                f"[*B, T, n_agents, 1] and rewards must be [*B, T, n_agents, 1] or team-shared [*B, T, 1]."
            )
        terminated = broadcast_to_agents(terminated, n_agents, name="terminated").bool()
        done = self._signal(nxt, keys.done)
        truncated = self._signal(nxt, keys.truncated)
        done = terminated if done is None else broadcast_to_agents(done, n_agents, name="done").bool() | terminated
        if truncated is not None:
            done = done | broadcast_to_agents(truncated, n_agents, name="truncated").bool()
        if not self.time_limit_bootstrap:
            terminated = done  # truncation treated as termination
        t = td.ndim - 1  # time is the last batch dim (TorchRL collector layout)
        gamma = self.gamma.unsqueeze(-1) if self.gamma.ndim else self.gamma  # [n, 1, 1] against [..., n, T, 1]
        lmbda = self.lmbda.unsqueeze(-1) if self.lmbda.ndim else self.lmbda
        adv, target = generalized_advantage_estimate(
            gamma, lmbda, *(x.movedim(t, -2) for x in (value, next_value, reward, done, terminated))
        )
        return adv.movedim(-2, t), target.movedim(-2, t)

    def forward(self, tensordict: TensorDictBase, **kwargs) -> TensorDictBase:
        """Write ``advantage`` (standardized if asked) and ``value_target`` into ``tensordict``."""
        adv, target = self._compute(tensordict)
        if self.standardize:
            adv = standardize_per_agent(adv)
        tensordict.set(self.tensor_keys.advantage, adv)
        tensordict.set(self.tensor_keys.value_target, target)
        return tensordict
