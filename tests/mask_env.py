"""A lure task as a small TorchRL multi-agent env with a legal-action mask.

Each step every agent picks one of 4 actions. Action 3 (the lure) pays 1, action 0 pays
0.2, actions 1 and 2 pay nothing. The env's ``(agents, "action_mask")`` never allows the
lure and allows a random non-empty subset of actions 0-2. ``taken`` counts every action
the env received, legal or not, so a test can check that a masked policy never chose the
lure while an unmasked one learns to take it.
"""

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Binary, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

PAY = torch.tensor([0.2, 0.0, 0.0, 1.0])
LURE = 3


class LureEnv(EnvBase):
    def __init__(self, num_envs: int = 16, n_agents: int = 2, horizon: int = 4, seed: int = 0) -> None:
        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self.n_agents, self.horizon = n_agents, horizon
        self.group_map = {"agents": [f"agent_{i}" for i in range(n_agents)]}
        b, n = num_envs, n_agents
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((b, n, 4)), action_mask=Binary(4, (b, n, 4), dtype=torch.bool), shape=(b, n)),
            shape=(b,))
        self.action_spec = Composite(agents=Composite(action=Categorical(4, (b, n)), shape=(b, n)), shape=(b,))
        self.reward_spec = Composite(agents=Composite(reward=Unbounded((b, n, 1)), shape=(b, n)), shape=(b,))
        self.done_spec = Composite(
            done=Categorical(2, (b, 1), dtype=torch.bool), terminated=Categorical(2, (b, 1), dtype=torch.bool), shape=(b,))
        self.t = torch.zeros(b, dtype=torch.long)
        self.taken = torch.zeros(4, dtype=torch.long)
        self.rng = torch.Generator().manual_seed(seed)

    def observe(self, done: torch.Tensor, reward: torch.Tensor | None = None) -> TensorDictBase:
        b, n = self.batch_size[0], self.n_agents
        legal = torch.rand(b, n, 3, generator=self.rng) < 0.6
        legal[..., 0] |= ~legal.any(-1)  # at least one legal action
        mask = torch.cat([legal, torch.zeros(b, n, 1, dtype=torch.bool)], -1)  # the lure: never legal
        agents = {"observation": mask.float(), "action_mask": mask}
        if reward is not None:
            agents["reward"] = reward
        return TensorDict({"agents": TensorDict(agents, [b, n]), "done": done, "terminated": done.clone()}, self.batch_size)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        self.t[:] = 0 if tensordict is None or "_reset" not in tensordict.keys() else self.t * ~tensordict["_reset"].view(-1)
        return self.observe(torch.zeros(*self.batch_size, 1, dtype=torch.bool))

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(("agents", "action"))
        self.taken += torch.bincount(action.flatten(), minlength=4)
        self.t = self.t + 1
        return self.observe((self.t >= self.horizon).view(-1, 1), PAY[action].unsqueeze(-1))

    def _set_seed(self, seed: int | None) -> None:
        self.rng.manual_seed(seed or 0)
