"""skrl's MAPPO agent API (skrl's ``MAPPO`` object, driven by your own loop)."""

from mappo_td.agent.mappo import MAPPO, MAPPO_DEFAULT_CONFIG
from mappo_td.agent.memory import Memory
from mappo_td.agent.models import model_sizes

__all__ = ["MAPPO", "MAPPO_DEFAULT_CONFIG", "Memory", "model_sizes"]
