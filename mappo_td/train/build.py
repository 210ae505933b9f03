"""Build the agent groups from a :class:`~mappo_td.TrainConfig`, once: models, loss, GAE, optimizer, schedule.

Every per-agent field (``MAPPOConfig`` metadata ``per_agent``) is cut to its group by
:func:`~mappo_td.multiagent.select_group` and expanded by the module that uses it
(:func:`~mappo_td.multiagent.per_agent_tensor`): one path for every value.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import TensorDictModuleBase
from torch import nn
from torchrl.data import Composite

from mappo_td.config import BOUNDS, TrainConfig, field_key, per_agent_fields
from mappo_td.models.bodies import activation_class
from mappo_td.models.critic import critic_input_size, make_critic
from mappo_td.models.inputs import n_features
from mappo_td.models.layers import orthogonal_init
from mappo_td.models.policy import make_policy, make_shared_actor_critic
from mappo_td.multiagent import all_names, per_agent_tensor, select_group
from mappo_td.objectives.gae import MAPPOGAE
from mappo_td.objectives.loss import MAPPOLoss
from mappo_td.objectives.value_norm import PopArt, RunningStandardScaler, ValueNorm
from mappo_td.train.optim import GroupOptimizer, KLAdaptiveLR


@dataclass
class Group:
    """Everything that belongs to one agent group."""

    name: str
    agents: list[str]
    policy: TensorDictModuleBase
    critic: TensorDictModuleBase
    loss: MAPPOLoss
    gae: MAPPOGAE
    optimizer: GroupOptimizer
    scheduler: Any
    kl_threshold: torch.Tensor | None  # None: no KL early stop
    share_params: bool  # False: each agent has its own parameters and steps as if it had its own optimizer
    preprocessors: dict[str, RunningStandardScaler | ValueNorm]
    data_parallel: bool = False  # one of several torchrun processes: KL and gradients are averaged over all of them


def group_values(cfg: TrainConfig, group: str, agents: list[str], names: list[str]) -> dict[str, Any]:
    """Every per-agent config value cut to ``group`` (by user-facing name; names are checked against the run's).

    Example:
        >>> cfg = TrainConfig.from_dict({"discount_factor": {"a0": 0.9, "b0": 0.5}})
        >>> group_values(cfg, "red", ["a0"], ["a0", "b0", "red", "blue"])["discount_factor"]
        {'a0': 0.9}
    """
    return {field_key(f): select_group(getattr(cfg.mappo, f.name), group, agents, names, name=field_key(f)) for f in per_agent_fields()}


def _optimizer_value(values: dict[str, Any], name: str, group: str, agents: list[str], share: bool, device: torch.device) -> torch.Tensor:
    """``[]`` (one optimizer for the group) or ``[n_agents]`` (one per agent)."""
    t = per_agent_tensor(values[name], agents, name=name, group=group, bounds=BOUNDS[name], device=device).squeeze(-1)
    if share:
        if not bool((t == t[0]).all()):
            raise ValueError(f"{name} differs between agents {agents} of group {group!r}, which share parameters "
                             "(one optimizer); give them one value, or set model.share_params=false.")
        return t[0].clone()
    return t


def make_scheduler(cfg: TrainConfig, optimizer: GroupOptimizer) -> Any:
    """``None``, :class:`~mappo_td.KLAdaptiveLR` on the optimizer's rate tensor, or a ``torch.optim.lr_scheduler`` (by name or class).

    Example:
        >>> opt = GroupOptimizer([torch.nn.Parameter(torch.zeros(2))], torch.tensor(1e-3), torch.tensor(0.0))
        >>> type(make_scheduler(TrainConfig.from_dict({"learning_rate_scheduler": "KLAdaptiveLR"}), opt)).__name__
        'KLAdaptiveLR'
    """
    sched, kwargs = cfg.mappo.learning_rate_scheduler, cfg.mappo.learning_rate_scheduler_kwargs
    if sched is None:
        return None
    name = sched if isinstance(sched, str) else sched.__name__
    cls = KLAdaptiveLR if name == "KLAdaptiveLR" else getattr(torch.optim.lr_scheduler, name, None) if isinstance(sched, str) else sched
    if cls is None or (cls is not KLAdaptiveLR and not (isinstance(cls, type) and issubclass(cls, torch.optim.lr_scheduler.LRScheduler))):
        raise ValueError(f"unknown learning_rate_scheduler {sched!r}; use 'KLAdaptiveLR' or a torch.optim.lr_scheduler class name.")
    if cls is torch.optim.lr_scheduler.ReduceLROnPlateau:
        raise ValueError("learning_rate_scheduler 'ReduceLROnPlateau' steps on a metric, which MAPPO's update does not provide; "
                         "use 'KLAdaptiveLR' or a schedule over steps (e.g. 'LinearLR', 'StepLR').")
    try:
        return cls(optimizer.lr if cls is KLAdaptiveLR else optimizer.adam, **kwargs)  # torch's: scale learning_rate (effective_lr)
    except (TypeError, ValueError) as err:
        target = cls.__init__ if cls is KLAdaptiveLR else cls
        raise ValueError(f"learning_rate_scheduler_kwargs {kwargs} do not fit {name} ({err}); its parameters: "
                         f"{inspect.signature(target)}.") from None


def _preprocessor(cfg: TrainConfig, name: str, size: int, device: torch.device) -> RunningStandardScaler | ValueNorm | None:
    kind = getattr(cfg.mappo, name)
    if kind is None:
        return None
    cls = {"ValueNorm": ValueNorm, "PopArt": PopArt}.get(getattr(kind, "__name__", kind), RunningStandardScaler)
    try:
        return cls(size, **getattr(cfg.mappo, f"{name}_kwargs")).to(device)
    except TypeError as err:
        raise ValueError(f"{name}_kwargs {getattr(cfg.mappo, f'{name}_kwargs')} do not fit {cls.__name__} ({err}).") from None


ROLES = ("policy", "critic")  # the networks of a group or agent; "value" is skrl's (deprecated) name for the critic


def networks_by_role(roles: Mapping[str, Any], where: str = "models") -> dict[str, Any]:
    """``roles`` with skrl's name ``"value"`` (deprecated here, with a warning) read as ``"critic"``, the one name
    mappo_td uses for the value network (checkpoints, ``make_critic``, ``Group.critic``); unknown roles are refused.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     sorted(networks_by_role({"policy": 1, "value": 2}))
        ['critic', 'policy']
        >>> str(caught[0].message)
        "models: the role 'value' (skrl's name) is deprecated; call it 'critic'."
    """
    out = dict(roles)
    if "value" in out:
        if "critic" in out:
            raise ValueError(f"{where}: give the critic once, as 'critic' ('value' is its earlier name), not both.")
        warnings.warn(f"{where}: the role 'value' (skrl's name) is deprecated; call it 'critic'.", DeprecationWarning, stacklevel=3)
        out["critic"] = out.pop("value")
    bad = [k for k in out if k not in ROLES]
    if bad:
        raise ValueError(f"{where}: unknown role(s) {bad}; roles: {list(ROLES)}.")
    return out


def build_group(cfg: TrainConfig, observation_spec: Composite, action_spec: Composite, name: str, agents: list[str],
                names: list[str], device: torch.device, models: Mapping[str, nn.Module] | None = None) -> Group:
    """One :class:`Group` from the env's specs (``names``: every agent and group name of the run; ``models``: the
    group's own ``{"policy": network, "critic": network}`` in place of the MLPs, see :func:`~mappo_td.make_policy`'s
    and :func:`~mappo_td.make_critic`'s ``network``)."""
    m, mc = cfg.mappo, cfg.model
    share = mc.share_params or len(agents) == 1 or models is not None
    values = group_values(cfg, name, agents, names)
    n_obs = n_features(observation_spec, name)
    pre = {"state_preprocessor": _preprocessor(cfg, "state_preprocessor", n_obs, device)}
    common = dict(share_params=mc.share_params, hidden_sizes=list(mc.hidden_sizes), activation=activation_class(mc.activation))
    body = dict(body=mc.body, rnn_hidden_size=mc.rnn_hidden_size, rnn_layers=mc.rnn_layers, rnn_encoder=list(mc.rnn_encoder),
                layer_norm=mc.layer_norm)
    head = dict(distribution=mc.distribution, tanh_squash=mc.tanh_squash, log_std_init=mc.log_std_init,
                action_mask="auto" if mc.action_masks else None)
    if models is not None and mc.shared_model:
        raise ValueError("model.shared_model builds one trunk for policy and value; with your own models, give a policy and "
                         "a critic network per agent and leave shared_model off.")
    if mc.shared_model:
        op = make_shared_actor_critic(observation_spec, action_spec, name, input_preprocessor=pre["state_preprocessor"], **common, **head)
        policy, critic = op.get_policy_operator(), op.get_value_operator()
    else:
        nets = networks_by_role(models or {}, f"models[{name!r}]")
        policy = make_policy(observation_spec, action_spec, name, state_dependent_std=mc.state_dependent_std,
                             input_preprocessor=pre["state_preprocessor"], network=nets.get("policy"), **common, **head, **body)
        n_critic = critic_input_size(observation_spec, name, centralized=mc.centralized_critic)
        pre["shared_state_preprocessor"] = _preprocessor(cfg, "shared_state_preprocessor", n_critic, device)
        critic = make_critic(observation_spec, name, centralized=mc.centralized_critic, input_preprocessor=pre["shared_state_preprocessor"],
                             network=nets.get("critic"), **common, **body)
    if mc.init == "orthogonal" and models is None:  # the reference's: the action layer at gain 0.01, the value layer at 1
        orthogonal_init(policy, activation_class(mc.activation), 0.01)
        orthogonal_init(critic, activation_class(mc.activation), 1.0)
    policy, critic = policy.to(device), critic.to(device)
    pre["value_preprocessor"] = _preprocessor(cfg, "value_preprocessor", 1, device)
    if isinstance(pre["value_preprocessor"], PopArt):
        pre["value_preprocessor"].attach(critic)  # its output layer follows the statistics
    pre = {k: v for k, v in pre.items() if v is not None}

    loss = MAPPOLoss(policy, critic, group=name, agents=agents, clip_predicted_values=m.clip_predicted_values, share_params=share,
                     value_loss=m.value_loss, huber_delta=m.huber_delta, value_clip_form=m.value_clip_form,
                     policy_alive_mask=m.policy_active_masks, value_alive_mask=m.value_active_masks,
                     **{k: values[k] for k in ("ratio_clip", "value_clip", "entropy_loss_scale", "value_loss_scale")}).to(device)
    gae = MAPPOGAE(name, gamma=values["discount_factor"], lmbda=values["lambda"], agents=agents,
                   time_limit_bootstrap=m.time_limit_bootstrap).to(device)
    lr, clip, kl = (_optimizer_value(values, k, name, agents, share, device) for k in ("learning_rate", "grad_norm_clip", "kl_threshold"))
    params = list({id(p): p for p in [*policy.parameters(), *critic.parameters()]}.values())
    optimizer = GroupOptimizer(params, lr, clip, share_params=share, capturable=cfg.fast == "cudagraphs")
    return Group(name, agents, policy, critic, loss, gae, optimizer, make_scheduler(cfg, optimizer),
                 kl if bool((kl > 0).any()) else None, share, pre)


def build_groups(cfg: TrainConfig, observation_spec: Composite, action_spec: Composite, group_map: dict[str, list[str]],
                 device: torch.device, models: Mapping[str, Mapping[str, nn.Module]] | None = None) -> list[Group]:
    """One :class:`Group` per entry of ``group_map``; per-agent dicts may name any agent or group of the run
    (``models``: by group, that group's own networks, see ``build_group``).

    Example:
        >>> from mappo_td.envs import make_env, group_map
        >>> cfg = TrainConfig.from_dict({"env": {"num_envs": 2}, "learning_rate": {"agents": 3e-4}})
        >>> env = make_env(cfg.env)
        >>> g, = build_groups(cfg, env.observation_spec, env.full_action_spec, group_map(env), torch.device("cpu"))
        >>> g.name, g.agents, round(float(g.optimizer.lr), 6)
        ('agents', ['agent_0', 'agent_1', 'agent_2'], 0.0003)
    """
    names = all_names(group_map)
    frames, k = cfg.frames_per_iteration, cfg.mappo.mini_batches
    if frames % k:
        warnings.warn(f"mini_batches={k} does not divide the {frames} frames of an update: each epoch leaves {frames % k} "
                      "frames out (a different set each epoch).", stacklevel=2)
    models = models or {}
    return [build_group(cfg, observation_spec, action_spec, g, agents, names, device, models.get(g)) for g, agents in group_map.items()]
