"""Broadcasting team signals to agents, and the one set of (optionally masked) reductions that the loss and GAE share.

A mask is a bool tensor broadcastable to the reduced tensor, ``True`` where an entry counts (an alive agent-step);
``None`` counts every entry. Masked-out entries are left out by selection (``torch.where``), not by multiplying with
the mask: a NaN or inf there changes neither the result nor the gradient of the entries that count. A mask of another
dtype (float weights such as 0.5) is refused. ``reduce`` sums a tensor over data-parallel processes (e.g.
``torch.distributed.all_reduce``): statistics are then those of every process's data together, with no host sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Reduce = Callable[[torch.Tensor], torch.Tensor]


def broadcast_to_agents(signal: torch.Tensor, value: torch.Tensor, *, name: str = "signal") -> torch.Tensor:
    """Return ``signal`` shaped like the per-agent ``value`` (``[*B, n_agents, 1]``).

    A team-shared signal has one dim fewer than ``value`` (``[*B, 1]``) and is
    expanded over the agents; a per-agent one has as many dims and passes through.
    The decision is made from the number of dims, never from sizes (a team signal
    ``[N, T, 1]`` with ``T == n_agents`` is still a team signal).

    Example:
        >>> v = torch.zeros(4, 3, 3, 1)  # [N, T, n_agents, 1] with T == n_agents
        >>> broadcast_to_agents(torch.zeros(4, 3, 1), v).shape
        torch.Size([4, 3, 3, 1])
        >>> broadcast_to_agents(torch.ones(4, 3, 3, 1), v).shape
        torch.Size([4, 3, 3, 1])
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"broadcast_to_agents needs the per-agent value tensor [*B, n_agents, 1] as its second argument, got {type(value).__name__}.")
    if signal.shape[-1:] != (1,):
        raise ValueError(
            f"{name} must end in a singleton dimension ([*B, 1] team-shared or [*B, n_agents, 1] "
            f"per agent), got shape {tuple(signal.shape)}; add one with .unsqueeze(-1)."
        )
    n_agents = value.shape[-2]
    if signal.ndim == value.ndim and signal.shape[-2] == n_agents:
        return signal
    if signal.ndim == value.ndim - 1:
        return signal.unsqueeze(-2).expand(*signal.shape[:-1], n_agents, 1)
    raise ValueError(
        f"{name} shape {tuple(signal.shape)} does not match value shape {tuple(value.shape)}: expected team-shared "
        f"{(*value.shape[:-2], 1)} or per agent {tuple(value.shape)}."
    )


