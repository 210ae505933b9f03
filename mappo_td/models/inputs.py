"""Model inputs: a group's observation (Box, or a Dict flattened in sorted key order) as one flat tensor.

Every builder reads ``(group, observation_key)`` (``[*B, n_agents, *F]``) through
:func:`observation_input`; an optional preprocessor (e.g. a running standardizer)
is applied to the flat tensor by :func:`with_preprocessor`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict.nn import TensorDictModule, TensorDictModuleBase
from torch import nn
from torchrl.data import Composite

from mappo_td.keys import NestedKey


def _as_tuple(key: NestedKey) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def observation_leaves(observation_spec: Composite, key: NestedKey, batch_ndim: int) -> list[tuple[tuple[str, ...], torch.Size]]:
    """``(key, event_shape)`` of every leaf under ``key``, in a fixed (sorted) order.

    ``batch_ndim`` is how many leading dims of each leaf are batch (environment
    batch dims, plus the agent dim for a group entry).

    Example:
        >>> from torchrl.data import Bounded
        >>> spec = Composite(obs=Composite(b=Composite(x=Bounded(-1, 1, (4, 3, 2))), a=Bounded(-1, 1, (4, 3, 5)), shape=(4, 3)), shape=(4,))
        >>> observation_leaves(spec, "obs", 2)
        [(('obs', 'a'), torch.Size([5])), (('obs', 'b', 'x'), torch.Size([2]))]
    """
    key = _as_tuple(key)
    try:
        spec = observation_spec[key]
    except KeyError:
        raise KeyError(
            f"no observation {key} in the spec; available keys: "
            f"{sorted(map(str, observation_spec.keys(include_nested=True, leaves_only=True)))}"
        ) from None
    if not isinstance(spec, Composite):
        return [(key, spec.shape[batch_ndim:])]
    leaves = sorted((_as_tuple(k) for k in spec.keys(include_nested=True, leaves_only=True)), key=lambda k: k)
    return [(key + k, spec[k].shape[batch_ndim:]) for k in leaves]


def n_features(observation_spec: Composite, group: str, observation_key: NestedKey = "observation") -> int:
    """Size of the flat observation of one agent of ``group``.

    Example:
        >>> from torchrl.data import Unbounded
        >>> n_features(Composite(agents=Composite(observation=Unbounded((8, 3, 2, 3)), shape=(8, 3)), shape=(8,)), "agents")
        6
    """
    gspec = group_spec(observation_spec, group, "observation")
    return sum(int(torch.Size(s).numel()) for _, s in observation_leaves(gspec, observation_key, len(gspec.shape)))


class ConcatFlat(nn.Module):
    """Flattens the trailing ``event_ndims[i]`` dims of each input and concatenates them on the last dim; integer, bool
    and float64 inputs (a board, a one-hot grid) become floats of the default dtype.

    Example:
        >>> ConcatFlat([1, 2])(torch.zeros(4, 3), torch.zeros(4, 2, 5, dtype=torch.int8)).dtype
        torch.float32
    """

    def __init__(self, event_ndims: Sequence[int]) -> None:
        super().__init__()
        self.event_ndims = list(event_ndims)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        flat = [x.unsqueeze(-1) if k == 0 else x.flatten(-k) for x, k in zip(inputs, self.event_ndims)]
        flat = [x.to(torch.get_default_dtype()) for x in flat]  # a no-op for float32 inputs
        return torch.cat(flat, dim=-1) if len(flat) > 1 else flat[0]


def group_spec(spec: Composite, group: str, what: str) -> Composite:
    """``spec[group]``, or a ``KeyError`` that lists the groups present.

    Example:
        >>> group_spec(Composite(red=Composite(shape=(2,)), shape=()), "blue", "observation")
        Traceback (most recent call last):
        ...
        KeyError: "no group 'blue' in the observation spec; groups present: ['red']."
    """
    if group not in spec.keys():
        groups = [k for k in spec.keys() if isinstance(spec[k], Composite)]
        raise KeyError(f"no group {group!r} in the {what} spec; groups present: {groups}.")
    return spec[group]


def observation_input(observation_spec: Composite, group: str, observation_key: NestedKey = "observation") -> tuple[list[TensorDictModuleBase], NestedKey, int]:
    """Modules that turn a group's observation into one flat ``[*B, n_agents, F]`` tensor.

    Returns ``(modules, key_of_flat_input, F)``; ``modules`` is empty when the
    observation is already a flat Box of the default float dtype.

    Example:
        >>> from torchrl.data import Unbounded
        >>> spec = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> observation_input(spec, "agents")[1:]
        (('agents', 'observation'), 6)
    """
    gspec = group_spec(observation_spec, group, "observation")
    leaves = observation_leaves(gspec, observation_key, len(gspec.shape))
    n = sum(int(torch.Size(s).numel()) for _, s in leaves)
    if len(leaves) == 1 and len(leaves[0][1]) == 1 and gspec[leaves[0][0]].dtype == torch.get_default_dtype():
        return [], (group, *leaves[0][0]), n
    out_key = (group, "observation_vec")
    flat = TensorDictModule(ConcatFlat([len(s) for _, s in leaves]), in_keys=[(group, *k) for k, _ in leaves], out_keys=[out_key])
    return [flat], out_key, n


def with_preprocessor(
    pre: list[TensorDictModuleBase], in_key: NestedKey, group: str, preprocessor: nn.Module | None, name: str
) -> tuple[list[TensorDictModuleBase], NestedKey]:
    """Append ``preprocessor`` (e.g. a running standardizer) on the flat input, writing ``(group, name)``.

    Example:
        >>> mods, key = with_preprocessor([], ("agents", "observation"), "agents", nn.Identity(), "obs_norm")
        >>> len(mods), key
        (1, ('agents', 'obs_norm'))
    """
    if preprocessor is None:
        return pre, in_key
    out_key = (group, name)
    return [*pre, TensorDictModule(preprocessor, in_keys=[in_key], out_keys=[out_key])], out_key
