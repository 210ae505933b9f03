"""Objectives: GAE(λ), the MAPPO loss, value normalization."""

from mappo_td.objectives.gae import MAPPOGAE
from mappo_td.objectives.loss import MAPPOLoss
from mappo_td.objectives.value_norm import PopArt, RunningStandardizer, ValueNorm

__all__ = ["MAPPOGAE", "MAPPOLoss", "PopArt", "RunningStandardizer", "ValueNorm"]