def check_mask(mask: torch.Tensor, name: str = "mask") -> None:
    """Raise ``TypeError`` unless ``mask`` is a bool tensor (float weights such as 0.5 are not masks).

    Example:
        >>> check_mask(torch.tensor([1.0, 0.5]), "alive")
        Traceback (most recent call last):
        ...
        TypeError: alive must be a bool tensor (True where an entry counts), got dtype torch.float32; a float mask such as 0.5 is not a weight here: pass mask > 0 or mask.bool().
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True where an entry counts), got "
                        f"{f'dtype {mask.dtype}' if isinstance(mask, torch.Tensor) else type(mask).__name__}; "
                        "a float mask such as 0.5 is not a weight here: pass mask > 0 or mask.bool().")


def per_agent_coefficient(x: float | torch.Tensor, value: torch.Tensor, *, name: str) -> float | torch.Tensor:
    """A number, or a tensor ``[]``, ``[n_agents]`` or ``[n_agents, 1]``, as something that broadcasts over ``value``
    ``[*B, n_agents, 1]`` agent by agent (``[n_agents, 1]``); any other shape is a ``ValueError``.

    Example:
        >>> per_agent_coefficient(torch.tensor([0.9, 0.5]), torch.zeros(8, 2, 1), name="gamma").shape
        torch.Size([2, 1])
    """
    if not isinstance(x, torch.Tensor) or x.ndim == 0:
        return x
    n_agents = value.shape[-2]
    if x.shape in ((n_agents,), (n_agents, 1)):
        return x.reshape(n_agents, 1)
    raise ValueError(f"{name} must be a number or per agent ([n_agents] or [n_agents, 1], n_agents={n_agents}), "
                     f"got shape {tuple(x.shape)}.")


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None, dim: int | Sequence[int] | None = None, keepdim: bool = False) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` (all dims when ``None``) counting only entries where the bool ``mask`` (broadcast to
    ``x``) is true; masked-out entries are not read (a NaN there changes nothing). No entry counted: 0.

    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0, float("nan")])
        >>> masked_mean(x, torch.tensor([True, True, True, False]))
        tensor(2.)
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim, keepdim=keepdim)
    check_mask(mask)
    dims = tuple(range(x.ndim)) if dim is None else dim
    count = mask.expand_as(x).sum(dim=dims, keepdim=keepdim, dtype=x.dtype)
    return torch.where(mask, x, 0.0).sum(dim=dims, keepdim=keepdim) / count.clamp_min(1.0)


def masked_std_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: Sequence[int], keepdim: bool = True,
                    reduce: Reduce | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.std_mean`` (unbiased) over ``dim``, counting only entries where the bool ``mask`` is true (masked-out
    entries are not read).

    With ``reduce`` the statistics are those of the concatenation of every process's ``x``
    (counts, sums and squared deviations are reduced).

    Example:
        >>> x = torch.tensor([[1.0], [3.0], [50.0]])
        >>> masked_std_mean(x, torch.tensor([[True], [True], [False]]), dim=[0])
        (tensor([[1.4142]]), tensor([[2.]]))
        >>> masked_std_mean(x, None, dim=[0], reduce=lambda t: t * 2)[1]  # two processes holding the same x
        tensor([[18.]])
    """
    dim = list(dim)
    if mask is None and reduce is None:
        return torch.std_mean(x, dim=dim, keepdim=keepdim)
    if mask is not None:
        check_mask(mask)
        x = x.masked_fill(~mask, 0.0)  # masked-out entries are not read (a NaN there changes nothing)
    m = torch.ones_like(x) if mask is None else mask.expand_as(x).to(x.dtype)
    reduce = reduce or (lambda t: t)
    n = reduce(m.sum(dim=dim, keepdim=True))
    mean = reduce(x.sum(dim=dim, keepdim=True)) / n.clamp_min(1.0)
    var = reduce(((x - mean).pow(2) * m).sum(dim=dim, keepdim=True)) / (n - 1).clamp_min(1.0)
    if not keepdim:
        mean, var = mean.squeeze(dim), var.squeeze(dim)
    return var.sqrt(), mean


def non_agent_dims(x: torch.Tensor) -> list[int]:
    """Every dim of ``x`` ``[*B, n_agents, 1]`` but the agent dim (``-2``).

    Example:
        >>> non_agent_dims(torch.zeros(5, 4, 3, 1))
        [0, 1, 3]
    """
    return [d for d in range(x.ndim) if d != x.ndim - 2]


def standardize_per_agent(advantage: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8,
                          reduce: Reduce | None = None) -> torch.Tensor:
    """``(A − mean) / (std + eps)`` over every dim but the agent dim (``-2``), over ``mask``'s entries if given
    (``reduce``: statistics over every data-parallel process, see :func:`masked_std_mean`).

    Example:
        >>> a = standardize_per_agent(torch.randn(50, 3, 1) * torch.tensor([1.0, 10.0, 100.0]).view(3, 1))
        >>> torch.allclose(a.std(dim=0), torch.ones(3, 1), atol=1e-4)
        True
    """
    std, mean = masked_std_mean(advantage, mask, non_agent_dims(advantage), reduce=reduce)
    return (advantage - mean) / (std + eps)


def batch_mean(x: torch.Tensor, mask: torch.Tensor | None = None, *, per_agent: bool = False) -> torch.Tensor:
    """(Masked) mean of ``x`` ``[*B, n_agents, 1]``: over everything (a scalar), or with ``per_agent`` over everything but
    the agent dim (``[n_agents]``: agents trained with their own parameters and optimizer).

    Example:
        >>> x = torch.tensor([[[1.0], [10.0]], [[3.0], [30.0]]])  # [B=2, n_agents=2, 1]
        >>> batch_mean(x), batch_mean(x, per_agent=True), batch_mean(x, torch.tensor([[[True], [True]], [[False], [True]]]))
        (tensor(11.), tensor([ 2., 20.]), tensor(13.6667))
    """
    if per_agent:
        return masked_mean(x, mask, dim=non_agent_dims(x)).squeeze(-1)
    return masked_mean(x, mask)
