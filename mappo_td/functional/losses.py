"""MAPPO's loss terms on plain tensors: the clipped surrogate, the value losses and their clip forms, the entropy term,
the approximate KL and the KL early stop.

Shapes follow TorchRL's multi-agent layout: log-probabilities and entropies ``[*B, n_agents]``, advantages and values
``[*B, n_agents, 1]``, the alive mask ``[*B, n_agents]`` (bool). Coefficients are numbers or per agent
(``[n_agents, 1]`` tensors; :func:`mappo_loss` also takes ``[n_agents]``, see
:func:`~mappo_td.functional.reductions.per_agent_coefficient`). :func:`mappo_loss` is what :class:`mappo_td.MAPPOLoss`
computes once its networks ran.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mappo_td.defaults import VALUE_CLIP_FORMS, VALUE_LOSSES
from mappo_td.functional.reductions import batch_mean, check_mask, masked_std_mean, non_agent_dims, per_agent_coefficient

Coefficient = float | torch.Tensor

#: The terms :func:`mappo_loss` returns, in its order (the losses, then the detached diagnostics).
LOSS_TERMS = ("loss_objective", "loss_critic", "loss_entropy", "kl_approx", "clip_fraction", "entropy", "explained_variance")


def clipped_surrogate(advantage: torch.Tensor, ratio: torch.Tensor, ratio_clip: Coefficient) -> torch.Tensor:
    """``min(A·ρ, A·clip(ρ, 1 − c, 1 + c))`` per entry (the policy loss is minus its mean).

    Example:
        >>> clipped_surrogate(torch.tensor([1.0, -1.0]), torch.tensor([1.5, 0.5]), 0.2)
        tensor([ 1.2000, -0.8000])
    """
    return torch.min(advantage * ratio, advantage * ratio.clamp(1 - ratio_clip, 1 + ratio_clip))


def check_value_loss(value_loss: str, value_clip_form: str, huber_delta: float) -> None:
    """Raise ``ValueError`` unless ``value_loss`` is one of ``VALUE_LOSSES``, ``value_clip_form`` one of
    ``VALUE_CLIP_FORMS`` and ``huber_delta > 0``.

    Example:
        >>> check_value_loss("l1", "max", 1.0)
        Traceback (most recent call last):
        ...
        ValueError: value_loss must be one of ('mse', 'huber') (got 'l1'), value_clip_form one of ('prediction', 'max') (got 'max'), huber_delta > 0 (got 1.0).
    """
    if value_loss not in VALUE_LOSSES or value_clip_form not in VALUE_CLIP_FORMS or not huber_delta > 0:
        raise ValueError(f"value_loss must be one of {VALUE_LOSSES} (got {value_loss!r}), value_clip_form one of "
                         f"{VALUE_CLIP_FORMS} (got {value_clip_form!r}), huber_delta > 0 (got {huber_delta!r}).")


def value_error_loss(error: torch.Tensor, value_loss: str = "mse", huber_delta: float = 10.0) -> torch.Tensor:
    """``error²`` (``"mse"``, skrl's) or Huber (``"huber"``, the MAPPO reference's): ``error²/2`` within ``±huber_delta``,
    ``δ(|error| − δ/2)`` outside; per entry.

    Example:
        >>> value_error_loss(torch.tensor([1.0, 4.0]), "huber", huber_delta=2.0)
        tensor([0.5000, 6.0000])
    """
    if value_loss == "mse":
        return error.pow(2)
    if value_loss != "huber":
        raise ValueError(f"value_loss must be one of {VALUE_LOSSES}, got {value_loss!r}.")
    d = huber_delta
    return torch.where(error.abs() <= d, 0.5 * error.pow(2), d * (error.abs() - 0.5 * d))


def critic_loss(value: torch.Tensor, old_value: torch.Tensor, value_target: torch.Tensor, *, value_loss: str = "mse",
                huber_delta: float = 10.0, clip_predicted_values: bool = False, value_clip: Coefficient = 0.2,
                value_clip_form: str = "prediction") -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, prediction)`` per entry: ℓ(R − V_pred) (:func:`value_error_loss`), and with ``clip_predicted_values``
    and ``V_clip = V_old + clip(V_pred − V_old, ±value_clip)``: ``"prediction"`` ℓ(R − V_clip) (skrl's; the
    prediction returned is ``V_clip``) or ``"max"`` max(ℓ(R − V_pred), ℓ(R − V_clip)) (the MAPPO reference's).

    Example:
        >>> loss, pred = critic_loss(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([3.0]), clip_predicted_values=True)
        >>> loss, pred  # V_clip = 0.2
        (tensor([7.8400]), tensor([0.2000]))
    """
    loss = value_error_loss(value_target - value, value_loss, huber_delta)
    if not clip_predicted_values:
        return loss, value
    clipped_value = old_value + (value - old_value).clamp(-value_clip, value_clip)
    if value_clip_form == "max":  # the MAPPO reference: the larger of the unclipped and clipped losses
        return torch.max(loss, value_error_loss(value_target - clipped_value, value_loss, huber_delta)), value
    if value_clip_form != "prediction":
        raise ValueError(f"value_clip_form must be one of {VALUE_CLIP_FORMS}, got {value_clip_form!r}.")
    return value_error_loss(value_target - clipped_value, value_loss, huber_delta), clipped_value  # skrl's


