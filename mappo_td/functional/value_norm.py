"""Running statistics for value (and input) normalization, as functions of explicit state tensors.

* skrl's ``RunningStandardScaler``: state ``(mean, var, count)``, merged with each batch by Chan's parallel formula
  (:func:`standard_scaler_update`), used with ``epsilon`` and ``clip`` in :func:`normalize` / :func:`denormalize`.
* the MAPPO reference's ValueNorm: state ``(mean, mean_sq, debias)``, moved toward each batch with weight ``beta``
  (:func:`value_norm_update`), read debiased (:func:`value_norm_mean_var`); PopArt also rescales the critic's output
  layer (:func:`popart_rescale`).

Every update returns the new state (the modules of :mod:`mappo_td.objectives.value_norm` copy it into their buffers).
``reduce`` sums a tensor over data-parallel processes: the batch statistics are then global.
"""

from __future__ import annotations

import torch

from mappo_td.functional.reductions import Reduce


def batch_rows(x: torch.Tensor, like: torch.Tensor, who: str) -> torch.Tensor:
    """``x`` ``[*N, *like.shape]`` as rows ``[N, *like.shape]`` in ``like``'s dtype (a clear error when the trailing dims differ).

    Example:
        >>> batch_rows(torch.zeros(2, 3, 1), torch.zeros(1), "ValueNorm").shape
        torch.Size([6, 1])
    """
    shape = like.shape
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"{who} of shape {tuple(shape)} got input {tuple(x.shape)}; the trailing dims must match.")
    return x.reshape(-1, *shape).to(like.dtype)


def standard_scaler_update(mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor, x: torch.Tensor, *,
                           reduce: Reduce | None = None, who: str = "RunningStandardScaler") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, var, count)`` merged with the batch ``x`` ``[*N, *mean.shape]`` (its unbiased variance), skrl's way.

    Example:
        >>> m, v, n = standard_scaler_update(torch.zeros(1), torch.ones(1), torch.ones(()), torch.tensor([[1.0], [3.0]]))
        >>> m, v, n
        (tensor([1.3333]), tensor([2.5556]), tensor(3.))
    """
    x = batch_rows(x, mean, who)
    if reduce is None:
        batch_var, batch_mean = torch.var_mean(x, dim=0)
        n = x.shape[0]
    else:  # the batch of every process: global count, mean and (unbiased) variance
        n = reduce(torch.full((), x.shape[0], dtype=x.dtype, device=x.device))
        batch_mean = reduce(x.sum(0)) / n
        batch_var = reduce((x - batch_mean).pow(2).sum(0)) / (n - 1).clamp_min(1.0)
    delta = batch_mean - mean
    total = count + n
    m2 = var * count + batch_var * n + delta.pow(2) * count * n / total
    return mean + delta * n / total, m2 / total, total


def normalize(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, epsilon: float = 0.0, clip: float | None = None) -> torch.Tensor:
    """``(x − mean) / sqrt(var + epsilon)``, clamped to ``±clip`` when given.

    Example:
        >>> normalize(torch.tensor([3.0, 100.0]), torch.tensor(1.0), torch.tensor(4.0), clip=5.0)
        tensor([1., 5.])
    """
    out = (x - mean) / ((var + epsilon) if epsilon else var).sqrt()
    return out if clip is None else out.clamp(-clip, clip)


def denormalize(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, *, clip: float | None = None) -> torch.Tensor:
    """``sqrt(var) · x + mean`` (``x`` first clamped to ``±clip`` when given): the inverse of :func:`normalize`.

    Example:
        >>> denormalize(torch.tensor([1.0, 9.0]), torch.tensor(1.0), torch.tensor(4.0), clip=5.0)
        tensor([ 3., 11.])
    """
    return (x if clip is None else x.clamp(-clip, clip)) * var.sqrt() + mean


def value_norm_update(mean: torch.Tensor, mean_sq: torch.Tensor, debias: torch.Tensor, x: torch.Tensor, *, beta: float,
                      reduce: Reduce | None = None, who: str = "ValueNorm") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``m ← β·m + (1−β)·mean(x)``, ``m2 ← β·m2 + (1−β)·mean(x²)``, ``d ← β·d + (1−β)`` over the batch ``x`` ``[*N, *m.shape]``.

    Example:
        >>> z = torch.zeros(1)
        >>> value_norm_update(z, z, torch.zeros(()), torch.tensor([[1.0], [3.0]]), beta=0.5)
        (tensor([1.]), tensor([2.5000]), tensor(0.5000))
    """
    x = batch_rows(x, mean, who)
    if reduce is None:
        batch_mean, batch_mean_sq = x.mean(0), x.pow(2).mean(0)
    else:
        n = reduce(torch.full((), x.shape[0], dtype=x.dtype, device=x.device))
        batch_mean, batch_mean_sq = reduce(x.sum(0)) / n, reduce(x.pow(2).sum(0)) / n
    w = beta
    return mean * w + batch_mean * (1.0 - w), mean_sq * w + batch_mean_sq * (1.0 - w), debias * w + (1.0 - w)


def value_norm_mean_var(mean: torch.Tensor, mean_sq: torch.Tensor, debias: torch.Tensor, *, epsilon: float = 1e-5,
                        min_var: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """The debiased mean and variance of ValueNorm's state (the variance at least ``min_var``, as in the reference).

    Example:
        >>> value_norm_mean_var(torch.tensor([1.0]), torch.tensor([2.5]), torch.tensor(0.5))
        (tensor([2.]), tensor([1.]))
    """
    d = debias.clamp(min=epsilon)
    mean, mean_sq = mean / d, mean_sq / d
    return mean, (mean_sq - mean.pow(2)).clamp(min=min_var)


def popart_rescale(weight: torch.Tensor, bias: torch.Tensor, old_mean: torch.Tensor, old_var: torch.Tensor,
                   new_mean: torch.Tensor, new_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output layer ``(W, b)`` that keeps de-normalized outputs when the statistics move (Pop-Art):
    ``W·σ/σ'`` and ``(σ·b + μ − μ')/σ'``.

    Example:
        >>> w, b = popart_rescale(torch.ones(1, 2), torch.zeros(1), torch.zeros(1), torch.ones(1), torch.ones(1), torch.full((1,), 4.0))
        >>> w, b
        (tensor([[0.5000, 0.5000]]), tensor([-0.5000]))
    """
    old_std, new_std = old_var.sqrt(), new_var.sqrt()
    return weight * (old_std / new_std), (old_std * bias + old_mean - new_mean) / new_std
