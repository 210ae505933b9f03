"""Objectives: GAE(λ), the MAPPO loss, value normalization (TensorDict adapters over :mod:`mappo_td.functional`)."""

from typing import Any

import mappo_td.objectives.value_norm as _value_norm
from mappo_td.objectives.gae import MAPPOGAE
from mappo_td.objectives.loss import MAPPOLoss
from mappo_td.objectives.value_norm import PopArt, RunningStandardScaler, ValueNorm

__all__ = ["MAPPOGAE", "MAPPOLoss", "PopArt", "RunningStandardScaler", "ValueNorm"]


def __getattr__(name: str) -> Any:
    if name == "RunningStandardizer":  # deprecated alias (warns)
        return getattr(_value_norm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