def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor | None = None) -> torch.Tensor:
    """``(e^r − 1) − r`` per entry, ``r = log p' − log p`` (``ratio``: ``e^r`` if computed already): its mean is the
    approximate KL divergence skrl reports and stops on (≥ 0, 0 where the policy has not moved).

    Example:
        >>> approx_kl(torch.tensor([0.0, 0.1]))
        tensor([0.0000, 0.0052])
    """
    return ((log_ratio.exp() if ratio is None else ratio) - 1) - log_ratio


def kl_early_stop(kl: torch.Tensor, kl_threshold: Coefficient, keep_updating: torch.Tensor) -> torch.Tensor:
    """``keep_updating`` with ``False`` where the minibatch's ``kl`` exceeds ``kl_threshold`` (a threshold of 0 is off):
    skrl's KL early stop, which skips the rest of the epoch. A tensor op (no host sync); ``[]`` or per agent.

    Example:
        >>> keep = torch.tensor([True, True, False])
        >>> kl_early_stop(torch.tensor([0.05, 0.001, 0.0]), torch.tensor([0.01, 0.01, 0.01]), keep)
        tensor([False,  True, False])
        >>> kl_early_stop(torch.tensor(0.05), 0.0, torch.tensor(True))  # threshold 0: off
        tensor(True)
    """
    if not isinstance(kl_threshold, torch.Tensor):
        return keep_updating & ~(kl > kl_threshold) if kl_threshold > 0 else keep_updating
    return keep_updating & ~((kl > kl_threshold) & (kl_threshold > 0))


def explained_variance(value_target: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None, *,
                       per_agent: bool = False) -> torch.Tensor:
    """``1 − Var(R − V) / Var(R)`` (unbiased, over ``mask``'s entries), over the batch, or per agent.

    Example:
        >>> r = torch.tensor([[[1.0]], [[2.0]], [[3.0]]])  # [B=3, n_agents=1, 1]
        >>> explained_variance(r, r), explained_variance(r, torch.zeros_like(r) + 2.0)
        (tensor(1.), tensor(0.))
    """
    dims = non_agent_dims(value_target) if per_agent else list(range(value_target.ndim))
    residual_var, target_var = (masked_std_mean(x, mask, dims, keepdim=False)[0].pow(2) for x in (value_target - value, value_target))
    ev = 1 - residual_var / target_var.clamp_min(1e-8)
    return ev.squeeze(-1) if per_agent else ev


