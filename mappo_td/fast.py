"""The one fast path: a tensor plan for the loss, and one wrapper for compile / CUDA graphs.

* :class:`TensorPlan` runs a chain of ``TensorDictModule`` objects on a plain ``{key: tensor}``
  dict: the same modules, without TensorDict bookkeeping per call. A network it
  cannot plan keeps the TensorDict path, with a warning that says why.
* :func:`accelerate` wraps any function (the update step, an acting policy) by the
  ``fast`` mode: ``"off"`` as is, ``"compile"`` with ``torch.compile``,
  ``"cudagraphs"`` compiled and then captured with :func:`capture` (LeanRL's shape:
  the same functions, wrapped in one place that reads the flag).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModule, TensorDictSequential
from torch import nn

from mappo_td.defaults import FAST_MODES


class TensorPlan:
    """A plain chain of ``TensorDictModule`` objects run on a ``{key: tensor}`` dict.

    Example:
        >>> m = TensorDictSequential(TensorDictModule(nn.Linear(2, 3), ["x"], ["h"]), TensorDictModule(nn.Tanh(), ["h"], ["y"]))
        >>> plan = TensorPlan.of(m)
        >>> plan.in_keys, plan({"x": torch.zeros(4, 2)})["y"].shape
        (['x'], torch.Size([4, 3]))
    """

    def __init__(self, steps: list[tuple[nn.Module, list, list]]) -> None:
        self.steps = steps
        self.in_keys = list(dict.fromkeys(k for _, ins, _ in steps for k in ins if not any(k in outs for _, _, outs in steps)))

    @classmethod
    def of(cls, module: nn.Module, *, what: str = "network") -> TensorPlan | None:
        """The plan of ``module``, or ``None`` (with a warning naming ``what``) when it is not a plain chain."""
        steps = cls._steps(module)
        if steps is None:
            warnings.warn(f"{what} ({type(module).__name__}) is not a plain chain of TensorDictModules: its loss terms use "
                          "the TensorDict path (same results, slower per call).", stacklevel=2)
            return None
        return cls(steps)

    @classmethod
    def _steps(cls, module: nn.Module) -> list | None:
        if isinstance(module, ProbabilisticTensorDictSequential):
            return cls._steps(module[0]) if len(module.module) == 2 else None
        if isinstance(module, TensorDictSequential):
            out = []
            for m in module.module:
                sub = cls._steps(m)
                if sub is None:
                    return None
                out += sub
            return out
        if type(module) is TensorDictModule and module.out_keys_source == module.out_keys:
            return [(module.module, list(module.in_keys), list(module.out_keys))]
        return None

    def __call__(self, values: dict) -> dict:
        """Run every step on ``values`` (updated in place and returned)."""
        for m, ins, outs in self.steps:
            res = m(*[values[k] for k in ins])
            if isinstance(res, torch.Tensor):
                res = (res,)
            values.update(zip(outs, res))
        return values


def capture(fn: Callable, *, warmup: int = 3, out_keys: Sequence[Any] | None = None) -> Callable:
    """Wrap ``fn`` in tensordict's ``CudaGraphModule`` (captured after ``warmup`` calls on CUDA; a pass-through on CPU).

    Its rules: static shapes, no branching on tensor values, tensors read by ``fn``
    that are not arguments must be updated in place (as the learning rate is), and
    arguments are copied in (cloned in the CPU form): a change ``fn`` makes to an
    argument does not reach the caller, so return it (as the KL early-stop mask is,
    :func:`~mappo_td.train.step.masked_update_step`).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # "CUDA not available": the CPU form passes calls through
        ...     f = capture(lambda x: x + 1)
        >>> f(torch.zeros(2))
        tensor([1., 1.])
    """
    from tensordict.nn import CudaGraphModule

    return CudaGraphModule(fn, warmup=warmup, out_keys=list(out_keys) if out_keys is not None else None)


def accelerate(fn: Callable, mode: str, *, out_keys: Sequence[Any] | None = None) -> Callable:
    """``fn`` as is (``"off"``), compiled with ``torch.compile`` (``"compile"``), or compiled then captured (``"cudagraphs"``).

    Example:
        >>> accelerate(torch.tanh, "off") is torch.tanh
        True
        >>> accelerate(torch.tanh, "fast")
        Traceback (most recent call last):
        ...
        ValueError: fast must be one of off, compile, cudagraphs; got 'fast'
    """
    if mode not in FAST_MODES:
        raise ValueError(f"fast must be one of {', '.join(FAST_MODES)}; got {mode!r}")
    if mode == "off":
        return fn
    compiled = torch.compile(fn)
    return compiled if mode == "compile" else capture(compiled, out_keys=out_keys)
