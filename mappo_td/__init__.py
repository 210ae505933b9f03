"""mappo_td: Multi-Agent PPO as composable TorchRL/TensorDict modules."""

from mappo_td._multiagent import broadcast_to_agents, per_agent_tensor
from mappo_td.config import TrainConfig
from mappo_td.critic import CentralizedCritic, make_critic
from mappo_td.distributions import MultiCategorical
from mappo_td.envs import make_env
from mappo_td.gae import MAPPOGAE, standardize_per_agent
from mappo_td.loss import MAPPOLoss
from mappo_td.optim import KLAdaptiveLR
from mappo_td.policy import make_policy, make_shared_actor_critic
from mappo_td.preprocessing import RunningStandardizer
from mappo_td.trainer import MAPPOTrainer

__all__ = [
    "MAPPOGAE",
    "CentralizedCritic",
    "KLAdaptiveLR",
    "MAPPOLoss",
    "MAPPOTrainer",
    "MultiCategorical",
    "RunningStandardizer",
    "TrainConfig",
    "broadcast_to_agents",
    "make_critic",
    "make_env",
    "make_policy",
    "make_shared_actor_critic",
    "per_agent_tensor",
    "standardize_per_agent",
]