def check_loss_shapes(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantage: torch.Tensor, value: torch.Tensor,
                      old_value: torch.Tensor, value_target: torch.Tensor, alive: torch.Tensor | None = None,
                      entropy: torch.Tensor | None = None) -> None:
    """Raise ``ValueError`` (saying what is expected) unless the inputs of :func:`mappo_loss` have matching shapes
    (``entropy`` and ``alive``, when given, ``[*B, n_agents]`` like the log-probs), ``TypeError`` unless ``alive`` is bool.

    Example:
        >>> v = torch.zeros(8, 3, 1)
        >>> check_loss_shapes(torch.zeros(8, 3), torch.zeros(8, 3), torch.zeros(8, 1), v, v, v)
        Traceback (most recent call last):
        ...
        ValueError: shape mismatch: advantage (8, 1), value_target (8, 3, 1), value (8, 3, 1) must all be [*B, n_agents, 1] and old_log_prob (8, 3) [*B, n_agents]; team-shared signals must be broadcast to agents before the loss (see broadcast_to_agents, mappo_gae).
    """
    if not (advantage.shape == value_target.shape == old_value.shape) or advantage.shape[:-1] != old_log_prob.shape:
        raise ValueError(
            f"shape mismatch: advantage {tuple(advantage.shape)}, value_target {tuple(value_target.shape)}, value "
            f"{tuple(old_value.shape)} must all be [*B, n_agents, 1] and old_log_prob {tuple(old_log_prob.shape)} "
            "[*B, n_agents]; team-shared signals must be broadcast to agents before the loss (see broadcast_to_agents, mappo_gae)."
        )
    if log_prob.shape != old_log_prob.shape:
        raise ValueError(f"the policy's log-prob shape {tuple(log_prob.shape)} != the stored one {tuple(old_log_prob.shape)}.")
    if value.shape != value_target.shape:
        raise ValueError(f"the critic's output {tuple(value.shape)} does not match value_target {tuple(value_target.shape)}.")
    if alive is not None and alive.shape != old_log_prob.shape:
        raise ValueError(f"alive mask has shape {tuple(alive.shape)}; expected {tuple(old_log_prob.shape)} ([*B, n_agents], like log_prob).")
    if alive is not None:
        check_mask(alive, "alive")
    if entropy is not None and entropy.shape != old_log_prob.shape:
        raise ValueError(f"entropy has shape {tuple(entropy.shape)}; expected {tuple(old_log_prob.shape)} ([*B, n_agents], like log_prob).")


def _coefficients(advantage: torch.Tensor, **coefficients: Coefficient) -> tuple[Coefficient, ...]:
    """The loss coefficients as they broadcast over ``advantage`` ``[*B, n_agents, 1]`` (per agent ``[n_agents, 1]``); a
    Python number ``ratio_clip`` / ``value_clip`` below 0 or ``huber_delta`` not above 0 is a ``ValueError`` (tensors
    are not read: no host sync)."""
    for name, x in coefficients.items():
        strict = name == "huber_delta"
        if name in ("ratio_clip", "value_clip", "huber_delta") and not isinstance(x, torch.Tensor) and not (x > 0 if strict else x >= 0):
            raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'}, got {x!r}.")
    return tuple(per_agent_coefficient(x, advantage, name=name) for name, x in coefficients.items())


