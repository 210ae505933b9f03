"""PettingZoo tasks: found by name in mpe2 and PettingZoo's families, made with mappo_td's episode length and render
mode, and batched by the route each takes (:func:`pettingzoo_route`): mappo_td's
:class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv` for parallel-API tasks, TorchRL's wrapper for AEC tasks.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import warnings

import torch
from torchrl.envs import EnvBase, ParallelEnv, SerialEnv

from mappo_td.config import EnvConfig


def scenario_kwargs(cfg: EnvConfig) -> dict:
    """``cfg.scenario_kwargs``, or the backend's default when unset: ``{"n_agents": 3}`` for VMAS navigation, else ``{}``.

    Example:
        >>> scenario_kwargs(EnvConfig()), scenario_kwargs(EnvConfig(backend="pettingzoo", scenario="simple_spread_v3"))
        ({'n_agents': 3}, {})
    """
    if cfg.scenario_kwargs is not None:
        return dict(cfg.scenario_kwargs)
    return {"n_agents": 3} if (cfg.backend, cfg.scenario) == ("vmas", "navigation") else {}


PETTINGZOO_PACKAGES = ("mpe2", "pettingzoo.mpe", "pettingzoo.sisl", "pettingzoo.butterfly", "pettingzoo.classic")


def task_module(name: str):
    """The module of PettingZoo task ``name``, the first found in :data:`PETTINGZOO_PACKAGES`, or None.

    Example:
        >>> task_module("simple_spread_v3").__name__, task_module("no_such_task_v0")
        ('mpe2.simple_spread_v3', None)
    """
    for package in PETTINGZOO_PACKAGES:
        try:
            return importlib.import_module(f"{package}.{name}")
        except ImportError:
            continue
    return None


def _pettingzoo_task(name: str, max_steps: int, continuous_actions: bool, kwargs: dict, render: bool = False):
    """The task's parallel env (an AEC env where it has no parallel form: classic board games), with ``max_cycles``,
    ``continuous_actions`` and (``render``) ``render_mode="rgb_array"`` passed only where the task takes them."""
    module = task_module(name)
    if module is None:
        if importlib.util.find_spec("mpe2") is None and name.startswith("simple"):
            raise ValueError(f"PettingZoo task {name!r} is an MPE task, which lives in the mpe2 package, not installed here: "
                             "pip install -e \".[pettingzoo]\" (or pip install mpe2).")
        raise ValueError(f"unknown PettingZoo task {name!r}: not in {', '.join(PETTINGZOO_PACKAGES)} (MPE tasks such as "
                         "simple_spread_v3 need mpe2: pip install -e \".[pettingzoo]\"; classic and butterfly tasks need "
                         "pip install \"pettingzoo[classic,butterfly]\").")
    raw = getattr(module, "raw_env", None)
    params = inspect.signature(raw).parameters.values() if raw is not None else ()
    takes = {p.name for p in params} if raw is not None else {"max_cycles", "continuous_actions", "render_mode"}
    kw = {k: v for k, v in (("max_cycles", max_steps), ("continuous_actions", continuous_actions)) if k in takes}
    if render:  # a task taking **kwargs may take render_mode too
        if "render_mode" not in takes and not any(p.kind is p.VAR_KEYWORD for p in params):
            raise ValueError(f"PettingZoo task {name!r} cannot render frames (it takes no render_mode); turn rendering off.")
        kw["render_mode"] = "rgb_array"
    if [k for k in kwargs if k in kw]:
        raise ValueError(f"env.scenario_kwargs {[k for k in kwargs if k in kw]} are set by mappo_td: give max_cycles as env.max_steps.")
    make = getattr(module, "parallel_env", None) or module.env
    try:
        return make(**kw, **kwargs)
    except TypeError as err:
        raise ValueError(f"PettingZoo task {name!r} does not take scenario_kwargs {kwargs} ({err}).") from err


def pettingzoo_time_limit(name: str) -> bool:
    """Whether a PettingZoo task ends its episodes at ``max_steps`` itself (its ``max_cycles``); the others get
    TorchRL's ``StepCounter(max_steps)``.

    Example:
        >>> pettingzoo_time_limit("simple_spread_v3"), pettingzoo_time_limit("connect_four_v3")
        (True, False)
    """
    module = task_module(name)
    if module is None:
        return True
    raw = getattr(module, "raw_env", None)
    return raw is None or "max_cycles" in inspect.signature(raw).parameters


def pettingzoo_workers(cfg: EnvConfig, n: int) -> int:
    """Processes stepping ``n`` PettingZoo envs: ``cfg.num_workers`` (1: this process), or for 0 (auto) this process on a
    machine of 2 cores or fewer, else one per spare core (at most ``n``).

    Example:
        >>> pettingzoo_workers(EnvConfig(num_workers=1), 8), pettingzoo_workers(EnvConfig(num_workers=4), 8)
        (1, 4)
    """
    if cfg.num_workers == 0:
        cores = os.cpu_count() or 1
        return 1 if cores <= 2 else min(n, cores - 1)
    return cfg.num_workers


def pettingzoo_route(name: str) -> str:
    """How mappo_td steps a PettingZoo task: ``"batched"`` (parallel-API tasks: :class:`~mappo_td.batched_pettingzoo.BatchedPettingZooEnv`,
    in this process or a worker pool) or ``"torchrl"`` (AEC tasks such as the classic board games: TorchRL's
    ``PettingZooWrapper`` in a ``SerialEnv``, or a ``ParallelEnv`` of one env per worker process).

    Example:
        >>> pettingzoo_route("simple_spread_v3"), pettingzoo_route("connect_four_v3")
        ('batched', 'torchrl')
    """
    module = task_module(name)
    return "batched" if module is not None and hasattr(module, "parallel_env") else "torchrl"


def pettingzoo_batch(cfg: EnvConfig, n: int, device: torch.device | str, render: bool = False) -> EnvBase:
    """``n`` envs of the task in TorchRL's PettingZoo layout (masks on: ``(group, "mask")`` says who acts,
    ``(group, "action_mask")`` which actions are legal), by the route :func:`pettingzoo_route` names."""
    from torchrl.envs import PettingZooWrapper

    from mappo_td.batched_pettingzoo import BatchedPettingZooEnv, NotBatchable

    # TorchRL notes, once per env copy, that it tests PettingZoo 1.24.3; mappo_td pins and tests 1.27 (pyproject.toml)
    warnings.filterwarnings("ignore", message="PettingZoo in TorchRL is tested using version", category=UserWarning)
    make = functools.partial(_pettingzoo_task, cfg.scenario, cfg.max_steps, cfg.continuous_actions, scenario_kwargs(cfg), render)
    make().close()  # clear errors first (unknown task, bad kwargs)
    workers = 1 if render else min(pettingzoo_workers(cfg, n), n)  # a rendering env (evaluation) steps here
    if pettingzoo_route(cfg.scenario) == "batched":
        try:
            return BatchedPettingZooEnv(make, n, device, num_workers=workers)
        except NotBatchable:  # Dict observations: TorchRL's wrapper below
            pass
    if workers > 1 and workers != n:
        raise ValueError(f"env.num_workers={workers} with num_envs={n}: {cfg.scenario} is stepped by TorchRL's ParallelEnv, one env "
                         f"per worker process; set num_envs={workers}, or num_workers=1 to step all {n} envs in this process.")

    def one() -> EnvBase:
        return PettingZooWrapper(make(), categorical_actions=True, use_mask=True, device=device)

    return ParallelEnv(n, one) if workers > 1 else SerialEnv(n, one)
