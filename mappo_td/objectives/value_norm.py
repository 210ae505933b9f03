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
        shape = self.running_mean.shape
        if x.shape[x.ndim - len(shape):] != shape:
            raise ValueError(f"RunningStandardizer of shape {tuple(shape)} got input {tuple(x.shape)}; the trailing dims must match.")
        x = x.reshape(-1, *shape).to(self.running_mean.dtype)
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

    def forward(self, x: torch.Tensor, train: bool = False, inverse: bool = False) -> torch.Tensor:
        """skrl's call form: normalize ``x`` (first updating the statistics with it when ``train``), or denormalize."""
        if train or self.update_on_forward:
            self.update(x)
        return self.denormalize(x) if inverse else self.normalize(x)
