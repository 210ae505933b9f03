"""GAE(λ) on plain tensors: terminated is not truncated, team or per-agent signals, per-agent γ/λ.

For every transition t (time runs along ``time_dim``)::

    δ_t = r_t + γ · (1 − terminated_{t+1}) · V(s'_t) − V(s_t)
    A_t = δ_t + γ · λ · (1 − done_{t+1}) · A_{t+1}
    R_t = A_t + V(s_t)

``V(s'_t)`` is the value of the true next state (the observation seen before any reset); the ``_{t+1}``
flags are those reported with transition t. With ``time_limit_bootstrap=False`` (the default) truncation
counts as termination. :func:`generalized_advantage_estimate` is the recursion alone (TorchRL's
``torchrl.objectives.value.functional.generalized_advantage_estimate``, same arguments);
:func:`mappo_gae` is what :class:`mappo_td.MAPPOGAE` computes from the collected tensors.
"""

from __future__ import annotations

import torch

from mappo_td.functional.reductions import Reduce, broadcast_to_agents, check_mask, per_agent_coefficient, standardize_per_agent

Coefficient = float | torch.Tensor


def generalized_advantage_estimate(
    gamma: Coefficient,
    lmbda: Coefficient,
    state_value: torch.Tensor,
    next_state_value: torch.Tensor,
    reward: torch.Tensor,
    done: torch.Tensor,
    terminated: torch.Tensor | None = None,
    *,
    time_dim: int = -2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantage, value_target)`` by the GAE recursion along ``time_dim``; all tensors of one shape.

    ``done`` cuts the recursion (an episode ended: terminated or truncated), ``terminated`` (default: ``done``)
    drops the bootstrap from ``next_state_value``: those entries are selected out (``torch.where``), so a NaN or inf
    next value after a termination, or anything after a ``done``, never reaches another step. ``gamma`` and ``lmbda``
    are numbers or tensors that broadcast to the values' shape without changing it (per agent: ``[n_agents, 1]``
    against ``[*B, T, n_agents, 1]`` with ``time_dim=-3``; :func:`mappo_gae` also takes ``[n_agents]``); any other
    shape (e.g. ``[n_agents]`` here, which would broadcast to ``[..., n_agents, n_agents]``) is a ``ValueError``.

    Example:
        >>> v = torch.zeros(4, 1)  # [T, 1]
        >>> no = torch.zeros(4, 1, dtype=torch.bool)
        >>> adv, target = generalized_advantage_estimate(0.5, 1.0, v, v, torch.ones(4, 1), no)
        >>> target.squeeze(-1)
        tensor([1.8750, 1.7500, 1.5000, 1.0000])
    """
    terminated = done if terminated is None else terminated
    shapes = [tuple(t.shape) for t in (state_value, next_state_value, reward, done, terminated)]
    if len(set(shapes)) != 1:
        raise ValueError(f"state_value, next_state_value, reward, done, terminated must have one shape, got {shapes}; "
                         "broadcast team-shared signals first (broadcast_to_agents), or use mappo_gae.")
    for name, c in (("gamma", gamma), ("lmbda", lmbda)):
        if isinstance(c, torch.Tensor) and torch.broadcast_shapes(c.shape, state_value.shape) != state_value.shape:
            raise ValueError(f"{name} of shape {tuple(c.shape)} would broadcast the values {tuple(state_value.shape)} to "
                             f"{tuple(torch.broadcast_shapes(c.shape, state_value.shape))}: give it as a number or a shape that "
                             "broadcasts to the values' (per agent: [n_agents, 1]), or use mappo_gae (which takes [n_agents]).")
    done, terminated = done.bool(), terminated.bool()
    # select, do not multiply: a next value after a termination (NaN, inf) is never read
    delta = reward + (gamma * next_state_value).masked_fill(terminated, 0.0) - state_value
    discount = (lmbda * gamma * (~done).to(next_state_value.dtype)).movedim(time_dim, 0)
    delta, cut = delta.movedim(time_dim, 0), done.movedim(time_dim, 0)
    advantage = torch.empty_like(delta)
    if delta.shape[0]:
        advantage[-1] = delta[-1]
    for t in reversed(range(delta.shape[0] - 1)):
        later = advantage[t + 1].masked_fill(cut[t], 0.0)  # an episode's end: nothing after it is read (NaN, inf)
        torch.add(delta[t], later.mul_(discount[t]), out=advantage[t])
    advantage = advantage.movedim(0, time_dim)
    return advantage, advantage + state_value


def episode_flags(value: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor | None = None,
                  done: torch.Tensor | None = None, *, time_limit_bootstrap: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(done, terminated)`` as GAE uses them, per agent (shaped like ``value`` ``[*B, n_agents, 1]``; each flag
    team-shared ``[*B, 1]`` or per agent): ``done = terminated | truncated | done`` (a missing ``truncated`` is
    ``done & ~terminated``), and without ``time_limit_bootstrap`` truncation counts as termination.

    Example:
        >>> term, trunc = torch.tensor([[False], [False]]), torch.tensor([[False], [True]])
        >>> d, t = episode_flags(torch.zeros(2, 3, 1), term, trunc)
        >>> d[:, 0, 0].tolist(), t[:, 0, 0].tolist(), episode_flags(torch.zeros(2, 3, 1), term, trunc, time_limit_bootstrap=True)[1][:, 0, 0].tolist()
        ([False, True], [False, True], [False, False])
    """
    terminated = broadcast_to_agents(terminated, value, name="terminated").bool()
    done = terminated if done is None else broadcast_to_agents(done, value, name="done").bool() | terminated
    if truncated is not None:
        done = done | broadcast_to_agents(truncated, value, name="truncated").bool()
    return done, terminated if time_limit_bootstrap else done


