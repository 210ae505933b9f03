"""Value (and input) normalization with running statistics.

:class:`RunningStandardizer` is skrl's ``RunningStandardScaler``: the value preprocessor
(values are de-normalized before GAE, returns and values normalized for the loss) and
the observation / shared-state preprocessor. It owns the three operations:
:meth:`~RunningStandardizer.update`, :meth:`~RunningStandardizer.normalize`,
:meth:`~RunningStandardizer.denormalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


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


class RunningStandardizer(nn.Module):
    """Standardize with running statistics; ``inverse=True`` maps back (for value targets/predictions).

    ``forward(x)`` -> ``clamp((x − mean) / sqrt(var + eps), ±clip)``;
    ``forward(x, inverse=True)`` -> ``sqrt(var) · clamp(x, ±clip) + mean``;
    ``update(x)`` merges the batch statistics of ``x`` (all leading dims are
    batch, the trailing dims must equal ``shape``) with Chan's parallel formula.
    Statistics stay on the device: no host synchronization. Wrap it in a
    :class:`tensordict.nn.TensorDictModule` to use it on TensorDict keys, or pass it
    as ``input_preprocessor`` to the policy/critic builders. While
    ``update_on_forward`` is set, every forward call also updates the statistics.
    ``reduce`` (a function summing a tensor over data-parallel processes, e.g.
    :func:`mappo_td.train.distributed.all_reduce_sum`) makes each update merge the
    statistics of every process's batch together, so all processes stay equal.

    Example:
        >>> s = RunningStandardizer(2)
        >>> s.update(torch.tensor([[1.0, 10.0], [3.0, 30.0]]))
        >>> s.running_mean
        tensor([ 1.3333, 13.3333])
        >>> torch.allclose(s(s(torch.ones(2)), inverse=True), torch.ones(2), atol=1e-5)
        True
    """

    def __init__(self, shape: int | Sequence[int], epsilon: float = 1e-8, clip_threshold: float = 5.0) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.epsilon, self.clip_threshold = float(epsilon), float(clip_threshold)
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_variance", torch.ones(shape))
        self.register_buffer("current_count", torch.ones(()))
        self.update_on_forward = False
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of the batch ``x`` ``[*N, *shape]`` into the running ones."""
        x = batch_rows(x, self.running_mean, type(self).__name__)
        if self.reduce is None:
            var, mean = torch.var_mean(x, dim=0)
            n = x.shape[0]
        else:  # the batch of every process: global count, mean and (unbiased) variance
            n = self.reduce(torch.full((), x.shape[0], dtype=x.dtype, device=x.device))
            mean = self.reduce(x.sum(0)) / n
            var = self.reduce((x - mean).pow(2).sum(0)) / (n - 1).clamp_min(1.0)
        delta = mean - self.running_mean
        total = self.current_count + n
        m2 = self.running_variance * self.current_count + var * n + delta.pow(2) * self.current_count * n / total
        self.running_mean.add_(delta * n / total)
        self.running_variance.copy_(m2 / total)
        self.current_count.copy_(total)

    @contextmanager
    def updating(self) -> Iterator[None]:
        """Merge the statistics of every input seen by ``forward`` inside the block (e.g. a model pass)."""
        self.update_on_forward = True
        try:
            yield
        finally:
            self.update_on_forward = False

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``clamp((x − mean) / sqrt(var + eps), ±clip)``."""
        return ((x - self.running_mean) / (self.running_variance + self.epsilon).sqrt()).clamp(-self.clip_threshold, self.clip_threshold)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """``sqrt(var) · clamp(x, ±clip) + mean`` (skrl's inverse)."""
        return self.running_variance.sqrt() * x.clamp(-self.clip_threshold, self.clip_threshold) + self.running_mean

    def normalize_for_loss(self, values: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The collected (real-scale) values and returns, normalized for the loss: skrl's order, the statistics merged
        from the values, then from the returns.

        Example:
            >>> s = RunningStandardizer(1)
            >>> v, t = s.normalize_for_loss(torch.ones(4, 1), torch.full((4, 1), 3.0))
            >>> float(s.current_count)
            9.0
        """
        self.update(values)
        values = self.normalize(values)
        self.update(targets)
        return values, self.normalize(targets)

    def forward(self, x: torch.Tensor, train: bool = False, inverse: bool = False) -> torch.Tensor:
        """skrl's call form: normalize ``x`` (first updating the statistics with it when ``train``), or denormalize."""
        if train or self.update_on_forward:
            self.update(x)
        return self.denormalize(x) if inverse else self.normalize(x)


class ValueNorm(nn.Module):
    """The MAPPO reference's value normalizer: exponential running mean and mean of squares (``beta``), debiased.

    ``update(x)``: ``m ← β·m + (1−β)·mean(x)``, ``m2 ← β·m2 + (1−β)·mean(x²)``, ``d ← β·d + (1−β)``;
    ``normalize(x) = (x − μ) / σ`` and ``denormalize(x) = x·σ + μ`` with ``μ = m / max(d, ε)`` and
    ``σ² = max(m2 / max(d, ε) − μ², 1e-2)``. As ``value_preprocessor`` (``"ValueNorm"``) the critic predicts
    normalized values, which are de-normalized for GAE; the statistics are updated from the returns only
    (the reference's ``value_normalizer.update(return_batch)``), once per update over the whole batch, and the
    returns are normalized for the loss. ``reduce`` (sum over data-parallel processes) makes the batch means global.

    Example:
        >>> v = ValueNorm(1)
        >>> v.update(torch.tensor([[1.0], [3.0]]))
        >>> v.running_mean_var()
        (tensor([2.]), tensor([1.]))
        >>> torch.allclose(v.denormalize(v.normalize(torch.tensor([5.0]))), torch.tensor([5.0]))
        True
    """

    def __init__(self, shape: int | Sequence[int], beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not 0.0 < beta < 1.0 or not epsilon > 0:
            raise ValueError(f"ValueNorm needs 0 < beta < 1 and epsilon > 0, got beta={beta}, epsilon={epsilon}.")
        self.beta, self.epsilon = float(beta), float(epsilon)
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_mean_sq", torch.zeros(shape))
        self.register_buffer("debiasing_term", torch.zeros(()))
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def running_mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The debiased mean and variance (variance at least 1e-2, as in the reference)."""
        d = self.debiasing_term.clamp(min=self.epsilon)
        mean, mean_sq = self.running_mean / d, self.running_mean_sq / d
        return mean, (mean_sq - mean.pow(2)).clamp(min=1e-2)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Move the statistics toward the batch ``x`` ``[*N, *shape]`` (one step of weight ``beta``)."""
        x = batch_rows(x, self.running_mean, type(self).__name__)
        if self.reduce is None:
            mean, mean_sq = x.mean(0), x.pow(2).mean(0)
        else:
            n = self.reduce(torch.full((), x.shape[0], dtype=x.dtype, device=x.device))
            mean, mean_sq = self.reduce(x.sum(0)) / n, self.reduce(x.pow(2).sum(0)) / n
        w = self.beta
        self.running_mean.mul_(w).add_(mean * (1.0 - w))
        self.running_mean_sq.mul_(w).add_(mean_sq * (1.0 - w))
        self.debiasing_term.mul_(w).add_(1.0 - w)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − μ) / σ``."""
        mean, var = self.running_mean_var()
        return (x - mean) / var.sqrt()

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x·σ + μ``."""
        mean, var = self.running_mean_var()
        return x * var.sqrt() + mean

    def normalize_for_loss(self, values: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The collected (real-scale) values and returns, normalized for the loss, as the reference does: the values
        with the statistics they were predicted under (the critic's own outputs again), then the statistics updated
        from the returns alone, which are normalized with the new ones.

        Example:
            >>> v = ValueNorm(1)
            >>> _, t = v.normalize_for_loss(torch.zeros(2, 1), torch.tensor([[1.0], [3.0]]))
            >>> v.running_mean_var()[0], t.squeeze(-1)
            (tensor([2.]), tensor([-1.,  1.]))
        """
        values = self.normalize(values)
        self.update(targets)
        return values, self.normalize(targets)

    def forward(self, x: torch.Tensor, train: bool = False, inverse: bool = False) -> torch.Tensor:
        """The preprocessor call form: normalize ``x`` (updating first when ``train``), or denormalize."""
        if train:
            self.update(x)
        return self.denormalize(x) if inverse else self.normalize(x)


class PopArt(ValueNorm):
    """:class:`ValueNorm` that also rescales the critic's output layer whenever the statistics move (Pop-Art,
    van Hasselt et al. 2016): ``W ← W·σ/σ'``, ``b ← (σ·b + μ − μ')/σ'``, so the de-normalized outputs are preserved.

    :meth:`attach` finds the output layer: the critic's last ``weight`` / ``bias`` parameters, with one output
    (``[..., 1, H]`` / ``[..., 1]``: shared, or stacked per agent).

    Example:
        >>> critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        >>> p = PopArt(1, beta=0.9).attach(critic)
        >>> x = torch.randn(5, 3); before = p.denormalize(critic(x))
        >>> p.update(torch.randn(64, 1) * 10 + 3)
        >>> torch.allclose(p.denormalize(critic(x)), before, atol=1e-5)
        True
    """

    def __init__(self, shape: int | Sequence[int], beta: float = 0.99999, epsilon: float = 1e-5) -> None:
        super().__init__(shape, beta, epsilon)
        self.output_layer: tuple[torch.Tensor, torch.Tensor] | None = None

    def attach(self, critic: nn.Module) -> PopArt:
        """Rescale ``critic``'s output layer from now on; returns ``self``."""
        named = list(critic.named_parameters())
        weights = [p for n, p in named if n.endswith("weight")]
        biases = [p for n, p in named if n.endswith("bias")]
        if not weights or not biases or weights[-1].shape[-2] != 1 or biases[-1].shape[-1] != 1:
            raise ValueError("PopArt needs a critic whose output layer is linear with one output (weight [..., 1, H], "
                             "bias [..., 1]); use value_preprocessor='ValueNorm' for other critics.")
        self.output_layer = (weights[-1], biases[-1])
        return self

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """:meth:`ValueNorm.update`, then the output layer rescaled to the new statistics."""
        old_mean, old_var = self.running_mean_var()
        super().update(x)
        if self.output_layer is not None:
            new_mean, new_var = self.running_mean_var()
            old_std, new_std = old_var.sqrt(), new_var.sqrt()
            weight, bias = self.output_layer
            weight.mul_(old_std / new_std)
            bias.copy_((old_std * bias + old_mean - new_mean) / new_std)
