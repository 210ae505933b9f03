"""Minibatches of the collected batch: what they carry, and how they are drawn.

Flat now: every epoch one ``torch.randperm`` on the data's device (no host work, the
global torch generator, so a checkpoint's RNG state makes resume exact), cut into
``mini_batches`` equal minibatches; the remainder of a batch that ``mini_batches``
does not divide is left out of that epoch (a fresh permutation each epoch). Sequence
chunks for recurrent models come next, here.
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


def minibatches(flat: TensorDictBase, mini_batches: int) -> Iterator[TensorDictBase]:
    """One epoch of ``flat`` (a 1-D batch) in ``mini_batches`` random minibatches of ``len(flat) // mini_batches``.

    Example:
        >>> from tensordict import TensorDict
        >>> data = TensorDict({"x": torch.arange(10)}, [10])
        >>> parts = list(minibatches(data, 3))
        >>> [len(p) for p in parts], len(set(torch.cat([p["x"] for p in parts]).tolist()))
        ([3, 3, 3], 9)
    """
    if flat.ndim != 1:
        raise ValueError(f"minibatches needs a flat batch ([N]); got batch size {tuple(flat.batch_size)}: use data.reshape(-1).")
    n = flat.shape[0]
    size = n // mini_batches
    if size < 1:
        raise ValueError(f"mini_batches={mini_batches} is larger than the batch ({n} frames).")
    perm = torch.randperm(n, device=flat.device)
    for i in range(mini_batches):
        yield flat[perm[i * size:(i + 1) * size]]
