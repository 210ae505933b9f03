"""The acting policy: every group's policy, wrapped by the fast path, with uniform random actions first."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from torch import nn

from mappo_td.fast import accelerate
from mappo_td.models.distributions import policy_mask_key, random_actions


class ActingPolicy(TensorDictModuleBase):
    """The policies of every group; uniform random actions while ``step < random_timesteps``.

    Random actions are stored with their log-probability under the current policy; a masked
    policy's random actions are uniform over the legal ones (its ``"mask"`` input).
    ``step`` is a host counter (the environment step), so choosing costs no sync;
    each group's policy is wrapped by :func:`mappo_td.fast.accelerate` (``fast``),
    the counter and the random/policy choice stay in Python. ``critics`` (recurrent
    ones) run after the policies, so their hidden state advances with the episode.

    Example:
        >>> from mappo_td import MAPPOTrainer, TrainConfig
        >>> t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}, "random_timesteps": 1, "progress": False}))
        >>> t.acting.step = 0  # the loop sets it to the run's timestep before each rollout
        >>> td = t.acting(t.env.reset())  # step 0 < random_timesteps: uniform actions
        >>> td["agents", "action"].shape, t.acting.step
        (torch.Size([2, 3, 2]), 1)
    """

    def __init__(self, policies: dict[str, TensorDictModuleBase], action_specs: dict[str, Any], random_timesteps: int,
                 fast: str = "off", critics: dict[str, TensorDictModuleBase] | None = None) -> None:
        super().__init__()
        self.names = list(policies)
        self.policies = nn.ModuleList(policies.values())
        self.critics = nn.ModuleList((critics or {}).values())  # recurrent critics step along to carry their state
        self._critic_act = [accelerate(c, fast, out_keys=c.out_keys) for c in self.critics]
        self.action_specs = action_specs
        self.random_timesteps = random_timesteps
        self.step = 0
        self._act = [accelerate(p, fast, out_keys=p.out_keys) for p in self.policies]
        self.mask_keys = [policy_mask_key(p) for p in self.policies]  # a masked distribution's legal-action key (None: unmasked)
        self.in_keys = sorted({k for p in [*self.policies, *self.critics] for k in p.in_keys}, key=str)
        self.out_keys = sorted({k for p in [*self.policies, *self.critics] for k in p.out_keys}, key=str)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        random = self.step < self.random_timesteps
        for name, policy, act, mask_key in zip(self.names, self.policies, self._act, self.mask_keys):
            if random:
                mask = None if mask_key is None else td.get(mask_key)
                action = random_actions(self.action_specs[name], mask).to(td.device)  # the spec carries the env batch dims
                td.set((name, "action"), action)
                td.set((name, "action_log_prob"), policy.get_dist(td).log_prob(action))
            else:
                td.update(act(td.select(*policy.in_keys)), keys_to_update=policy.out_keys)
        for critic, act in zip(self.critics, self._critic_act):
            td.update(act(td.select(*critic.in_keys)), keys_to_update=critic.out_keys)
        self.step += 1
        return td
