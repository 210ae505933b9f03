"""Value (and input) normalization with running statistics: modules holding the state of the functions of
:mod:`mappo_td.functional.value_norm` in their buffers.

:class:`RunningStandardScaler` is skrl's ``RunningStandardScaler``: the value preprocessor
(values are de-normalized before GAE, returns and values normalized for the loss) and
the observation / shared-state preprocessor. It owns the three operations:
:meth:`~RunningStandardScaler.update`, :meth:`~RunningStandardScaler.normalize`,
:meth:`~RunningStandardScaler.denormalize`. :class:`ValueNorm` and :class:`PopArt` are the MAPPO reference's.
(``RunningStandardizer`` is a deprecated alias of :class:`RunningStandardScaler`.)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mappo_td.functional.value_norm import (
    batch_rows,  # noqa: F401  (importable from here too)
    denormalize,
    normalize,
    popart_rescale,
    standard_scaler_update,
    value_norm_mean_var,
    value_norm_update,
)


class RunningStandardScaler(nn.Module):
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
    ``mappo_td.train.distributed.all_reduce_sum``) makes each update merge the
    statistics of every process's batch together, so all processes stay equal.

    Example:
        >>> s = RunningStandardScaler(2)
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
        state = (self.running_mean, self.running_variance, self.current_count)
        for buffer, new in zip(state, standard_scaler_update(*state, x, reduce=self.reduce, who=type(self).__name__)):
            buffer.copy_(new)

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
        return normalize(x, self.running_mean, self.running_variance, epsilon=self.epsilon, clip=self.clip_threshold)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """``sqrt(var) · clamp(x, ±clip) + mean`` (skrl's inverse)."""
        return denormalize(x, self.running_mean, self.running_variance, clip=self.clip_threshold)

    def normalize_for_loss(self, values: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The collected (real-scale) values and returns, normalized for the loss: skrl's order, the statistics merged
        from the values, then from the returns.

        Example:
            >>> s = RunningStandardScaler(1)
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
        return value_norm_mean_var(self.running_mean, self.running_mean_sq, self.debiasing_term, epsilon=self.epsilon)

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Move the statistics toward the batch ``x`` ``[*N, *shape]`` (one step of weight ``beta``)."""
        state = (self.running_mean, self.running_mean_sq, self.debiasing_term)
        for buffer, new in zip(state, value_norm_update(*state, x, beta=self.beta, reduce=self.reduce, who=type(self).__name__)):
            buffer.copy_(new)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x − μ) / σ``."""
        return normalize(x, *self.running_mean_var())

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """``x·σ + μ``."""
        return denormalize(x, *self.running_mean_var())

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
            for param, new in zip(self.output_layer, popart_rescale(*self.output_layer, old_mean, old_var, *self.running_mean_var())):
                param.copy_(new)


def __getattr__(name: str) -> Any:
    if name == "RunningStandardizer":  # the earlier name
        warnings.warn("RunningStandardizer is deprecated: use RunningStandardScaler (skrl's name, as in the configuration).",
                      DeprecationWarning, stacklevel=2)
        return RunningStandardScaler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
