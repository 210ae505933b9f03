"""Environment construction: batched VMAS on the training device, or PettingZoo (parallel API).

Both come out in TorchRL's multi-agent layout with time limits reported as
``truncated`` (never folded into ``terminated``) and a per-group episode return
``(group, "episode_reward")`` kept by TorchRL's ``RewardSum``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import re
import warnings
from collections.abc import Mapping

import torch
from torchrl.envs import EnvBase, RewardSum, StepCounter, TransformedEnv

from mappo_td.config import EnvConfig
from mappo_td.pettingzoo_tasks import pettingzoo_batch, pettingzoo_time_limit, scenario_kwargs
from mappo_td.transforms import with_transforms


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu or auto.")
    return dev


def _check_vmas_scenario(name: str) -> None:
    import vmas

    known = sorted({*vmas.scenarios, *vmas.mpe_scenarios, *vmas.debug_scenarios})
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        raise ValueError(f"unknown VMAS scenario {name!r}{f'; did you mean {close}' if close else ''}; VMAS has {known}.")


def vmas_scenario_kwargs(name: str) -> list[str]:
    """The kwargs a VMAS scenario reads (from its ``make_world``), or a ``ValueError`` for an unknown scenario.

    Example:
        >>> vmas_scenario_kwargs("navigation")[:3]
        ['n_agents', 'collisions', 'world_spawning_x']
    """
    _check_vmas_scenario(name)
    loader = importlib.import_module("vmas.scenarios")  # the package (``vmas.scenarios`` the attribute is a list of names)
    source = inspect.getsource(loader.load(f"{name}.py").Scenario.make_world)
    return list(dict.fromkeys(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", source)))


def _make_vmas(cfg: EnvConfig, n: int, device: torch.device | str, seed: int) -> EnvBase:
    from torchrl.envs.libs.vmas import VmasEnv

    _check_vmas_scenario(cfg.scenario)
    kwargs = scenario_kwargs(cfg)
    try:  # max_steps=None: VMAS would report its time limit as `terminated`; StepCounter reports it as `truncated`.
        with warnings.catch_warnings():  # VMAS only warns about kwargs a scenario does not read: make it an error
            warnings.filterwarnings("error", message=".*passed but not used by the scenario.*")
            return VmasEnv(cfg.scenario, num_envs=n, continuous_actions=cfg.continuous_actions, categorical_actions=True,
                           max_steps=None, device=device, seed=seed, **kwargs)
    except Exception as err:  # only now read which kwargs the scenario takes (parsing its source costs start-up time)
        valid = vmas_scenario_kwargs(cfg.scenario)
        if "passed but not used" in str(err):
            unknown = [k for k in kwargs if k not in valid] or list(kwargs)
            raise ValueError(f"env.scenario_kwargs {unknown} are not read by VMAS scenario {cfg.scenario!r}; it reads {valid}.") from None
        raise ValueError(f"VMAS scenario {cfg.scenario!r} could not be built with scenario_kwargs {kwargs} "
                         f"({type(err).__name__}: {err}); it reads {valid}.") from err


def group_map(env: EnvBase) -> dict[str, list[str]]:
    """The ``{group: [agent names]}`` map of a (possibly batched or transformed) multi-agent env.

    Example:
        >>> group_map(make_env(EnvConfig(num_envs=2, max_steps=5)))
        {'agents': ['agent_0', 'agent_1', 'agent_2']}
    """
    gm = getattr(env, "group_map", None)
    if gm is None and hasattr(env, "base_env"):
        gm = getattr(env.base_env, "group_map", None)
    if callable(gm) and not isinstance(gm, Mapping):  # ParallelEnv: a proxy that fetches each worker's attribute
        gm = list(gm)
    if isinstance(gm, (list, tuple)):  # SerialEnv / ParallelEnv: one map per worker
        gm = gm[0]
    if not gm:
        raise ValueError("the environment has no group_map: mappo_td needs a TorchRL multi-agent env (VmasEnv, PettingZooEnv ...).")
    return {str(g): list(a) for g, a in dict(gm).items()}


def make_env(cfg: EnvConfig, device: torch.device | str = "cpu", seed: int = 0, num_envs: int | None = None,
             render: bool = False) -> EnvBase:
    """Build the environment described by ``cfg`` (``num_envs`` overrides ``cfg.num_envs``; ``render``: PettingZoo tasks
    are made with ``render_mode="rgb_array"``, for ``render_frame``; VMAS renders on demand).

    Example:
        >>> env = make_env(EnvConfig(num_envs=4, max_steps=10))
        >>> group_map(env), env.batch_size
        ({'agents': ['agent_0', 'agent_1', 'agent_2']}, torch.Size([4]))
    """
    n = cfg.num_envs if num_envs is None else num_envs
    if cfg.backend == "vmas":
        env = TransformedEnv(_make_vmas(cfg, n, device, seed), StepCounter(max_steps=cfg.max_steps))
    elif cfg.backend == "pettingzoo":
        limit = None if pettingzoo_time_limit(cfg.scenario) else cfg.max_steps
        env = TransformedEnv(pettingzoo_batch(cfg, n, device, render), StepCounter(max_steps=limit))
        env.set_seed(seed)
    else:
        raise ValueError(f"unknown backend {cfg.backend!r}; use 'vmas' or 'pettingzoo'.")
    for t in episode_stats_transforms(env):
        env.append_transform(t)
    return env


def episode_stats_transforms(env: EnvBase) -> list:
    """TorchRL's ``StepCounter`` and ``RewardSum`` (per group) where ``env`` lacks ``"step_count"`` / ``(group, "episode_reward")``.

    Example:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> [type(t).__name__ for t in episode_stats_transforms(VmasEnv("navigation", num_envs=2, n_agents=2))]
        ['StepCounter', 'RewardSum']
        >>> episode_stats_transforms(make_env(EnvConfig(num_envs=2)))
        []
    """
    keys = env.observation_spec.keys(include_nested=True)
    groups = [g for g in group_map(env) if (g, "episode_reward") not in keys]
    transforms = [] if "step_count" in keys else [StepCounter()]
    if groups:
        transforms.append(RewardSum(in_keys=[(g, "reward") for g in groups], out_keys=[(g, "episode_reward") for g in groups]))
    return transforms


def with_episode_stats(env: EnvBase) -> EnvBase:
    """``env`` with what the training statistics read: ``"step_count"`` (TorchRL's ``StepCounter``) and each group's
    ``(group, "episode_reward")`` (``RewardSum``), added where missing; a new ``TransformedEnv``, ``env`` is not changed.

    Example:
        >>> from torchrl.envs.libs.vmas import VmasEnv
        >>> env = with_episode_stats(VmasEnv("navigation", num_envs=2, n_agents=2))
        >>> ("agents", "episode_reward") in env.observation_spec.keys(True), "step_count" in env.observation_spec.keys()
        (True, True)
    """
    return with_transforms(env, episode_stats_transforms(env))


def simulator_rng_state() -> dict:
    """VMAS's own random state (it swaps a private torch/numpy/python state in around every call).

    Returned as tensors and numbers only, so it fits in a ``weights_only`` checkpoint.

    Example:
        >>> state = simulator_rng_state()
        >>> set_simulator_rng_state(state); torch.equal(simulator_rng_state()["torch"], state["torch"])
        True
    """
    try:
        from vmas.simulator.environment.environment import Environment
    except ImportError:
        return {}
    torch_state, np_state, py_state = Environment.vmas_random_state
    return {
        "torch": torch_state.clone(),
        "np_keys": torch.as_tensor(np_state[1].astype("int64")), "np_pos": int(np_state[2]),
        "np_has_gauss": int(np_state[3]), "np_cached_gaussian": float(np_state[4]),
        "py_version": int(py_state[0]), "py_state": torch.tensor(py_state[1], dtype=torch.int64),
        "py_gauss": py_state[2],
    }


def set_simulator_rng_state(state: dict) -> None:
    """Restore what :func:`simulator_rng_state` returned (see its example)."""
    if not state:
        return
    import numpy as np
    from vmas.simulator.environment.environment import Environment

    Environment.vmas_random_state[0] = state["torch"].clone()
    Environment.vmas_random_state[1] = ("MT19937", state["np_keys"].numpy().astype(np.uint32), state["np_pos"],
                                        state["np_has_gauss"], state["np_cached_gaussian"])
    Environment.vmas_random_state[2] = (state["py_version"], tuple(state["py_state"].tolist()), state["py_gauss"])


def reseed(env: EnvBase, backend: str, seed: int) -> None:
    """Reseed a PettingZoo env (its tasks keep their own numpy generators, which no checkpoint holds): with a reset
    right after, a resumed run continues exactly. VMAS needs nothing: its generator state is checkpointed."""
    if backend == "pettingzoo":
        env.set_seed(seed)
