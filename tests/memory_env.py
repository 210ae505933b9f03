"""A memory task as a small TorchRL multi-agent env: remember a cue seen once, act on it at the end.

Each agent sees a random cue (one of ``n_cues``, one-hot) at the first step of an episode
only; later steps show zeros and a flag on the last step. At the last step an agent is
rewarded 1 if its action equals its cue. An episode's return is its success (0 or 1), so a
policy without memory scores ``1 / n_cues`` on average. With ``cue_always`` the cue is shown at every step (no memory
needed: the control that a feed-forward policy learns it).
"""

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Categorical, Composite, Unbounded
from torchrl.envs import EnvBase


class CueMemoryEnv(EnvBase):
    def __init__(self, num_envs: int = 16, n_agents: int = 2, horizon: int = 4, n_cues: int = 2, seed: int = 0,
                 cue_always: bool = False) -> None:
        super().__init__(batch_size=torch.Size([num_envs]), device="cpu")
        self.cue_always = cue_always
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
        first = (self.t == 0).view(-1, 1, 1).float() if not self.cue_always else torch.ones(self.t.shape[0], 1, 1)
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


class CueRecallTask:
    """The same task for a plain loop (no TorchRL), over dicts of tensors by agent name, as the agent API takes them.

    Every env runs episodes of ``horizon`` steps in lockstep: :meth:`step` returns ``(next_states, rewards, terminated,
    truncated)`` (``terminated`` at each episode's last step), then :meth:`observe` gives the states to act on next
    (a new episode's first, with a new cue, where one ended). ``returns`` collects each finished episode's success.
    """

    def __init__(self, num_envs: int = 64, n_agents: int = 2, horizon: int = 4, n_cues: int = 2, seed: int = 0,
                 cue_always: bool = False) -> None:
        self.env = CueMemoryEnv(num_envs, n_agents, horizon, n_cues, seed, cue_always)
        self.names = self.env.group_map["agents"]
        self.state = self.env.reset()
        self.returns: list[float] = []

    def per_agent(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {a: x[:, i] for i, a in enumerate(self.names)}

    def observe(self) -> dict[str, torch.Tensor]:
        return self.per_agent(self.state.get(("agents", "observation")))

    def step(self, actions: dict[str, torch.Tensor]) -> tuple[dict, dict, dict, dict]:
        action = torch.stack([actions[a].reshape(-1) for a in self.names], 1)
        out = self.env.step(self.state.set(("agents", "action"), action)).get("next")
        reward, done = out.get(("agents", "reward")), out.get("done")
        if bool(done.any()):
            self.returns += reward[done.view(-1)].mean(dim=(1, 2)).tolist()  # the success rate of each env's agents
            self.state = self.env.reset()
        else:
            self.state = out
        flags = done.expand(-1, len(self.names)).unsqueeze(-1)
        return (self.per_agent(out.get(("agents", "observation"))), self.per_agent(reward), self.per_agent(flags),
                self.per_agent(torch.zeros_like(flags)))
