"""The clipped PPO loss of MAPPO (policy, value and entropy terms), as a TorchRL ``LossModule``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModuleBase
from torchrl.objectives import LossModule

from mappo_td.config import BOUNDS
from mappo_td.fast import TensorPlan
from mappo_td.keys import KeyContract, MAPPOKeys, NestedKey, group_keys
from mappo_td.multiagent import PerAgent, masked_mean, masked_std_mean, per_agent_tensor
from mappo_td.objectives.gae import MAPPOGAE
from mappo_td.validation import VALUE_CLIP_FORMS, VALUE_LOSSES


def _entropy(dist: torch.distributions.Distribution) -> torch.Tensor:
    try:
        return dist.entropy()
    except NotImplementedError:  # e.g. TanhNormal: one-sample estimate, as TorchRL's PPO losses do
        return -dist.log_prob(dist.rsample())


class MAPPOLoss(KeyContract, LossModule):
    """MAPPO's clipped surrogate, value and entropy losses for one agent group.

    ===========================================  ==========================  =====================
    key (``set_keys`` name)                        shape                       meaning
    ===========================================  ==========================  =====================
    actor / critic ``in_keys``                     ``[*B, n_agents, F]``         observations / state
    ``(group, "action")`` (action)                 ``[*B, n_agents, *A]``        taken actions
    ``(group, "action_log_prob")`` (sample_log_prob) ``[*B, n_agents]``          log p at collection
    ``(group, "advantage")`` (advantage)           ``[*B, n_agents, 1]``         standardized A
    ``(group, "value_target")`` (value_target)     ``[*B, n_agents, 1]``         returns R
    ``(group, "state_value")`` (value)             ``[*B, n_agents, 1]``         V at collection
    ``(group, "mask")`` (alive), optional          ``[*B, n_agents]`` bool       the agent acts now
    ===========================================  ==========================  =====================

    Alive masks (the reference's ``active_masks``): where the input has the ``alive`` key,
    the policy, entropy and diagnostic terms (``policy_active_masks``) and the value terms
    (``value_active_masks``) average over alive agent-steps only, as
    ``sum(x · alive) / sum(alive)``; a dead agent's entries reach no loss and no gradient.
    A masked policy (legal-action mask) needs nothing here: the mask is one of its inputs.

    Output (scalars; ``[n_agents]`` with ``share_params=False``): ``loss_objective``
    (−mean min(A·ρ, A·clip(ρ, 1±c))), ``loss_critic`` (value_loss_scale · mean ℓ(R −
    V_pred); ℓ: ``value_loss="mse"`` e² (skrl's) or ``"huber"`` with ``huber_delta`` (the MAPPO
    reference: δ = 10); with ``clip_predicted_values`` and ``V_clip = V + clip(V_pred − V,
    ±value_clip)``: ``value_clip_form="prediction"`` uses ℓ(R − V_clip) (skrl's), ``"max"``
    max(ℓ(R − V_pred), ℓ(R − V_clip)) (the reference's)), ``loss_entropy`` (−entropy_loss_scale · mean H),
    and detached ``kl_approx`` (mean((e^r − 1) − r), r = log p' − log p),
    ``clip_fraction``, ``entropy``, ``explained_variance``.

    Coefficients are numbers or per agent (dict by agent or group name with
    ``agents``, or a length-``n_agents`` sequence). ``share_params=False`` reduces
    every term per agent (agents trained with their own parameters and optimizer).
    With ``tensor_plan=True`` (default) networks built as plain ``TensorDictModule``
    chains run on a dict of tensors (:class:`mappo_td.fast.TensorPlan`: the same
    modules and distribution, no TensorDict bookkeeping per step); other networks
    keep the TensorDict path, with a warning. Keys: :mod:`mappo_td.keys`
    (``reward``/``done``/``terminated``/``truncated`` are forwarded to the estimator).

    Example:
        >>> from torchrl.data import Categorical, Composite, Unbounded
        >>> from mappo_td import make_critic, make_policy
        >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
        >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
        >>> loss = MAPPOLoss(make_policy(obs, act, hidden_sizes=(16,)), make_critic(obs, hidden_sizes=(16,)))
        >>> td = loss.actor_network(obs.rand())
        >>> td = loss.critic_network(td)
        >>> td["agents", "advantage"] = torch.randn(8, 3, 1)
        >>> td["agents", "value_target"] = torch.randn(8, 3, 1)
        >>> out = loss(td)
        >>> sorted(out.keys())[:4], float(out["kl_approx"]) < 1e-6
        (['clip_fraction', 'entropy', 'explained_variance', 'kl_approx'], True)
    """

    tensor_keys: MAPPOKeys

    def __init__(
        self,
        actor_network: ProbabilisticTensorDictSequential,
        critic_network: TensorDictModuleBase,
        *,
        group: str = "agents",
        agents: Sequence[str] | None = None,
        ratio_clip: PerAgent = 0.2,
        value_clip: PerAgent = 0.2,
        clip_predicted_values: bool = False,
        entropy_loss_scale: PerAgent = 0.0,
        value_loss_scale: PerAgent = 1.0,
        share_params: bool = True,
        tensor_plan: bool = True,
        value_loss: str = "mse",
        huber_delta: float = 10.0,
        value_clip_form: str = "prediction",
        policy_active_masks: bool = True,
        value_active_masks: bool = True,
    ) -> None:
        super().__init__()
        self.policy_active_masks, self.value_active_masks = bool(policy_active_masks), bool(value_active_masks)
        if value_loss not in VALUE_LOSSES or value_clip_form not in VALUE_CLIP_FORMS or not huber_delta > 0:
            raise ValueError(f"value_loss must be one of {VALUE_LOSSES} (got {value_loss!r}), value_clip_form one of "
                             f"{VALUE_CLIP_FORMS} (got {value_clip_form!r}), huber_delta > 0 (got {huber_delta!r}).")
        self.value_loss, self.huber_delta, self.value_clip_form = value_loss, float(huber_delta), value_clip_form
        self.actor_network = actor_network
        self.critic_network = critic_network
        self.group = group
        self.agents = list(agents) if agents is not None else None
        self.clip_predicted_values = bool(clip_predicted_values)
        self.share_params = bool(share_params)
        for name, value in (("ratio_clip", ratio_clip), ("value_clip", value_clip),
                            ("entropy_loss_scale", entropy_loss_scale), ("value_loss_scale", value_loss_scale)):
            self.register_buffer(name, per_agent_tensor(value, agents, name=name, group=group, bounds=BOUNDS[name]))
        self._entropy_grad = bool((self.entropy_loss_scale != 0).any())
        self._plans = None
        if tensor_plan:
            actor = TensorPlan.of(actor_network, what="the actor network")
            critic = TensorPlan.of(critic_network, what="the critic network")
            dist_module = actor_network.module[-1] if isinstance(actor_network, ProbabilisticTensorDictSequential) else None
            if actor is not None and critic is not None and dist_module is not None:
                made = {k for _, _, outs in actor.steps for k in outs}  # the distribution also reads inputs (an action mask)
                inputs = list(dict.fromkeys([*actor.in_keys, *(k for k in dist_module.in_keys if k not in made)]))
                self._plans = (actor, critic, dist_module, inputs)
        self.set_keys(**group_keys(group))

    @property
    def uses_tensor_plan(self) -> bool:
        """Whether the loss runs its networks through :class:`~mappo_td.fast.TensorPlan` (else the TensorDict path)."""
        return self._plans is not None

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        """Keys renamed on the loss reach the estimator it owns (as in TorchRL's losses)."""
        estimator = getattr(self, "_value_estimator", None)
        if isinstance(estimator, MAPPOGAE):
            estimator.set_keys(**{k: v for k, v in vars(self.tensor_keys).items() if k != "action"})
        elif estimator is not None:
            super()._forward_value_estimator_keys(**kwargs)

    def make_value_estimator(self, value_type=None, **hyperparams) -> MAPPOLoss:
        """Attach a :class:`MAPPOGAE` (default) or any TorchRL value estimator; hyperparams go to it.

        Example:
            >>> from torchrl.data import Categorical, Composite, Unbounded
            >>> from mappo_td import make_critic, make_policy
            >>> obs = Composite(agents=Composite(observation=Unbounded((8, 3, 6)), shape=(8, 3)), shape=(8,))
            >>> act = Composite(agents=Composite(action=Categorical(5, (8, 3)), shape=(8, 3)), shape=(8,))
            >>> loss = MAPPOLoss(make_policy(obs, act), make_critic(obs)).make_value_estimator(gamma=0.9)
            >>> round(float(loss.value_estimator.gamma), 6)
            0.9
        """
        if value_type is None or value_type is MAPPOGAE:
            hyperparams.setdefault("value_network", self.critic_network)
            hyperparams.setdefault("agents", self.agents)
            self._value_estimator = MAPPOGAE(self.group, **hyperparams)
            self.value_type = MAPPOGAE
            self._forward_value_estimator_keys()
            return self
        return super().make_value_estimator(value_type, **hyperparams)

    def _default_value_estimator(self) -> None:
        self.make_value_estimator()

    def _reduce(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(Masked) mean over everything, or with separate parameters over everything but the agent dim ``-2``."""
        if not self.share_params:
            return masked_mean(x, mask, dim=self._non_agent_dims(x)).squeeze(-1)
        return masked_mean(x, mask)

    @staticmethod
    def _non_agent_dims(x: torch.Tensor) -> list[int]:
        return [d for d in range(x.ndim) if d != x.ndim - 2]

    def _get(self, td: TensorDictBase, key: NestedKey, name: str) -> torch.Tensor:
        value = td.get(key, None)
        if value is None and name == "the policy's input":
            raise KeyError(f"MAPPOLoss: the policy reads {key!r} (an observation, or its legal-action mask), which is missing "
                           "from the input; keep it in the batch (e.g. select it with the other keys).")
        if value is None:
            raise KeyError(
                f"MAPPOLoss needs {name} at key {key!r}; it is missing from the input. Compute advantages first "
                f"(loss.value_estimator(data)) or rename the key with loss.set_keys({name}=...)."
            )
        return value

    def _value_error(self, error: torch.Tensor) -> torch.Tensor:
        """``error²`` (skrl's MSE) or Huber: ``error²/2`` within ``±huber_delta``, ``δ(|error| − δ/2)`` outside."""
        if self.value_loss == "mse":
            return error.pow(2)
        d = self.huber_delta
        return torch.where(error.abs() <= d, 0.5 * error.pow(2), d * (error.abs() - 0.5 * d))

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Compute the loss terms and diagnostics for a batch of any shape ``[*B]``."""
        k = self.tensor_keys
        advantage = self._get(tensordict, k.advantage, "advantage")
        target = self._get(tensordict, k.value_target, "value_target")
        old_value = self._get(tensordict, k.value, "value")
        old_log_prob = self._get(tensordict, k.sample_log_prob, "sample_log_prob")
        action = self._get(tensordict, k.action, "action")
        if not (advantage.shape == target.shape == old_value.shape) or advantage.shape[:-1] != old_log_prob.shape:
            raise ValueError(
                f"shape mismatch: advantage {tuple(advantage.shape)}, value_target {tuple(target.shape)}, value "
                f"{tuple(old_value.shape)} must all be [*B, n_agents, 1] and sample_log_prob {tuple(old_log_prob.shape)} "
                "[*B, n_agents]; team-shared signals must be broadcast to agents before the loss (see MAPPOGAE)."
            )

        alive = tensordict.get(k.alive, None)
        if alive is not None and alive.shape != old_log_prob.shape:
            raise ValueError(f"alive mask at {k.alive!r} has shape {tuple(alive.shape)}; expected {tuple(old_log_prob.shape)} "
                             "([*B, n_agents], like sample_log_prob); rename it with loss.set_keys(alive=...).")
        alive = None if alive is None else alive.unsqueeze(-1)
        p_mask = alive if self.policy_active_masks else None
        v_mask = alive if self.value_active_masks else None

        if self._plans is not None:
            actor, critic, dist_module, inputs = self._plans
            values = actor({key: self._get(tensordict, key, "the policy's input") for key in inputs})
            params = {(n[-1] if isinstance(n, tuple) else n): values[k] for n, k in zip(dist_module.dist_keys, dist_module.in_keys)}
            dist = dist_module.distribution_class(**params, **dist_module.distribution_kwargs)
        else:
            dist = self.actor_network.get_dist(tensordict.select(*self.actor_network.in_keys, strict=False))
        log_prob = dist.log_prob(action)
        if log_prob.shape != old_log_prob.shape:
            raise ValueError(f"policy log-prob shape {tuple(log_prob.shape)} != stored {tuple(old_log_prob.shape)} at {k.sample_log_prob!r}.")
        log_ratio = (log_prob - old_log_prob).unsqueeze(-1)
        ratio = log_ratio.exp()
        c = self.ratio_clip
        surrogate = torch.min(advantage * ratio, advantage * ratio.clamp(1 - c, 1 + c))
        if self._entropy_grad:
            entropy = _entropy(dist).unsqueeze(-1)
        else:  # scale 0: a diagnostic only, no graph (without a closed form: −log π of the batch's own actions)
            with torch.no_grad():
                try:
                    entropy = dist.entropy().unsqueeze(-1)
                except NotImplementedError:
                    entropy = -log_prob.detach().unsqueeze(-1)

        if self._plans is not None:
            value = critic({kk: tensordict.get(kk) for kk in critic.in_keys})[k.value]
        else:
            value = self.critic_network(tensordict.select(*self.critic_network.in_keys, strict=False)).get(k.value)
        if value.shape != target.shape:
            raise ValueError(f"critic output {tuple(value.shape)} at {k.value!r} does not match value_target {tuple(target.shape)}.")
        critic_loss = self._value_error(target - value)
        if self.clip_predicted_values:
            clipped_value = old_value + (value - old_value).clamp(-self.value_clip, self.value_clip)
            if self.value_clip_form == "max":  # the MAPPO reference: the larger of the unclipped and clipped losses
                critic_loss = torch.max(critic_loss, self._value_error(target - clipped_value))
            else:  # skrl: the loss of the clipped prediction
                value = clipped_value
                critic_loss = self._value_error(target - value)

        with torch.no_grad():
            kl = (ratio - 1) - log_ratio
            clipped = ((ratio - 1).abs() > c).float()
            dims = list(range(target.ndim)) if self.share_params else self._non_agent_dims(target)
            residual_var, target_var = (masked_std_mean(x, v_mask, dims, keepdim=False)[0].pow(2) for x in (target - value, target))
            explained_variance = 1 - residual_var / target_var.clamp_min(1e-8)
            explained_variance = explained_variance if self.share_params else explained_variance.squeeze(-1)
        return TensorDict(
            {
                "loss_objective": -self._reduce(surrogate, p_mask),
                "loss_critic": self._reduce(self.value_loss_scale * critic_loss, v_mask),
                "loss_entropy": -self._reduce(self.entropy_loss_scale * entropy, p_mask),
                "kl_approx": self._reduce(kl, p_mask),
                "clip_fraction": self._reduce(clipped, p_mask),
                "entropy": self._reduce(entropy.detach(), p_mask),
                "explained_variance": explained_variance,
            },
            batch_size=[],
        )
