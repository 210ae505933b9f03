"""The configuration: one typed dataclass tree, its checks, its dict forms, presets and skrl's key names.

========================  ================================================================================
module                    holds
========================  ================================================================================
``schema``                field metadata (help, checks, flag names), strict coercion, ranges
``constants``             the choice lists, ranges (``BOUNDS``) and model defaults, each defined once
``sections``              the sections: ``MAPPOConfig`` (+ ``ExperimentConfig``), ``EnvConfig``, ``ModelConfig``
``validation``            the checks of the sections (ranges, combinations), the checkpoint schedule's
``train_config``          ``TrainConfig`` (the root), ``typed_dict``, ``merge_config``
``skrl_compat``           skrl 1.x/2.x keys mapped; ``env_section``: the env section's earlier names, PettingZoo's defaults
``presets``               named configs (``--preset mappo-paper``)
========================  ================================================================================

Imports flow down this table (``train_config`` above ``validation`` above ``sections``), never back.

Example:
    >>> from mappo_td.config import TrainConfig, merge_config
    >>> TrainConfig.from_dict(merge_config({"rollouts": 8}, {"env": {"num_envs": 4}})).frames_per_iteration
    32
"""

import warnings
from typing import Any

from mappo_td.config.constants import (
    ACTIVATIONS,
    BACKENDS,
    BODIES,
    BOUNDS,
    DEFAULT_ACTIVATION,
    DEFAULT_HIDDEN_SIZES,
    DISTRIBUTIONS,
    FAST_MODES,
    INITS,
    VALUE_CLIP_FORMS,
    VALUE_LOSSES,
)
from mappo_td.config.env_section import PETTINGZOO_NUM_ENVS, pettingzoo_env_defaults
from mappo_td.config.presets import PRESETS, preset
from mappo_td.config.schema import Bounds, check_fields, check_in_bounds, coerce, config_field, did_you_mean, field_key
from mappo_td.config.sections import EnvConfig, ExperimentConfig, MAPPOConfig, ModelConfig, PerAgentValue, per_agent_fields
from mappo_td.config.skrl_compat import auto_intervals, from_skrl, resolve_auto_intervals
from mappo_td.config.train_config import SECTION_KEYS, TrainConfig, default_experiment_name, merge_config, typed_dict
from mappo_td.config.validation import check_checkpoint_interval, checkpoint_times, validate

_RENAMED = {"SECTIONS": "SECTION_KEYS"}  # earlier name -> current name (deprecated, still read)


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        warnings.warn(f"mappo_td.config.{name} is deprecated; use mappo_td.config.{_RENAMED[name]}.", DeprecationWarning, stacklevel=2)
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module 'mappo_td.config' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS", "BACKENDS", "BODIES", "BOUNDS", "DEFAULT_ACTIVATION", "DEFAULT_HIDDEN_SIZES", "DISTRIBUTIONS", "FAST_MODES", "INITS",
    "PETTINGZOO_NUM_ENVS", "PRESETS", "SECTION_KEYS", "VALUE_CLIP_FORMS", "VALUE_LOSSES", "Bounds", "EnvConfig", "ExperimentConfig",
    "MAPPOConfig", "ModelConfig", "PerAgentValue", "TrainConfig", "auto_intervals", "check_checkpoint_interval", "check_fields", "check_in_bounds",
    "checkpoint_times", "coerce", "config_field", "default_experiment_name", "did_you_mean", "field_key", "from_skrl",
    "merge_config", "per_agent_fields", "pettingzoo_env_defaults", "preset", "resolve_auto_intervals", "typed_dict", "validate",
]
