"""The ``env`` section of a config dict before it is typed: the earlier key name ``workers`` and PettingZoo's defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mappo_td.config.schema import deprecated_key

PETTINGZOO_NUM_ENVS = 8  # env.num_envs when backend is pettingzoo and none is given (VMAS: the field's default)


def pettingzoo_env_defaults(env: Mapping[str, Any]) -> dict[str, Any]:
    """The env section with the earlier name ``workers`` (deprecated) read as ``num_workers``, and PettingZoo's default
    ``num_envs``: a handful (8), or ``num_workers`` when more worker processes than that are asked for.

    Example:
        >>> pettingzoo_env_defaults({"backend": "pettingzoo", "workers": 4})
        {'backend': 'pettingzoo', 'num_workers': 4, 'num_envs': 8}
    """
    env = dict(env)
    if "workers" in env:
        deprecated_key("env.workers", "env.num_workers")
        if "num_workers" in env:
            raise ValueError("env: give num_workers only ('workers' is its earlier name), not both.")
        env["num_workers"] = env.pop("workers")
    if env.get("backend") == "pettingzoo" and "num_envs" not in env:
        workers = env.get("num_workers", 0)
        many = isinstance(workers, int) and not isinstance(workers, bool) and workers > PETTINGZOO_NUM_ENVS
        env["num_envs"] = workers if many else PETTINGZOO_NUM_ENVS  # stepped on the CPU: a handful
    return env
