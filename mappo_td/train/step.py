"""The unit of work of one agent group: advantages for a collected batch, and one gradient step.

Both are plain functions of a :class:`~mappo_td.train.build.Group` and a TensorDict, so
the trainer, tests, benchmarks and other entry points call the same code, and
:func:`mappo_td.fast.accelerate` wraps :func:`update_step` (compile, CUDA graphs) in
one place. Neither reads a value back to the host.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from tensordict import TensorDictBase
from torchrl.modules import set_recurrent_mode

from mappo_td.functional import LOSS_TERMS, kl_early_stop
from mappo_td.train.build import Group
from mappo_td.train.distributed import all_reduce_mean, average_gradients
from mappo_td.train.optim import KLAdaptiveLR

N_LOSSES = 3  # the first three terms make the gradient; the rest are diagnostics (explained variance of a 1-frame minibatch is NaN)


def _updating(standardizer):
    return standardizer.updating() if standardizer is not None else nullcontext()


@torch.no_grad()
def compute_advantages(group: Group, data: TensorDictBase) -> TensorDictBase:
    """Values of s and s' (real scale), GAE, then value preprocessing of values and returns (skrl's order; with
    ``ValueNorm``, the reference's: statistics from the returns only).

    ``data`` is a ``[num_envs, T]`` rollout; writes the group's ``state_value`` (at
    ``data`` and ``data["next"]``), ``advantage`` and ``value_target``. Input
    preprocessors merge this batch's statistics, each once.

    Example:
        >>> from mappo_td import MAPPOTrainer, TrainConfig
        >>> t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {"num_envs": 2}, "progress": False}))
        >>> data = t.collect()
        >>> compute_advantages(t.groups[0], data)["agents", "advantage"].shape
        torch.Size([2, 4, 3, 1])
    """
    pre, keys = group.preprocessors, group.loss.tensor_keys
    # Each standardizer merges this batch once, in its own pass (with a shared model the critic's trunk
    # holds the state preprocessor too: the critic pass must not count the observations again).
    with set_recurrent_mode(True):  # recurrent bodies run along each env's rollout (MLPs do not care)
        if "state_preprocessor" in pre:
            with _updating(pre["state_preprocessor"]):
                group.policy.get_dist(data.select(*group.policy.in_keys, strict=False))
        with _updating(pre.get("shared_state_preprocessor")):
            group.critic(data)
    nxt = data.get("next")
    group.critic(nxt)  # step mode: V(s'_t) from the state after step t (("next", group, state)), one step each
    vp = pre.get("value_preprocessor")
    if vp is not None:
        for td in (data, nxt):
            td.set(keys.value, vp.denormalize(td.get(keys.value)))
    group.gae(data)
    if vp is not None:  # each normalizer merges its statistics its own way (skrl's: values, then returns)
        values, targets = vp.normalize_for_loss(data.get(keys.value), data.get(keys.value_target))
        data.set(keys.value, values)
        data.set(keys.value_target, targets)
    return data


def update_step(group: Group, batch: TensorDictBase, keep_updating: torch.Tensor | None = None) -> torch.Tensor:
    """One gradient step of ``group`` on ``batch``; returns the detached loss terms, stacked as :data:`LOSS_TERMS`.

    ``keep_updating`` (the KL early stop: ``[]`` or ``[n_agents]`` bools, updated in
    place) turns the step into a no-op, without a host sync, once the minibatch's
    KL exceeds the group's ``kl_threshold``; it stays off for the rest of the epoch.
    With ``group.data_parallel`` (torchrun) the KL and the gradients are averaged over
    every process first (:mod:`~mappo_td.train.distributed`).
    Wrapped by the fast path, use :func:`masked_update_step` (it returns the mask).

    Example:
        >>> from mappo_td import MAPPOTrainer, TrainConfig
        >>> t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {"num_envs": 2}, "progress": False}))
        >>> g = t.groups[0]
        >>> data = compute_advantages(g, t.collect())
        >>> terms = update_step(g, data.reshape(-1))
        >>> dict(zip(LOSS_TERMS, terms.tolist()))["kl_approx"] < 1e-6  # the policy has not moved yet
        True
    """
    out = group.loss(batch)
    total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
    kl = out["kl_approx"].detach()
    if group.data_parallel and (keep_updating is not None or isinstance(group.scheduler, KLAdaptiveLR)):
        kl = all_reduce_mean(kl)  # the global minibatch's KL: every rank decides alike
    if keep_updating is not None:
        keep_updating &= kl_early_stop(kl, group.kl_threshold, keep_updating)  # stop the rest of this epoch (skrl); a threshold of 0 is off
        total = total * keep_updating
    total = total if group.share_params else total.sum()
    group.optimizer.zero_grad()
    total.backward()
    if group.data_parallel:
        average_gradients(group.optimizer.params)  # before the clip: the global minibatch's gradient
    group.optimizer.step(keep_updating)
    if isinstance(group.scheduler, KLAdaptiveLR):
        group.scheduler.step(kl, keep_updating)
    elif group.scheduler is not None:
        group.scheduler.step()
    return torch.stack([out[t].detach().mean() for t in LOSS_TERMS])


def masked_update_step(group: Group, batch: TensorDictBase, keep_updating: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`update_step` with the KL early-stop mask also returned: ``(terms, keep_updating)``.

    What the fast path wraps: CUDA graphs copy arguments into their own buffers (and the
    CPU form clones them), so an in-place change to an argument would not reach the
    caller; the caller copies the returned mask back (a device copy, no sync).

    Example:
        >>> from mappo_td import MAPPOTrainer, TrainConfig
        >>> t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "env": {"num_envs": 2}, "kl_threshold": 1e-9}))
        >>> g = t.groups[0]
        >>> batch = compute_advantages(g, t.collect()).reshape(-1)
        >>> mask = torch.ones((), dtype=torch.bool)
        >>> _ = masked_update_step(g, batch, mask); bool(masked_update_step(g, batch, mask)[1])  # the policy moved: KL > 1e-9
        False
    """
    terms = update_step(group, batch, keep_updating)
    return terms, keep_updating
