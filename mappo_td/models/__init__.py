"""Models: observation inputs, bodies (MLP, GRU), action distributions, the policy and critic builders."""

from mappo_td.models.critic import CentralizedCritic, centralized_inputs, critic_input_size, make_critic
from mappo_td.models.distributions import MaskedCategorical, MultiCategorical, legal_mask
from mappo_td.models.policy import action_mask_key, make_policy, make_shared_actor_critic, policy_io_sizes
from mappo_td.models.recurrent import GRUBody, make_tensordict_primer, with_recurrent_state

__all__ = ["CentralizedCritic", "GRUBody", "MaskedCategorical", "MultiCategorical", "action_mask_key", "centralized_inputs",
           "critic_input_size", "legal_mask", "make_critic", "make_policy", "make_shared_actor_critic", "make_tensordict_primer",
           "policy_io_sizes", "with_recurrent_state"]
