"""The clipped PPO loss of MAPPO (policy, value and entropy terms), as a TorchRL ``LossModule`` over
:func:`mappo_td.functional.mappo_loss`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import ProbabilisticTensorDictSequential, TensorDictModuleBase
from torchrl.objectives import LossModule

from mappo_td.defaults import BOUNDS
from mappo_td.fast import TensorPlan
from mappo_td.functional.losses import LOSS_TERMS, check_value_loss, mappo_loss
from mappo_td.keys import KeyContract, MAPPOKeys, NestedKey, group_keys
from mappo_td.multiagent import PerAgent, per_agent_tensor
from mappo_td.objectives.gae import MAPPOGAE

_RENAMED = {"policy_active_masks": "policy_alive_mask", "value_active_masks": "value_alive_mask"}


def _renamed_kwargs(owner: str, given: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """``given`` keyword arguments by their earlier names, under their new names (a ``DeprecationWarning`` each); an
    unknown name is a ``TypeError``, as Python raises.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _renamed_kwargs("f", {"old": 1}, {"old": "new"})
        {'new': 1}
        >>> caught[0].category.__name__
        'DeprecationWarning'
    """
    unknown = [k for k in given if k not in renamed]
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")
    for old in given:
        warnings.warn(f"{owner}({old}=...) is deprecated: use {renamed[old]}=...", DeprecationWarning, stacklevel=3)
    return {renamed[old]: value for old, value in given.items()}


def policy_entropy(dist: torch.distributions.Distribution, log_prob: torch.Tensor, *, grad: bool) -> torch.Tensor:
    """The entropy of ``dist`` per entry: its closed form; where it has none (e.g. ``TanhNormal``), the one-sample
    estimate −log π(a). With ``grad`` (an entropy bonus) ``a`` is a fresh reparameterized sample, as in TorchRL's PPO
    losses (the batch's own actions would give the bonus no gradient at the old policy); without (a diagnostic only),
    ``a`` is the batch's action, whose ``log_prob`` is computed already, and nothing is recorded for autograd.

    Example:
        >>> d = torch.distributions.Categorical(logits=torch.zeros(2, 4))
        >>> policy_entropy(d, d.log_prob(torch.zeros(2)), grad=False)
        tensor([1.3863, 1.3863])
    """
    with nullcontext() if grad else torch.no_grad():
        try:
            return dist.entropy()
        except NotImplementedError:
            return -dist.log_prob(dist.rsample()) if grad else -log_prob.detach()


def _tensor_plans(actor_network: TensorDictModuleBase, critic_network: TensorDictModuleBase) -> tuple | None:
    """``(actor plan, critic plan, distribution module, the policy's inputs)``, or ``None`` (the TensorDict path)."""
    actor = TensorPlan.of(actor_network, what="the actor network")
    critic = TensorPlan.of(critic_network, what="the critic network")
    dist_module = actor_network.module[-1] if isinstance(actor_network, ProbabilisticTensorDictSequential) else None
    if actor is None or critic is None or dist_module is None:
        return None
    made = {k for _, _, outs in actor.steps for k in outs}  # the distribution also reads inputs (an action mask)
    inputs = list(dict.fromkeys([*actor.in_keys, *(k for k in dist_module.in_keys if k not in made)]))
    return actor, critic, dist_module, inputs


class MAPPOLoss(KeyContract, LossModule):
    """MAPPO's clipped surrogate, value and entropy losses for one agent group.

    ================================================  =======================  ====================
    key (``set_keys`` name)                           shape                    meaning
    ================================================  =======================  ====================
    actor / critic ``in_keys``                        ``[*B, n_agents, F]``    observations / state
    ``(group, "action")`` (action)                    ``[*B, n_agents, *A]``   taken actions
    ``(group, "action_log_prob")`` (sample_log_prob)  ``[*B, n_agents]``       log p at collection
    ``(group, "advantage")`` (advantage)              ``[*B, n_agents, 1]``    standardized A
    ``(group, "value_target")`` (value_target)        ``[*B, n_agents, 1]``    returns R
    ``(group, "state_value")`` (value)                ``[*B, n_agents, 1]``    V at collection
    ``(group, "mask")`` (alive), optional             ``[*B, n_agents]`` bool  the agent acts now
    ================================================  =======================  ====================

    Alive masks (the reference's ``active_masks``): where the input has the ``alive`` key,
    the policy, entropy and diagnostic terms (``policy_alive_mask``) and the value terms
    (``value_alive_mask``) average over alive agent-steps only, as
    ``sum(x · alive) / sum(alive)``; a dead agent's entries reach no loss and no gradient.
    A masked policy (legal-action mask) needs nothing here: the mask is one of its inputs.

    The math is :func:`mappo_td.functional.mappo_loss`; this module runs the networks. Output (scalars;
    ``[n_agents]`` with ``share_params=False``): ``loss_objective``
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
    (``reward``/``done``/``terminated``/``truncated`` are forwarded to the estimator). ``policy_active_masks`` and
    ``value_active_masks`` are deprecated names of ``policy_alive_mask`` and ``value_alive_mask``.

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
        policy_alive_mask: bool = True,
        value_alive_mask: bool = True,
        **deprecated: bool,
    ) -> None:
        super().__init__()
        renamed = _renamed_kwargs(type(self).__name__, deprecated, _RENAMED)
        policy_alive_mask, value_alive_mask = renamed.get("policy_alive_mask", policy_alive_mask), renamed.get("value_alive_mask", value_alive_mask)
        self.policy_alive_mask, self.value_alive_mask = bool(policy_alive_mask), bool(value_alive_mask)
        check_value_loss(value_loss, value_clip_form, huber_delta)
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
        self._plans = _tensor_plans(actor_network, critic_network) if tensor_plan else None
        self.set_keys(**group_keys(group))

    @property
    def policy_active_masks(self) -> bool:
        """Deprecated, use ``policy_alive_mask``."""
        warnings.warn("MAPPOLoss.policy_active_masks is deprecated: use policy_alive_mask.", DeprecationWarning, stacklevel=2)
        return self.policy_alive_mask

    @property
    def value_active_masks(self) -> bool:
        """Deprecated, use ``value_alive_mask``."""
        warnings.warn("MAPPOLoss.value_active_masks is deprecated: use value_alive_mask.", DeprecationWarning, stacklevel=2)
        return self.value_alive_mask

    @property
    def in_keys(self) -> list:
        """Every key the loss reads (the networks' inputs, then the key contract's ``action`` ... ``alive``, which may be
        absent); ``repr(loss)`` lists them, as TorchRL's losses do."""
        k = self.tensor_keys
        networks = [key for net in (self.actor_network, self.critic_network) if net is not None for key in net.in_keys]
        return list(dict.fromkeys([*networks, k.action, k.sample_log_prob, k.advantage, k.value_target, k.value, k.alive]))

    @property
    def out_keys(self) -> list[str]:
        """The terms ``forward`` returns (:data:`mappo_td.functional.LOSS_TERMS`)."""
        return list(LOSS_TERMS)

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

    def _required(self, td: TensorDictBase, key: NestedKey, name: str) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise KeyError(
                f"MAPPOLoss needs {name} at key {key!r}; it is missing from the input. Compute advantages first "
                f"(loss.value_estimator(data)) or rename the key with loss.set_keys({name}=...)."
            )
        return value

    def _alive(self, td: TensorDictBase, old_log_prob: torch.Tensor) -> torch.Tensor | None:
        alive = td.get(self.tensor_keys.alive, None)
        if alive is not None and alive.shape != old_log_prob.shape:
            raise ValueError(f"alive mask at {self.tensor_keys.alive!r} has shape {tuple(alive.shape)}; expected {tuple(old_log_prob.shape)} "
                             "([*B, n_agents], like sample_log_prob); rename it with loss.set_keys(alive=...).")
        return alive

    @staticmethod
    def _policy_input(td: TensorDictBase, key: NestedKey) -> torch.Tensor:
        value = td.get(key, None)
        if value is None:
            raise KeyError(f"MAPPOLoss: the policy reads {key!r} (an observation, or its legal-action mask), which is missing "
                           "from the input; keep it in the batch (e.g. select it with the other keys).")
        return value

    def _distribution(self, td: TensorDictBase) -> torch.distributions.Distribution:
        """The policy's distribution now: through the tensor plan, or the TensorDict path."""
        if self._plans is None:
            return self.actor_network.get_dist(td.select(*self.actor_network.in_keys, strict=False))
        actor, _, dist_module, inputs = self._plans
        values = actor({key: self._policy_input(td, key) for key in inputs})
        params = {(n[-1] if isinstance(n, tuple) else n): values[k] for n, k in zip(dist_module.dist_keys, dist_module.in_keys)}
        return dist_module.distribution_class(**params, **dist_module.distribution_kwargs)

    def _value(self, td: TensorDictBase) -> torch.Tensor:
        """The critic's prediction now."""
        if self._plans is None:
            return self.critic_network(td.select(*self.critic_network.in_keys, strict=False)).get(self.tensor_keys.value)
        critic = self._plans[1]
        return critic({key: td.get(key) for key in critic.in_keys})[self.tensor_keys.value]

    def forward(self, tensordict: TensorDictBase) -> TensorDict:
        """Compute the loss terms and diagnostics for a batch of any shape ``[*B]``."""
        k = self.tensor_keys
        advantage = self._required(tensordict, k.advantage, "advantage")
        target = self._required(tensordict, k.value_target, "value_target")
        old_value = self._required(tensordict, k.value, "value")
        old_log_prob = self._required(tensordict, k.sample_log_prob, "sample_log_prob")
        action = self._required(tensordict, k.action, "action")
        alive = self._alive(tensordict, old_log_prob)
        dist = self._distribution(tensordict)
        log_prob = dist.log_prob(action)
        out = mappo_loss(
            log_prob=log_prob, old_log_prob=old_log_prob, advantage=advantage, value=self._value(tensordict), old_value=old_value,
            value_target=target, entropy=policy_entropy(dist, log_prob, grad=self._entropy_grad), ratio_clip=self.ratio_clip,
            value_clip=self.value_clip, clip_predicted_values=self.clip_predicted_values, entropy_loss_scale=self.entropy_loss_scale,
            value_loss_scale=self.value_loss_scale, value_loss=self.value_loss, huber_delta=self.huber_delta,
            value_clip_form=self.value_clip_form, alive=alive, policy_alive_mask=self.policy_alive_mask,
            value_alive_mask=self.value_alive_mask, per_agent=not self.share_params,
        )
        return TensorDict(out, batch_size=[])
