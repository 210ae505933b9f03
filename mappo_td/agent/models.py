"""Your own networks for the agent API, as skrl takes them: ``models={agent: {"policy": net, "critic": net}}`` (skrl
calls the critic ``"value"``: that name is read too, with a ``DeprecationWarning``).

The contract (the same networks :func:`~mappo_td.make_policy` and :func:`~mappo_td.make_critic` take as
``network=``):

=========  ==============================================  ==========================================================
role       receives                                        returns
=========  ==============================================  ==========================================================
policy     the agent's flat observation ``[..., n_in]``     the distribution's parameters ``[..., n_out]``: Discrete(n)
           (Dict spaces flattened in sorted key order,     n logits; MultiDiscrete ``sum(nvec)`` logits (masked where
           after ``state_preprocessor``)                   the env gives an action mask); Box of d dims: d means (the
                                                           log-std is a learned parameter; 2d outputs with
                                                           ``model.state_dependent_std``)
critic     the centralized input ``[..., n_in]``: every     ``[..., 1]``, the value of that state for the agent's team
           agent's flat observation, concatenated by
           group name (own observation with
           ``model.centralized_critic=false``)
=========  ==============================================  ==========================================================

Leading dims are free (``[num_envs, n_agents]`` when acting, ``[minibatch, n_agents]`` in the loss), so a
plain ``nn.Sequential`` of ``nn.Linear`` layers fits. :func:`model_sizes` gives every ``n_in`` / ``n_out``.
Agents given the same instance share it (skrl's way of sharing parameters) and are trained as one group;
an agent with an instance of its own is a group of its own. An instance may be shared only within one group: by
agents of the same name prefix and spaces that share the other network too (an error says so otherwise). The networks are trained in place: the
modules you hold are the agent's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mappo_td.agent.spaces import Space, check_agent_names, group_agents, group_specs
from mappo_td.models.critic import critic_input_size
from mappo_td.models.policy import policy_io_sizes
from mappo_td.train.build import ROLES, networks_by_role


class RoleSizes(dict):
    """``{"policy": ..., "critic": ...}``; ``["value"]`` (skrl's name for the critic) still reads the critic, with a warning."""

    def __missing__(self, key: str) -> Any:
        if key == "value" and "critic" in self:
            warnings.warn("model_sizes(...)[agent]['value'] is deprecated; read ['critic'].", DeprecationWarning, stacklevel=2)
            return self["critic"]
        raise KeyError(key)


class MissingCritic(nn.Module):
    """Stands in for the critic of agents given a policy only: acting works, training says what is missing.

    Example:
        >>> MissingCritic(["agent_0"])(torch.zeros(2, 4))
        Traceback (most recent call last):
        ...
        ValueError: no 'critic' model for agent(s) ['agent_0']: MAPPO's update needs one; give models[name]['critic'] (acting needs only 'policy').
    """

    def __init__(self, agents: Sequence[str]) -> None:
        super().__init__()
        self.agents = list(agents)

    def message(self) -> str:
        """What is missing and how to give it."""
        return (f"no 'critic' model for agent(s) {self.agents}: MAPPO's update needs one; give models[name]['critic'] "
                "(acting needs only 'policy').")

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        raise ValueError(self.message())


def check_models(models: Mapping[str, Any], possible_agents: Sequence[str]) -> dict[str, dict[str, nn.Module | None]]:
    """``models`` checked: an entry for every agent, each a dict of roles (``"policy"``, optionally ``"critic"``) that are
    ``torch.nn.Module``; returns ``{agent: {"policy": module, "critic": module or None}}``.

    Example:
        >>> net = nn.Linear(4, 3)
        >>> check_models({"a_0": {"policy": net}}, ["a_0"])["a_0"]["critic"] is None
        True
        >>> check_models({"a_0": {"policy": net, "actor": net}}, ["a_0"])
        Traceback (most recent call last):
        ...
        ValueError: models['a_0']: unknown role(s) ['actor']; roles: ['policy', 'critic'].
    """
    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a dict by agent name of {{'policy': module, 'critic': module}}, got {type(models).__name__}.")
    check_agent_names(models, possible_agents, "models",
                      " its models (the same instance for agents that share one), or leave models=None for mappo_td's own")
    out = {}
    for a in possible_agents:
        roles = models[a]
        if not isinstance(roles, Mapping):
            raise TypeError(f"models[{a!r}] must be a dict of roles {{'policy': module, 'critic': module}}, got {type(roles).__name__}.")
        roles = networks_by_role(roles, f"models[{a!r}]")
        if roles.get("policy") is None:
            raise ValueError(f"models[{a!r}] has no 'policy': every agent needs a policy network to act.")
        for role in ROLES:
            if roles.get(role) is not None and not isinstance(roles[role], nn.Module):
                raise TypeError(f"models[{a!r}][{role!r}] must be a torch.nn.Module, got {type(roles[role]).__name__}.")
        out[a] = {"policy": roles["policy"], "critic": roles.get("critic")}
    return out


def instances(models: Mapping[str, Mapping[str, nn.Module | None]]) -> dict[str, tuple[int, int]]:
    """Each agent's model identity (agents with the same instances may share a group; see :func:`group_agents`).

    Example:
        >>> net = nn.Linear(2, 2)
        >>> ids = instances({"a_0": {"policy": net, "critic": None}, "a_1": {"policy": net, "critic": None}})
        >>> ids["a_0"] == ids["a_1"]
        True
    """
    return {a: (id(r["policy"]), id(r.get("critic"))) for a, r in models.items()}


def check_shared(models: Mapping[str, Mapping[str, nn.Module | None]], group_map: Mapping[str, Sequence[str]]) -> None:
    """Refuse a network instance given to agents of different groups: each group trains its networks with an optimizer
    of its own, so such an instance would be stepped by two optimizers at every minibatch.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> check_shared({"a_0": {"policy": net, "critic": None}, "b_0": {"policy": net, "critic": None}}, {"a": ["a_0"], "b": ["b_0"]})
        Traceback (most recent call last):
        ...
        ValueError: models: agents ['a_0', 'b_0'] share one 'policy' instance but form groups {'a': ['a_0'], 'b': ['b_0']}, each trained by an optimizer of its own: a shared instance may only be given to agents of one group (the same name before the last '_', the same spaces, and the same 'critic' instance too, or none for all); give them the same 'critic' instance as well, or each its own 'policy'.
    """
    group_of = {a: g for g, agents in group_map.items() for a in agents}
    for role in ROLES:
        holders: dict[int, list[str]] = {}
        for a, roles in models.items():
            if roles.get(role) is not None:
                holders.setdefault(id(roles[role]), []).append(a)
        for agents in holders.values():
            groups = list(dict.fromkeys(group_of[a] for a in agents))
            if len(groups) > 1:
                other = "critic" if role == "policy" else "policy"
                raise ValueError(f"models: agents {agents} share one {role!r} instance but form groups "
                                 f"{ {g: list(group_map[g]) for g in groups} }, each trained by an optimizer of its own: a shared "
                                 f"instance may only be given to agents of one group (the same name before the last '_', the same "
                                 f"spaces, and the same {other!r} instance too, or none for all); give them the same {other!r} "
                                 f"instance as well, or each its own {role!r}.")


def group_models(models: Mapping[str, Mapping[str, nn.Module | None]], group_map: Mapping[str, Sequence[str]]) -> dict[str, dict[str, nn.Module]]:
    """By group: its agents' (shared) networks, a :class:`MissingCritic` where no critic was given.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> g = group_models({"a_0": {"policy": net, "critic": None}}, {"a": ["a_0"]})
        >>> g["a"]["policy"] is net, type(g["a"]["critic"]).__name__
        (True, 'MissingCritic')
    """
    check_shared(models, group_map)
    out = {}
    for g, agents in group_map.items():
        roles = models[agents[0]]
        out[g] = {"policy": roles["policy"], "critic": roles["critic"] if roles["critic"] is not None else MissingCritic(agents)}
    return out


def model_sizes(observation_spaces: Mapping[str, Space], action_spaces: Mapping[str, Space], *, centralized: bool = True,
                state_dependent_std: bool = False) -> dict[str, dict[str, tuple[int, int]]]:
    """``{agent: {"policy": (n_in, n_out), "critic": (n_in, 1)}}``: the sizes your networks take and give.

    Example:
        >>> import gymnasium as gym
        >>> obs = {"speaker_0": gym.spaces.Box(-1, 1, (3,)), "listener_0": gym.spaces.Box(-1, 1, (11,))}
        >>> act = {"speaker_0": gym.spaces.Discrete(3), "listener_0": gym.spaces.Discrete(5)}
        >>> model_sizes(obs, act)
        {'speaker_0': {'policy': (3, 3), 'critic': (14, 1)}, 'listener_0': {'policy': (11, 5), 'critic': (14, 1)}}
    """
    agents = list(observation_spaces)
    gmap = group_agents(agents, [observation_spaces, action_spaces])
    obs, act = group_specs(gmap, observation_spaces, action_spaces, num_envs=1)
    out = {}
    for g, names in gmap.items():
        policy = policy_io_sizes(obs, act, g, state_dependent_std=state_dependent_std)
        critic = (critic_input_size(obs, g, centralized=centralized), 1)
        out.update({a: RoleSizes(policy=policy, critic=critic) for a in names})
    return {a: out[a] for a in agents}


def _probe(net: nn.Module, n_in: int) -> torch.Tensor:
    """``net`` run once, in eval mode and without gradients, on zeros ``[2, 1, n_in]`` (its training flag restored)."""
    p = next(iter(net.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        with torch.no_grad():
            return net(torch.zeros(2, 1, n_in, dtype=dtype, device=p.device if p is not None else None))
    finally:
        for m, training in modes:
            m.training = training


def check_model_sizes(models: Mapping[str, Mapping[str, nn.Module | None]], observation_spaces: Mapping[str, Space],
                      action_spaces: Mapping[str, Space], *, centralized: bool = True, state_dependent_std: bool = False) -> None:
    """Every network of ``models`` (by agent name, as :func:`check_models` returns them) run once on zeros of the input
    size :func:`model_sizes` gives; refused, naming the agent, the expected and the given size, when it does not take
    that input or does not return ``[..., n_out]`` (a policy with too many logits would sample actions outside the space).

    Example:
        >>> import gymnasium as gym
        >>> models = {"a_0": {"policy": nn.Linear(3, 5), "critic": None}}
        >>> check_model_sizes(models, {"a_0": gym.spaces.Box(-1, 1, (3,))}, {"a_0": gym.spaces.Discrete(3)})
        Traceback (most recent call last):
        ...
        ValueError: models['a_0']['policy'] returns shape (2, 1, 5) for an input (2, 1, 3); expected (2, 1, 3): n_out=3 for action space Discrete(3) (mappo_td.agent.model_sizes gives (n_in, n_out) = (3, 3)); make its last layer give 3 outputs.
    """
    sizes = model_sizes(observation_spaces, action_spaces, centralized=centralized, state_dependent_std=state_dependent_std)
    seen: set[int] = set()
    for a, roles in models.items():
        for role, net in roles.items():
            if net is None or id(net) in seen:  # a shared instance is probed once
                continue
            seen.add(id(net))
            n_in, n_out = sizes[a][role]
            what = f"action space {action_spaces[a]}" if role == "policy" else "a value (the critic)"
            try:
                out = _probe(net, n_in)
            except Exception as err:  # noqa: BLE001 - any failure on the expected input is the user's network
                raise ValueError(f"models[{a!r}][{role!r}] fails on an input (2, 1, {n_in}) ({type(err).__name__}: {err}); "
                                 f"expected n_in={n_in} (mappo_td.agent.model_sizes gives (n_in, n_out) = {(n_in, n_out)}); "
                                 f"make its first layer take {n_in} inputs.") from None
            if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 1, n_out):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"models[{a!r}][{role!r}] returns shape {got} for an input (2, 1, {n_in}); expected (2, 1, {n_out}): "
                                 f"n_out={n_out} for {what} (mappo_td.agent.model_sizes gives (n_in, n_out) = {(n_in, n_out)}); "
                                 f"make its last layer give {n_out} outputs.")
