"""mappo_td: Multi-Agent PPO as composable TorchRL/TensorDict modules, and a fast trainer.

Layout (data flows one way, top to bottom): ``cli`` / ``trainer`` → ``train/`` (the
training units) → ``objectives/`` and ``models/`` → ``fast``, ``keys``, ``multiagent``,
``envs``, ``config``.
"""

from mappo_td.config import TrainConfig
from mappo_td.envs import make_env
from mappo_td.fast import TensorPlan, accelerate
from mappo_td.keys import MAPPOKeys
from mappo_td.models import CentralizedCritic, MultiCategorical, make_critic, make_policy, make_shared_actor_critic
from mappo_td.multiagent import broadcast_to_agents, masked_mean, per_agent_tensor, standardize_per_agent
from mappo_td.objectives import MAPPOGAE, MAPPOLoss, RunningStandardizer
from mappo_td.train import KLAdaptiveLR, compute_advantages, update_step
from mappo_td.trainer import MAPPOTrainer

__all__ = [
    "MAPPOGAE",
    "CentralizedCritic",
    "KLAdaptiveLR",
    "MAPPOKeys",
    "MAPPOLoss",
    "MAPPOTrainer",
    "MultiCategorical",
    "RunningStandardizer",
    "TensorPlan",
    "TrainConfig",
    "accelerate",
    "broadcast_to_agents",
    "compute_advantages",
    "make_critic",
    "make_env",
    "make_policy",
    "make_shared_actor_critic",
    "masked_mean",
    "per_agent_tensor",
    "standardize_per_agent",
    "update_step",
]