def mappo_gae(
    value: torch.Tensor,
    next_value: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None = None,
    done: torch.Tensor | None = None,
    *,
    gamma: Coefficient = 0.99,
    lmbda: Coefficient = 0.95,
    time_limit_bootstrap: bool = False,
    standardize: bool = True,
    alive: torch.Tensor | None = None,
    reduce: Reduce | None = None,
    time_dim: int = -3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantage, value_target)`` of one agent group, as :class:`mappo_td.MAPPOGAE` computes them.

    Args:
        value, next_value: ``V(s_t)`` and ``V(s'_t)``, ``[*B, T, n_agents, 1]`` (time at ``time_dim``).
        reward, terminated, truncated, done: per agent (shaped like ``value``) or team-shared ``[*B, T, 1]``;
            ``truncated`` and ``done`` may be ``None`` (see :func:`episode_flags`).
        gamma, lmbda: numbers, or per agent (tensors ``[n_agents]`` / ``[n_agents, 1]``).
        time_limit_bootstrap: bootstrap from ``V(s')`` on truncation (else truncation = termination).
        standardize: ``(A − mean) / (std + 1e-8)`` per agent over the batch (:func:`standardize_per_agent`); the
            value targets are never standardized.
        alive: ``[*B, T, n_agents]`` bools (another dtype is a ``TypeError``): the standardization counts these entries
            only (a NaN advantage of a dead agent-step changes no other entry).
        reduce: sum over data-parallel processes (global statistics for the standardization).

    Example:
        >>> v = torch.zeros(4, 2, 1)  # [T, n_agents, 1]
        >>> adv, target = mappo_gae(v, v, torch.ones(4, 1), torch.zeros(4, 1, dtype=torch.bool),
        ...                         gamma=torch.tensor([0.5, 0.0]), lmbda=1.0, standardize=False)
        >>> target[..., 0].T
        tensor([[1.8750, 1.7500, 1.5000, 1.0000],
                [1.0000, 1.0000, 1.0000, 1.0000]])
    """
    if next_value.shape != value.shape:
        raise ValueError(f"next_value shape {tuple(next_value.shape)} != value shape {tuple(value.shape)} ([*B, T, n_agents, 1]).")
    if alive is not None and alive.shape != value.shape[:-1]:
        raise ValueError(f"alive mask has shape {tuple(alive.shape)}; expected {tuple(value.shape[:-1])} ([*B, T, n_agents]).")
    if alive is not None:
        check_mask(alive, "alive")
    reward = broadcast_to_agents(reward, value, name="reward")  # raises unless team-shared or shaped like the values
    done, terminated = episode_flags(value, terminated, truncated, done, time_limit_bootstrap=time_limit_bootstrap)
    gamma, lmbda = per_agent_coefficient(gamma, value, name="gamma"), per_agent_coefficient(lmbda, value, name="lmbda")
    adv, target = generalized_advantage_estimate(gamma, lmbda, value, next_value, reward, done, terminated, time_dim=time_dim)
    if standardize:
        adv = standardize_per_agent(adv, None if alive is None else alive.unsqueeze(-1), reduce=reduce)
    return adv, target
