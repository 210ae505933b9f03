"""skrl's MAPPO config dicts of 1.x and 2.x, mapped onto skrl 1.x's documented keys (``MAPPO_DEFAULT_CONFIG``).

=============================================  ===================================================
skrl key                                       here
=============================================  ===================================================
``mixed_precision: false``                     accepted (nothing to do)
``mixed_precision: true``                      refused with a message (no autocast update here)
``write_interval: "auto"``                     ``timesteps // 100`` (skrl's ``int(timesteps / 100)``; 0: off)
``checkpoint_interval: "auto"``                ``timesteps // 10`` (skrl's ``int(timesteps / 10)``; 0: off)
2.x ``observation_preprocessor[_kwargs]``      ``state_preprocessor[_kwargs]`` (each agent's observation)
2.x ``state_preprocessor[_kwargs]``            ``shared_state_preprocessor[_kwargs]`` (the global state)
2.x ``gae_lambda``                             ``lambda``
=============================================  ===================================================

A dict is read as 2.x when it has an ``observation_preprocessor`` key (1.x has none); then its
``state_preprocessor`` means the global state, as in skrl 2.x.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RENAMES_2X = {"state_preprocessor": "shared_state_preprocessor", "state_preprocessor_kwargs": "shared_state_preprocessor_kwargs",
              "observation_preprocessor": "state_preprocessor", "observation_preprocessor_kwargs": "state_preprocessor_kwargs"}
AUTO_DIVISOR = {"write_interval": 100, "checkpoint_interval": 10}


def from_skrl(d: Mapping[str, Any]) -> dict[str, Any]:
    """``d`` (one level: the top of a config, or its ``mappo`` section) with skrl 1.x/2.x keys mapped (see the table above).

    Example:
        >>> from_skrl({"observation_preprocessor": "RunningStandardScaler", "state_preprocessor": None, "mixed_precision": False})
        {'shared_state_preprocessor': None, 'state_preprocessor': 'RunningStandardScaler'}
        >>> from_skrl({"mixed_precision": True})
        Traceback (most recent call last):
        ...
        ValueError: mixed_precision=true (skrl's autocast update) is not available in mappo_td, whose update runs in float32; set it to false (for speed on a GPU use --fast compile or cudagraphs).
    """
    d = dict(d)
    if "mixed_precision" in d:
        value = d.pop("mixed_precision")
        if value not in (False, None, "false", "False", 0):
            raise ValueError("mixed_precision=true (skrl's autocast update) is not available in mappo_td, whose update runs in "
                             "float32; set it to false (for speed on a GPU use --fast compile or cudagraphs).")
    if "gae_lambda" in d:
        if "lambda" in d:
            raise ValueError("the config gives both 'lambda' and skrl 2.x's 'gae_lambda'; keep one.")
        d["lambda"] = d.pop("gae_lambda")
    if "observation_preprocessor" in d or "observation_preprocessor_kwargs" in d:
        if "shared_state_preprocessor" in d or "shared_state_preprocessor_kwargs" in d:
            raise ValueError("the config mixes skrl 2.x's 'observation_preprocessor' with 1.x's 'shared_state_preprocessor'; "
                             "use one version's names (2.x: observation_ + state_preprocessor; 1.x: state_ + shared_state_preprocessor).")
        renamed = {RENAMES_2X[k]: d.pop(k) for k in list(RENAMES_2X) if k in d}
        d.update(renamed)
    return d


def auto_intervals(d: Mapping[str, Any]) -> list[str]:
    """The intervals a config dict (either layout: ``experiment`` at the top, or under ``mappo``) gives as ``"auto"``.

    Example:
        >>> auto_intervals({"rollouts": 16, "experiment": {"write_interval": "auto", "checkpoint_interval": 0}})
        ['write_interval']
    """
    x = d.get("experiment", (d.get("mappo") or {}).get("experiment")) or {}
    return [k for k in AUTO_DIVISOR if isinstance(x.get(k), str) and x[k].lower() == "auto"]


def resolve_auto_intervals(experiment: Mapping[str, Any], timesteps: int) -> dict[str, Any]:
    """``experiment`` with skrl's ``"auto"`` write/checkpoint intervals made numbers for a run of ``timesteps``, as skrl
    makes them (``int(timesteps / 100)``, ``/ 10``): 0, which turns them off, for a run too short.

    Example:
        >>> resolve_auto_intervals({"write_interval": "auto", "checkpoint_interval": "auto"}, 36000)
        {'write_interval': 360, 'checkpoint_interval': 3600}
        >>> resolve_auto_intervals({"write_interval": "auto", "checkpoint_interval": 5}, 99)
        {'write_interval': 0, 'checkpoint_interval': 5}
    """
    out = dict(experiment)
    for key, divisor in AUTO_DIVISOR.items():
        if isinstance(out.get(key), str) and out[key].lower() == "auto":
            out[key] = int(timesteps) // divisor
    return out
