"""A memory task as a small TorchRL multi-agent env: remember a cue seen once, act on it at the end.

Each agent sees a random cue (one of ``n_cues``, one-hot) at the first step of an episode
only; later steps show zeros and a flag on the last step. At the last step an agent is
rewarded 1 if its action equals its cue. An episode's return is its success (0 or 1), so a
policy without memory scores ``1 / n_cues`` on average.
"""

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


class CueMemoryEnv(EnvBase):
    def __init__(self, num_envs: int = 16, n_agents: int = 2, horizon: int = 4, n_cues: int = 2, seed: int = 0) -> None:
        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self.n_agents, self.horizon, self.n_cues = n_agents, horizon, n_cues
        self.group_map = {"agents": [f"agent_{i}" for i in range(n_agents)]}
        b, n = num_envs, n_agents
        self.observation_spec = Composite(
            agents=Composite(observation=Unbounded((b, n, n_cues + 1)), shape=(b, n)), shape=(b,))
        self.action_spec = Composite(agents=Composite(action=Categorical(n_cues, (b, n)), shape=(b, n)), shape=(b,))
        self.reward_spec = Composite(agents=Composite(reward=Unbounded((b, n, 1)), shape=(b, n)), shape=(b,))
        self.done_spec = Composite(
            done=Categorical(2, (b, 1), dtype=torch.bool), terminated=Categorical(2, (b, 1), dtype=torch.bool), shape=(b,))
        self.t = torch.zeros(b, dtype=torch.long)
        self.cue = torch.zeros(b, n, dtype=torch.long)
        self.rng = torch.Generator().manual_seed(seed)

    def current_observation(self) -> torch.Tensor:
        first = (self.t == 0).view(-1, 1, 1).float()
        cue = torch.nn.functional.one_hot(self.cue, self.n_cues).float() * first
        last = (self.t == self.horizon - 1).view(-1, 1, 1).float().expand(-1, self.n_agents, 1)
        return torch.cat([cue, last], -1)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = torch.ones(self.batch_size, dtype=torch.bool)
        if tensordict is not None and "_reset" in tensordict.keys():
            mask = tensordict.get("_reset").view(-1)
        self.t[mask] = 0
        self.cue[mask] = torch.randint(self.n_cues, (int(mask.sum()), self.n_agents), generator=self.rng)
        done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return self.make_output({"observation": self.current_observation()}, done)

    def make_output(self, agents: dict, done: torch.Tensor) -> TensorDictBase:
        group = TensorDict(agents, [*self.batch_size, self.n_agents])
        return TensorDict({"agents": group, "done": done, "terminated": done.clone()}, self.batch_size)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get(("agents", "action"))
        last = (self.t == self.horizon - 1).view(-1, 1)
        reward = ((action == self.cue) & last).float().unsqueeze(-1)
        self.t = self.t + 1
        done = (self.t >= self.horizon).view(-1, 1)
        return self.make_output({"observation": self.current_observation(), "reward": reward}, done)

    def _set_seed(self, seed: int | None) -> None:
        self.rng.manual_seed(seed or 0)
