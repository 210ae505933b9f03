"""Optimization for one agent group: Adam, gradient-norm clipping, KL early-stop masking
and learning-rate schedules, with the learning rate held as a device tensor.

Agents that share parameters share one step. Agents with their own (stacked,
``[n_agents, ...]``) parameters step as if each had its own optimizer (as in skrl's
per-agent loop): per-agent gradient-norm clip, per-agent learning rate and KL early stop.

The step is ``torch.optim.Adam`` run with ``lr=1`` whose parameter change is then
scaled by the learning-rate tensor (exact for Adam: its step is linear in ``lr``) and
masked per agent; a masked agent's parameters and Adam moments are left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def clip_grad_norm_per_agent(params: Sequence[nn.Parameter], max_norm: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Clip the gradient norm of each agent's slice (leading dim) of stacked parameters; returns the norms.

    ``max_norm`` is ``[n_agents]``; an entry ``<= 0`` leaves that agent unclipped.

    Example:
        >>> p = nn.Parameter(torch.zeros(2, 3)); p.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])
        >>> clip_grad_norm_per_agent([p], torch.tensor([1.0, 1.0]))
        tensor([5.0000, 0.5000])
        >>> p.grad
        tensor([[0.6000, 0.8000, 0.0000],
                [0.3000, 0.4000, 0.0000]])
    """
    grads = [p.grad for p in params if p.grad is not None]
    n = max_norm.shape[0]
    norms = torch.stack([g.reshape(n, -1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
    coef = torch.where(max_norm > 0, (max_norm / (norms + eps)).clamp(max=1.0), torch.ones_like(norms))
    for g in grads:
        g.mul_(coef.view(n, *([1] * (g.ndim - 1))))
    return norms


def clip_grad_norm(params: Sequence[nn.Parameter], max_norm: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` with ``max_norm`` a tensor, read on the device: torch's reads it with
    ``float()`` (a device-to-host read every step on CUDA). Returns the total norm.

    Example:
        >>> p = nn.Parameter(torch.zeros(3)); p.grad = torch.tensor([3.0, 4.0, 0.0])
        >>> clip_grad_norm([p], torch.tensor(1.0)), p.grad
        (tensor(5.), tensor([0.6000, 0.8000, 0.0000]))
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    coef = (max_norm / (norm + eps)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef)
    return norm


class KLAdaptiveLR:
    """skrl's KL-adaptive learning rate, on a device tensor (one rate, or one per agent).

    ``step(kl)``: where ``kl > kl_threshold · kl_factor`` the rate is divided by
    ``lr_factor`` (not below ``min_lr``); where ``kl < kl_threshold / kl_factor`` it is
    multiplied (not above ``max_lr``). No host synchronization.

    Example:
        >>> lr = torch.tensor([1e-3, 1e-3])
        >>> sched = KLAdaptiveLR(lr, kl_threshold=0.01)
        >>> sched.step(torch.tensor([0.05, 0.001]))
        >>> lr
        tensor([0.0007, 0.0015])
    """

    def __init__(self, lr: torch.Tensor, kl_threshold: float = 0.008, min_lr: float = 1e-6, max_lr: float = 1e-2,
                 kl_factor: float = 2.0, lr_factor: float = 1.5) -> None:
        if kl_threshold <= 0 or kl_factor <= 1 or lr_factor <= 1 or not 0 < min_lr <= max_lr:
            raise ValueError("KLAdaptiveLR needs kl_threshold > 0, kl_factor > 1, lr_factor > 1 and 0 < min_lr <= max_lr.")
        self.lr = lr
        self.kl_threshold, self.min_lr, self.max_lr = kl_threshold, min_lr, max_lr
        self.kl_factor, self.lr_factor = kl_factor, lr_factor

    @torch.no_grad()
    def step(self, kl: torch.Tensor, keep_updating: torch.Tensor | None = None) -> None:
        """Move the rate(s) from this update's approximate KL (only where ``keep_updating``: the KL early stop)."""
        lr = self.lr
        down = (lr / self.lr_factor).clamp(min=self.min_lr)
        up = (lr * self.lr_factor).clamp(max=self.max_lr)
        new = torch.where(kl > self.kl_threshold * self.kl_factor, down, torch.where(kl < self.kl_threshold / self.kl_factor, up, lr))
        if keep_updating is not None:
            new = torch.where(keep_updating, new, lr)
        lr.copy_(new)

    def state_dict(self) -> dict:
        """The (tensor) learning rate; the hyperparameters come from the config."""
        return {"lr": self.lr.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the learning rate."""
        self.lr.copy_(state["lr"])


class GroupOptimizer:
    """Adam for one agent group with a tensor learning rate, gradient-norm clip and per-agent masking.

    Args:
        params: the group's parameters (policy and critic).
        lr: learning rate, ``[]`` (shared parameters) or ``[n_agents]`` (stacked per-agent parameters).
        grad_norm_clip: same shape as ``lr``; ``0`` disables clipping.
        share_params: ``False``: parameters are stacked ``[n_agents, ...]``: clip, scale and mask per agent.
        capturable: keep Adam's step counters on the device (needed for CUDA-graph capture).

    Example:
        >>> p = nn.Parameter(torch.ones(3))
        >>> opt = GroupOptimizer([p], lr=torch.tensor(0.1), grad_norm_clip=torch.tensor(0.0))
        >>> p.grad = torch.tensor([1.0, -1.0, 0.0]); opt.step()
        >>> p.detach()
        tensor([0.9000, 1.1000, 1.0000])
    """

    def __init__(self, params: Sequence[nn.Parameter], lr: torch.Tensor, grad_norm_clip: torch.Tensor, *,
                 share_params: bool = True, capturable: bool = False, eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.grad_norm_clip, self.share_params = lr, grad_norm_clip, share_params
        # Shared parameters: Adam reads the device learning-rate tensor itself. Per agent: Adam runs at lr=1 and
        # each agent's change is scaled by its rate (Adam's step is linear in lr).
        self.native = share_params and lr.ndim == 0
        try:  # fused Adam: one kernel per tensor on CPU and CUDA, takes a tensor lr
            self.adam = torch.optim.Adam(self.params, lr=lr if self.native else 1.0, eps=eps, fused=True, capturable=capturable)
        except (RuntimeError, ValueError):
            self.adam = torch.optim.Adam(self.params, lr=lr if self.native else 1.0, eps=eps, foreach=False)
        if not share_params:
            n = lr.shape[0]
            bad = [tuple(p.shape) for p in self.params if p.ndim == 0 or p.shape[0] != n]
            if bad:
                raise ValueError(f"per-agent optimization needs every parameter stacked as [n_agents={n}, ...]; got shapes {bad}.")
        self._clip_on = bool((grad_norm_clip > 0).any())

    def zero_grad(self) -> None:
        """Clear gradients."""
        self.adam.zero_grad(set_to_none=True)

    def _view(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return x if self.share_params else x.view(-1, *([1] * (p.ndim - 1)))

    @torch.no_grad()
    def step(self, keep_updating: torch.Tensor | None = None) -> None:
        """Clip, then one Adam step scaled by ``lr``; agents (or the group) where ``keep_updating`` is False keep everything."""
        if self._clip_on:
            if not self.share_params:
                clip_grad_norm_per_agent(self.params, self.grad_norm_clip)
            else:
                clip_grad_norm(self.params, self.grad_norm_clip)
        if self.native and keep_updating is None:
            self.adam.step()
            return
        before = [p.detach().clone() for p in self.params]
        if keep_updating is not None:
            moments = {id(p): [s.clone() for s in self._moments(p)] for p in self.params if p in self.adam.state}
        self.adam.step()
        if self.native:  # lr already applied by Adam; only the mask remains
            for p, b in zip(self.params, before):
                p.copy_(torch.where(keep_updating, p, b))
        else:
            scale = self.lr if keep_updating is None else self.lr * keep_updating
            for p, b in zip(self.params, before):
                p.copy_(torch.lerp(b, p, self._view(scale, p)))  # b + scale * (adam_step_with_lr_1)
        if keep_updating is not None:
            for p in self.params:
                keep = self._view(keep_updating, p)
                saved = moments.get(id(p))
                if saved is None:  # first step: the moments started at zero
                    saved = [torch.zeros_like(s) for s in self._moments(p)]
                for s, old in zip(self._moments(p), saved):
                    s.copy_(torch.where(keep, s, old))

    def _moments(self, p: nn.Parameter) -> list[torch.Tensor]:
        """Adam's running moments of ``p`` (its state but the step counter)."""
        return [s for k, s in self.adam.state[p].items() if k != "step"]

    def effective_lr(self) -> torch.Tensor:
        """The learning rate(s) in force, schedules included."""
        group_lr = self.adam.param_groups[0]["lr"]
        return torch.as_tensor(group_lr).clone() if self.native else self.lr * group_lr

    def state_dict(self) -> dict:
        """Adam's state and the learning rate."""
        return {"adam": self.adam.state_dict(), "lr": self.lr.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Restore Adam's state and the learning rate; Adam's own settings (``capturable`` for CUDA graphs, ``fused``, ...)
        stay this optimizer's, so a run resumed with another ``fast`` mode steps as that mode needs."""
        own = [{k: v for k, v in g.items() if k not in ("params", "lr", "initial_lr")} for g in self.adam.param_groups]
        adam = {**state["adam"], "param_groups": [{**saved, **mine} for saved, mine in zip(state["adam"]["param_groups"], own)]}
        self.adam.load_state_dict(adam)
        self.lr.copy_(state["lr"])
        if self.native:  # loading replaced the group's lr tensor: point it back at ours (the schedules move ours)
            self.lr.copy_(self.adam.param_groups[0]["lr"])
            for group in self.adam.param_groups:
                group["lr"] = self.lr


@torch.no_grad()
def rebase_learning_rate(optimizer: GroupOptimizer, scheduler: object, lr: torch.Tensor) -> None:
    """Make ``lr`` the learning rate of a restored optimizer (a resume that changes ``learning_rate``).

    Without a schedule and with :class:`KLAdaptiveLR` the rate in force becomes ``lr`` (KL adaptation goes on from
    there); a ``torch.optim.lr_scheduler`` keeps its position, on ``lr`` as its new base rate.

    Example:
        >>> p = nn.Parameter(torch.zeros(2))
        >>> opt = GroupOptimizer([p], lr=torch.tensor(0.1), grad_norm_clip=torch.tensor(0.0))
        >>> sched = torch.optim.lr_scheduler.StepLR(opt.adam, step_size=1, gamma=0.5)
        >>> p.grad = torch.zeros(2); opt.step(); sched.step()  # the rate is now 0.05
        >>> rebase_learning_rate(opt, sched, torch.tensor(1.0)); opt.effective_lr(), sched.base_lrs
        (tensor(0.5000), [tensor(1.)])
    """
    if scheduler is None or isinstance(scheduler, KLAdaptiveLR) or not optimizer.native:
        optimizer.lr.copy_(lr)  # per agent, torch's schedules scale Adam's rate 1: the effective rate is lr x that factor
        return
    base = torch.as_tensor(scheduler.base_lrs[0])  # shared parameters: torch's schedule moves the rate tensor itself
    optimizer.lr.mul_(lr / base)
    scheduler.base_lrs = [lr.clone() for _ in scheduler.base_lrs]
    for group in optimizer.adam.param_groups:
        group["initial_lr"] = lr.clone()


def base_learning_rate(optimizer: GroupOptimizer, scheduler: object) -> torch.Tensor:
    """The configured learning rate (a copy) of an optimizer and its schedule, before any schedule moved it.

    Example:
        >>> opt = GroupOptimizer([nn.Parameter(torch.zeros(2))], lr=torch.tensor(0.1), grad_norm_clip=torch.tensor(0.0))
        >>> sched = torch.optim.lr_scheduler.LinearLR(opt.adam, start_factor=0.5)  # moves the rate to 0.05 at once
        >>> base_learning_rate(opt, sched)
        tensor(0.1000)
    """
    if scheduler is None or isinstance(scheduler, KLAdaptiveLR) or not optimizer.native:
        return optimizer.lr.clone()
    return torch.as_tensor(scheduler.base_lrs[0]).clone()
