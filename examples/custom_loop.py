"""MAPPO from mappo_td's modules in a plain TorchRL loop, on VMAS navigation.

What a researcher would write to reuse the parts: TorchRL's VmasEnv (with a
StepCounter so time limits arrive as ``truncated``, not ``terminated``), a
Collector, a ReplayBuffer that yields minibatches without replacement,
and mappo_td's policy, centralized critic, GAE estimator and MAPPOLoss.

    python examples/custom_loop.py --iterations 10
"""

from __future__ import annotations

import argparse
import time

import torch
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import RewardSum, StepCounter, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv

from mappo_td import MAPPOLoss, make_critic, make_policy


def main(
    iterations: int = 10,
    n_envs: int = 32,
    max_steps: int = 100,
    epochs: int = 8,
    minibatch_size: int = 800,
    lr: float = 1e-3,
    hidden: int = 64,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Train for ``iterations`` iterations of ``n_envs × max_steps`` frames; return each one's mean episode reward."""
    torch.manual_seed(seed)
    base = VmasEnv("navigation", num_envs=n_envs, continuous_actions=True, max_steps=None, n_agents=3, device=device, seed=seed)
    env = TransformedEnv(base, StepCounter(max_steps=max_steps))  # time limit -> ("next", "truncated")
    env.append_transform(RewardSum(in_keys=[("agents", "reward")], out_keys=[("agents", "episode_reward")]))

    policy = make_policy(env.observation_spec, env.full_action_spec, "agents", hidden_sizes=(hidden, hidden), device=device)
    critic = make_critic(env.observation_spec, "agents", hidden_sizes=(hidden, hidden), device=device)  # centralized
    loss = MAPPOLoss(policy, critic, ratio_clip=0.2, entropy_loss_scale=0.0)
    loss.make_value_estimator(gamma=0.99, lmbda=0.95)
    optim = torch.optim.Adam(loss.parameters(), lr=lr)

    frames = n_envs * max_steps
    collector = Collector(
        env, policy, frames_per_batch=frames, total_frames=frames * iterations, device=device, auto_register_policy_transforms=False
    )
    buffer = ReplayBuffer(storage=LazyTensorStorage(frames, device=device), sampler=SamplerWithoutReplacement(), batch_size=minibatch_size)

    rewards = []
    for i, data in enumerate(collector):  # data: [n_envs, max_steps]
        t0 = time.perf_counter()
        loss.value_estimator(data)  # writes ("agents", "advantage") and ("agents", "value_target")
        buffer.extend(data.reshape(-1))
        for _ in range(epochs):
            for _ in range(frames // minibatch_size):
                out = loss(buffer.sample())
                total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                optim.zero_grad()
                total.backward()
                torch.nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                optim.step()
        collector.update_policy_weights_()
        done = data["next", "done"].squeeze(-1)
        episode_reward = data["next", "agents", "episode_reward"][done].mean()
        rewards.append(float(episode_reward))
        print(f"iter {i:3d}  mean episode reward {rewards[-1]:+.3f}  kl {float(out['kl_approx']):.4f}  update {time.perf_counter() - t0:.1f}s", flush=True)
    collector.shutdown()
    return rewards


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--n-envs", type=int, default=32)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    main(iterations=a.iterations, n_envs=a.n_envs, epochs=a.epochs, lr=a.lr, device=a.device)
