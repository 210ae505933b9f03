"""Minibatches of the collected batch: what they carry, and how they are drawn.

Every epoch one ``torch.randperm`` on the data's device (no host work, the global
torch generator, so a checkpoint's RNG state makes resume exact), cut into
``mini_batches`` equal minibatches; the remainder that ``mini_batches`` does not divide
is left out of that epoch (a fresh permutation each epoch). MLP bodies draw single
frames from the flat ``[num_envs * rollouts]`` batch; recurrent bodies draw whole chunks
of ``data_chunk_length`` consecutive steps from :func:`chunks` (``[n_chunks, length]``):
a chunk's first hidden state is the one stored at collection (the reference's choice).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from tensordict import TensorDictBase

from mappo_td.keys import NestedKey


def update_keys(groups: Iterable, extra: Iterable[NestedKey] = ()) -> list[NestedKey]:
    """The keys a minibatch carries: each group's policy and critic inputs and the loss's keys, then ``extra``.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> from mappo_td import MAPPOLoss
        >>> keys = MAPPOLoss.default_keys()
        >>> g = NS(policy=NS(in_keys=[("agents", "observation")]), critic=NS(in_keys=[("agents", "observation")]), loss=NS(tensor_keys=keys))
        >>> update_keys([g])[:2]
        [('agents', 'observation'), ('agents', 'action')]
    """
    keys: list = []
    for g in groups:
        k = g.loss.tensor_keys
        keys += [*g.policy.in_keys, *g.critic.in_keys, k.action, k.sample_log_prob, k.advantage, k.value_target, k.value]
    return list(dict.fromkeys([*keys, *extra]))


def chunks(data: TensorDictBase, length: int) -> TensorDictBase:
    """``data`` (``[num_envs, T]``) cut along time into ``[num_envs * T // length, length]`` chunks of consecutive steps.

    Chunk ``i`` is env ``i // (T // length)``, steps ``(i % (T // length)) * length`` onwards. ``length`` must divide ``T``.

    Example:
        >>> from tensordict import TensorDict
        >>> data = TensorDict({"t": torch.arange(6).expand(2, 6)}, [2, 6])
        >>> chunks(data, 3)["t"]
        tensor([[0, 1, 2],
                [3, 4, 5],
                [0, 1, 2],
                [3, 4, 5]])
    """
    if data.ndim != 2:
        raise ValueError(f"chunks needs a [num_envs, T] rollout; got batch size {tuple(data.batch_size)}.")
    n_envs, t = data.shape
    if length < 1 or t % length:
        raise ValueError(f"data_chunk_length={length} must divide the rollout's {t} steps.")
    return data.reshape(n_envs * (t // length), length)


def minibatches(flat: TensorDictBase, mini_batches: int) -> Iterator[TensorDictBase]:
    """One epoch of ``flat`` in ``mini_batches`` random minibatches of ``len(flat) // mini_batches`` entries of its first dim.

    ``flat`` is ``[N]`` (frames) or ``[N, length]`` (:func:`chunks`: whole chunks are drawn).

    Example:
        >>> from tensordict import TensorDict
        >>> data = TensorDict({"x": torch.arange(10)}, [10])
        >>> parts = list(minibatches(data, 3))
        >>> [len(p) for p in parts], len(set(torch.cat([p["x"] for p in parts]).tolist()))
        ([3, 3, 3], 9)
    """
    if flat.ndim not in (1, 2):
        raise ValueError(f"minibatches needs a flat batch ([N]) or chunks ([N, length]); got batch size {tuple(flat.batch_size)}: "
                         "use data.reshape(-1) or chunks(data, length).")
    n = flat.shape[0]
    size = n // mini_batches
    if size < 1:
        raise ValueError(f"mini_batches={mini_batches} is larger than the batch ({n} {'frames' if flat.ndim == 1 else 'chunks'}).")
    perm = torch.randperm(n, device=flat.device)
    for i in range(mini_batches):
        yield flat[perm[i * size:(i + 1) * size]]
