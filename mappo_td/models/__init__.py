"""Models: observation inputs, bodies, action distributions, the policy and critic builders."""

from mappo_td.models.critic import CentralizedCritic, make_critic
from mappo_td.models.distributions import MultiCategorical
from mappo_td.models.policy import make_policy, make_shared_actor_critic

__all__ = ["CentralizedCritic", "MultiCategorical", "make_critic", "make_policy", "make_shared_actor_critic"]
