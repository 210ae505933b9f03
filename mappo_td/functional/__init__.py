"""The MAPPO math as functions of plain torch tensors: no TensorDict, no TorchRL, nothing of the trainer.

:class:`~mappo_td.MAPPOGAE`, :class:`~mappo_td.MAPPOLoss` and the value normalizers are TensorDict adapters over
these functions (one implementation); a CleanRL-style script or another library can call them directly.

* :mod:`~mappo_td.functional.advantages`: :func:`mappo_gae` (what ``MAPPOGAE`` computes), :func:`episode_flags`,
  :func:`generalized_advantage_estimate` (the recursion, TorchRL's signature).
* :mod:`~mappo_td.functional.reductions`: :func:`broadcast_to_agents`, :func:`masked_mean`, :func:`masked_std_mean`,
  :func:`standardize_per_agent`, :func:`batch_mean`, :func:`per_agent_coefficient`, :func:`check_mask`.
* :mod:`~mappo_td.functional.losses`: :func:`mappo_loss` (what ``MAPPOLoss`` computes), :func:`clipped_surrogate`,
  :func:`critic_loss`, :func:`value_error_loss`, :func:`approx_kl`, :func:`kl_early_stop`, :func:`explained_variance`.
* :mod:`~mappo_td.functional.value_norm`: :func:`standard_scaler_update`, :func:`value_norm_update`,
  :func:`value_norm_mean_var`, :func:`normalize`, :func:`denormalize`, :func:`popart_rescale`.

Example:
    >>> import torch
    >>> from mappo_td import functional as F
    >>> v = torch.zeros(16, 3, 1)  # [T, n_agents, 1]
    >>> adv, target = F.mappo_gae(v, v, torch.randn(16, 1), torch.zeros(16, 1, dtype=torch.bool))
    >>> adv.shape, bool(adv.std(0).sub(1).abs().max() < 1e-4)
    (torch.Size([16, 3, 1]), True)
"""

from mappo_td.functional.advantages import episode_flags, generalized_advantage_estimate, mappo_gae
from mappo_td.functional.losses import (
    LOSS_TERMS,
    approx_kl,
    check_loss_shapes,
    check_value_loss,
    clipped_surrogate,
    critic_loss,
    explained_variance,
    kl_early_stop,
    mappo_loss,
    value_error_loss,
)
from mappo_td.functional.reductions import (
    batch_mean,
    broadcast_to_agents,
    check_mask,
    masked_mean,
    masked_std_mean,
    non_agent_dims,
    per_agent_coefficient,
    standardize_per_agent,
)
from mappo_td.functional.value_norm import (
    batch_rows,
    denormalize,
    normalize,
    popart_rescale,
    standard_scaler_update,
    value_norm_mean_var,
    value_norm_update,
)

__all__ = [
    "approx_kl",
    "batch_mean",
    "batch_rows",
    "LOSS_TERMS",
    "broadcast_to_agents",
    "check_loss_shapes",
    "check_mask",
    "check_value_loss",
    "clipped_surrogate",
    "critic_loss",
    "denormalize",
    "episode_flags",
    "explained_variance",
    "generalized_advantage_estimate",
    "kl_early_stop",
    "mappo_gae",
    "mappo_loss",
    "masked_mean",
    "masked_std_mean",
    "non_agent_dims",
    "normalize",
    "per_agent_coefficient",
    "popart_rescale",
    "standard_scaler_update",
    "standardize_per_agent",
    "value_error_loss",
    "value_norm_mean_var",
    "value_norm_update",
]
