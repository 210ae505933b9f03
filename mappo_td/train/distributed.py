"""Data parallelism across processes with ``torch.distributed``, launched by ``torchrun``.

One trainer per process (rank): each steps its own ``env.num_envs`` environments on
its own device (``cuda:LOCAL_RANK``, or CPU with ``gloo``), and all ranks update one
set of parameters, so a run of N processes is one process with N× the environments:

* gradients averaged across ranks before clipping and the optimizer step
  (:func:`average_gradients`, inside the update step: no host sync);
* the advantage standardization, the running standardizers (observations, values)
  and the KL of the early stop and of ``KLAdaptiveLR`` use global statistics
  (:func:`all_reduce_sum`, passed as ``reduce`` to the modules that take it);
* episode statistics and loss terms summed at log time; rank 0 alone writes.

Outside ``torchrun`` (or with one process) every function here is the identity.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class DistributedError(RuntimeError):
    """A collective failed or timed out: another rank died or stopped answering."""


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group.

    Example:
        >>> world()
        (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_world_size() -> int:
    """The ``WORLD_SIZE`` torchrun set for this process (1 outside torchrun).

    Example:
        >>> launched_world_size() >= 1
        True
    """
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer; launch with torchrun.") from None


def init_distributed(device: torch.device, timeout_s: float) -> torch.device:
    """Join the process group torchrun describes (env ``RANK``, ``WORLD_SIZE``, ...) once; returns this rank's device.

    A CUDA ``device`` becomes ``cuda:LOCAL_RANK`` (backend ``nccl``); CPU uses ``gloo``.
    Collectives that wait longer than ``timeout_s`` fail (a rank died). With one process,
    or a process group the caller already made, nothing is initialized.

    Example:
        >>> init_distributed(torch.device("cpu"), 60.0)  # not under torchrun: unchanged
        device(type='cpu')
    """
    if launched_world_size() == 1 and not dist.is_initialized():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} CUDA device(s); "
                             "use --nproc-per-node at most the number of GPUs (or --device cpu).")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s),
                                device_id=device if device.type == "cuda" else None)
    return device


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s environments and sampling (rank 0 keeps ``seed``).

    Example:
        >>> rank_seed(7, 0), rank_seed(7, 2)
        (7, 2000021)
    """
    return seed + 1_000_007 * rank


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over all ranks (a new tensor; traceable by ``torch.compile``, no host sync).

    Example:
        >>> all_reduce_sum(torch.tensor([1.0, 2.0]))  # one process: x itself
        tensor([1., 2.])
    """
    if world()[1] == 1:
        return x
    import torch.distributed._functional_collectives as funcol

    return funcol.wait_tensor(funcol.all_reduce(x, "sum", dist.group.WORLD))


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over all ranks (see :func:`all_reduce_sum`).

    Example:
        >>> all_reduce_mean(torch.tensor(3.0))
        tensor(3.)
    """
    n = world()[1]
    return x if n == 1 else all_reduce_sum(x) / n


def reduce_together(tensors: Sequence[torch.Tensor], reduce: Callable[[torch.Tensor], torch.Tensor] = all_reduce_sum) -> list[torch.Tensor]:
    """``reduce`` (a sum over ranks) applied to several tensors in one flat collective; returns them reshaped as given.

    Example:
        >>> reduce_together([torch.ones(2, 2), torch.zeros(3)], reduce=lambda t: t * 2)
        [tensor([[2., 2.],
                [2., 2.]]), tensor([0., 0., 0.])]
    """
    flat = reduce(torch.cat([t.reshape(-1) for t in tensors]))
    return [part.view_as(t) for t, part in zip(tensors, flat.split([t.numel() for t in tensors]))]


@torch.no_grad()
def average_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replace every gradient by its mean over all ranks, in one flat collective.

    Each rank's loss is a mean over its minibatch and all minibatches have the same
    size, so the result is the gradient of the mean over the global minibatch.

    Example:
        >>> p = nn.Parameter(torch.zeros(2)); p.grad = torch.ones(2)
        >>> average_gradients([p]); p.grad
        tensor([1., 1.])
    """
    grads = [p.grad for p in params if p.grad is not None]
    if world()[1] == 1 or not grads:
        return
    for g, mean in zip(grads, reduce_together(grads, all_reduce_mean)):
        g.copy_(mean)


@torch.no_grad()
def broadcast_state(modules: Sequence[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``modules`` (all ranks start equal).

    Example:
        >>> m = nn.Linear(2, 1); w = m.weight.clone()
        >>> broadcast_state([m]); torch.equal(m.weight, w)
        True
    """
    if world()[1] == 1:
        return
    for m in modules:
        for t in [*m.parameters(), *m.buffers()]:
            dist.broadcast(t.data, src=0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank.

    Example:
        >>> gather_objects({"a": 1})
        [{'a': 1}]
    """
    if world()[1] == 1:
        return [obj]
    out: list[Any] = [None] * world()[1]
    dist.all_gather_object(out, obj)
    return out


def from_rank0(obj: Any) -> Any:
    """Rank 0's ``obj`` (picklable), on every rank.

    Example:
        >>> from_rank0("runs/x")
        'runs/x'
    """
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_rank0(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on rank 0 alone (e.g. a file-system change) and return its result on every rank; an exception
    it raises is raised on every rank (so none waits for the others forever).

    Example:
        >>> on_rank0(lambda: 1 + 1)
        2
    """
    rank, n = world()
    if n == 1:
        return fn()
    out: tuple[Any, BaseException | None] = (None, None)
    if rank == 0:
        try:
            out = (fn(), None)
        except Exception as err:  # noqa: BLE001 (re-raised below, on every rank)
            out = (None, err)
    result, err = from_rank0(out)
    if err is not None:
        raise err
    return result


def is_collective_failure(err: BaseException) -> bool:
    """Whether ``err`` is a failed or timed-out collective (another rank died or hangs).

    Example:
        >>> is_collective_failure(ValueError("x"))
        False
    """
    if world()[1] == 1:
        return False
    kinds = tuple(getattr(dist, n) for n in ("DistError", "DistBackendError", "DistNetworkError") if hasattr(dist, n))
    text = str(err).lower()
    return isinstance(err, kinds) or any(w in text for w in ("gloo", "nccl", "connection closed", "timed out", "timeout", "c10d"))


@contextmanager
def collectives_named(timestep: Callable[[], int]) -> Iterator[None]:
    """Turn a failed or timed-out collective inside the block into a :class:`DistributedError` that says what
    happened (``timestep``: where the run was); other errors pass unchanged.

    Example:
        >>> with collectives_named(lambda: 0):
        ...     pass
    """
    try:
        yield
    except DistributedError:
        raise
    except Exception as err:
        if is_collective_failure(err):
            raise collective_failure(err, timestep()) from err
        raise


def collective_failure(err: BaseException, timestep: int) -> DistributedError:
    """The clear error for a failed collective at ``timestep`` (the last checkpoint is whole: writes are atomic)."""
    rank, n = world()
    lines = str(err).strip().splitlines()
    first = lines[0][:200] if lines else type(err).__name__
    return DistributedError(
        f"rank {rank} of {n}: a collective failed near timestep {timestep} ({type(err).__name__}: {first}). Another rank "
        "probably died or hung (see its output above); this rank stops too. Checkpoints are written atomically by rank 0, so "
        "the last one is whole: resume from it with the same number of processes."
    )


def shutdown() -> None:
    """Leave the process group (if this process is in one).

    Example:
        >>> shutdown()
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
