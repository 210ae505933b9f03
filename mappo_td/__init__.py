"""mappo_td: Multi-Agent PPO as composable TorchRL/TensorDict modules, and a fast trainer.

Layout (data flows one way, top to bottom): ``cli`` → ``cli_parser``, ``trainer``, ``agent/`` (skrl's agent
API) → ``train/`` (the training units) → ``objectives/`` and ``models/`` (TensorDict modules) → ``fast``, ``keys``,
``multiagent``, ``envs`` and the PettingZoo batching → ``functional/`` (the MAPPO math on plain tensors),
``config/`` (the configuration), ``atomic``, ``plot`` → ``defaults`` (choices, ranges, model defaults). The core
(``functional``, ``objectives``, ``models``) imports nothing of the configuration or the trainer.
"""

import importlib
from typing import Any

__version__ = "0.1.0"  # the one place the version is written (pyproject.toml reads it; CHANGELOG.md's newest release)

from mappo_td._moved import install as _install_moved_modules

_install_moved_modules()  # mappo_td.schema, .presets ... (now in mappo_td.config) still import, with a warning

# Lazy: `import mappo_td` and `mappo-td --help` do not import torch; each name loads its module on first use.
_WHERE = {
    "TrainConfig": "mappo_td.config", "make_env": "mappo_td.envs", "TensorPlan": "mappo_td.fast", "accelerate": "mappo_td.fast",
    "MAPPOKeys": "mappo_td.keys", "CentralizedCritic": "mappo_td.models", "MultiCategorical": "mappo_td.models", "MaskedCategorical": "mappo_td.models",
    "make_critic": "mappo_td.models", "GRUBody": "mappo_td.models", "make_tensordict_primer": "mappo_td.models",
    "with_recurrent_state": "mappo_td.models", "make_policy": "mappo_td.models", "make_shared_actor_critic": "mappo_td.models",
    "broadcast_to_agents": "mappo_td.functional", "masked_mean": "mappo_td.functional", "per_agent_tensor": "mappo_td.multiagent",
    "standardize_per_agent": "mappo_td.functional", "mappo_gae": "mappo_td.functional", "mappo_loss": "mappo_td.functional",
    "MAPPOGAE": "mappo_td.objectives", "MAPPOLoss": "mappo_td.objectives", "RunningStandardScaler": "mappo_td.objectives",
    "RunningStandardizer": "mappo_td.objectives", "ValueNorm": "mappo_td.objectives", "PopArt": "mappo_td.objectives", "KLAdaptiveLR": "mappo_td.train", "compute_advantages": "mappo_td.train",
    "update_step": "mappo_td.train", "MAPPOTrainer": "mappo_td.trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mappo_td' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "MAPPOGAE",
    "CentralizedCritic",
    "GRUBody",
    "KLAdaptiveLR",
    "MAPPOKeys",
    "MAPPOLoss",
    "MAPPOTrainer",
    "MaskedCategorical",
    "MultiCategorical",
    "RunningStandardScaler",
    "ValueNorm",
    "PopArt",
    "TensorPlan",
    "TrainConfig",
    "accelerate",
    "broadcast_to_agents",
    "compute_advantages",
    "make_critic",
    "make_env",
    "make_policy",
    "make_shared_actor_critic",
    "make_tensordict_primer",
    "mappo_gae",
    "mappo_loss",
    "masked_mean",
    "per_agent_tensor",
    "standardize_per_agent",
    "update_step",
    "with_recurrent_state",
]