def _select_alive(alive: torch.Tensor | None, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``xs`` with 0 where ``alive`` is false: selected, not multiplied, so a NaN or inf of a dead agent-step reaches no
    term and no gradient (``xs`` unchanged without a mask)."""
    if alive is None:
        return xs
    dead = ~alive
    return tuple(x.masked_fill(dead, 0.0) for x in xs)


def _batch_mean_fn(mask: torch.Tensor | None, like: torch.Tensor, per_agent: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x ↦ batch_mean(x, mask, per_agent=per_agent)`` for ``x`` shaped like ``like`` whose masked-out entries were
    selected out of the inputs already (finite): the mask's float and count are computed once for every term."""
    if mask is None:
        return lambda x: batch_mean(x, per_agent=per_agent)
    dims = non_agent_dims(like) if per_agent else list(range(like.ndim))
    m = mask.expand_as(like).to(like.dtype)
    count = m.sum(dim=dims).clamp_min(1.0)
    return lambda x: ((x * m).sum(dim=dims) / count).squeeze(-1) if per_agent else (x * m).sum(dim=dims) / count


def mappo_loss(
    *,
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, entropy: torch.Tensor,
    advantage: torch.Tensor, value: torch.Tensor, old_value: torch.Tensor, value_target: torch.Tensor,
    ratio_clip: Coefficient = 0.2, entropy_loss_scale: Coefficient = 0.0, value_loss_scale: Coefficient = 1.0,
    value_loss: str = "mse", huber_delta: float = 10.0,
    clip_predicted_values: bool = False, value_clip: Coefficient = 0.2, value_clip_form: str = "prediction",
    alive: torch.Tensor | None = None, policy_alive_mask: bool = True, value_alive_mask: bool = True, per_agent: bool = False,
) -> dict[str, torch.Tensor]:
    """MAPPO's loss terms and diagnostics for a batch ``[*B]`` of one agent group (see :class:`mappo_td.MAPPOLoss`).

    Inputs: ``log_prob`` (the policy now, with gradient), ``old_log_prob`` (at collection) and ``entropy`` ``[*B, n_agents]``;
    ``advantage``, ``value`` (the critic now), ``old_value`` (at collection), ``value_target`` ``[*B, n_agents, 1]``.
    ``alive`` ``[*B, n_agents]`` (bool): the policy, entropy and diagnostic terms (``policy_alive_mask``) and the value
    terms (``value_alive_mask``) average over alive agent-steps only; dead ones are selected out before any arithmetic
    (a NaN there changes no term, no gradient). ``per_agent``: every term is ``[n_agents]``. Coefficients: numbers
    (``ratio_clip``, ``value_clip`` ≥ 0, ``huber_delta`` > 0) or per agent, ``[n_agents]`` or ``[n_agents, 1]``.

    Returns ``loss_objective`` (−mean min(A·ρ, A·clip(ρ, 1±c))), ``loss_critic`` (value_loss_scale · mean of
    :func:`critic_loss`), ``loss_entropy`` (−entropy_loss_scale · mean H), and the detached ``kl_approx``,
    ``clip_fraction``, ``entropy``, ``explained_variance``; the optimizer steps on the sum of the three losses.

    Example:
        >>> lp = torch.log(torch.full((4, 2), 0.5))  # [B=4, n_agents=2]
        >>> v = torch.zeros(4, 2, 1)
        >>> out = mappo_loss(log_prob=lp, old_log_prob=lp, advantage=torch.ones(4, 2, 1), value=v, old_value=v,
        ...                  value_target=torch.arange(8.0).view(4, 2, 1), entropy=torch.full((4, 2), 0.69), entropy_loss_scale=0.01)
        >>> {k: round(float(x), 4) for k, x in out.items()}
        {'loss_objective': -1.0, 'loss_critic': 17.5, 'loss_entropy': -0.0069, 'kl_approx': 0.0, 'clip_fraction': 0.0, 'entropy': 0.69, 'explained_variance': 0.0}
    """
    check_loss_shapes(log_prob, old_log_prob, advantage, value, old_value, value_target, alive, entropy)
    ratio_clip, value_clip, entropy_loss_scale, value_loss_scale, huber_delta = _coefficients(
        advantage, ratio_clip=ratio_clip, value_clip=value_clip, entropy_loss_scale=entropy_loss_scale,
        value_loss_scale=value_loss_scale, huber_delta=huber_delta)
    alive = None if alive is None else alive.unsqueeze(-1)
    p_alive, v_alive = (alive if policy_alive_mask else None), (alive if value_alive_mask else None)
    log_ratio, entropy = (log_prob - old_log_prob).unsqueeze(-1), entropy.unsqueeze(-1)
    log_ratio, advantage, entropy = _select_alive(p_alive, log_ratio, advantage, entropy)
    value, old_value, value_target = _select_alive(v_alive, value, old_value, value_target)
    p_mean = _batch_mean_fn(p_alive, advantage, per_agent)
    v_mean = p_mean if v_alive is p_alive else _batch_mean_fn(v_alive, advantage, per_agent)
    ratio = log_ratio.exp()
    surrogate = clipped_surrogate(advantage, ratio, ratio_clip)
    loss, prediction = critic_loss(value, old_value, value_target, value_loss=value_loss, huber_delta=huber_delta,
                                   clip_predicted_values=clip_predicted_values, value_clip=value_clip, value_clip_form=value_clip_form)
    with torch.no_grad():
        kl = approx_kl(log_ratio, ratio)
        clipped = ((ratio - 1).abs() > ratio_clip).float()
        ev = explained_variance(value_target, prediction, v_alive, per_agent=per_agent)
    return {
        "loss_objective": -p_mean(surrogate),
        "loss_critic": v_mean(value_loss_scale * loss),
        "loss_entropy": -p_mean(entropy_loss_scale * entropy),
        "kl_approx": p_mean(kl),
        "clip_fraction": p_mean(clipped),
        "entropy": p_mean(entropy.detach()),
        "explained_variance": ev,
    }
