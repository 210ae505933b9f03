"""Recurrent MAPPO from mappo_td's modules in a plain TorchRL loop, on VMAS navigation.

The GRU policy and centralized GRU critic (``body="gru"``) read ``"is_init"`` (TorchRL's
``InitTracker``) and their hidden states, which a ``TensorDictPrimer`` (``make_tensordict_primer``)
adds to the env so that the Collector carries them from step to step. Training cuts each
env's rollout into chunks of ``chunk`` consecutive steps (``mappo_td.train.chunks``) and
samples whole chunks with TorchRL's ReplayBuffer; under ``set_recurrent_mode(True)`` the
networks replay each chunk from the state stored at its first step.

    python examples/recurrent_loop.py --iterations 10
"""

from __future__ import annotations

import argparse
import time

import torch
from tensordict.nn import TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
from torchrl.envs import InitTracker, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import set_recurrent_mode

from mappo_td import MAPPOLoss, make_critic, make_policy, make_tensordict_primer
from mappo_td.train import chunks


def main(
    iterations: int = 10,
    n_envs: int = 32,
    max_steps: int = 100,
    chunk: int = 10,
    epochs: int = 4,
    minibatch_chunks: int = 80,
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
    env.append_transform(InitTracker())  # "is_init": True at an episode's first step, where the GRU states restart

    gru = dict(body="gru", rnn_hidden_size=hidden, hidden_sizes=(hidden,), device=device)
    policy = make_policy(env.observation_spec, env.full_action_spec, "agents", **gru)
    critic = make_critic(env.observation_spec, "agents", **gru)  # centralized, one team state
    env.append_transform(make_tensordict_primer(policy, critic, batch_size=env.batch_size))  # zero states at reset
    loss = MAPPOLoss(policy, critic, ratio_clip=0.2, entropy_loss_scale=0.0)
    loss.make_value_estimator(gamma=0.99, lmbda=0.95)  # runs the GRU critic along each rollout, and one step on "next"
    optim = torch.optim.Adam(loss.parameters(), lr=lr)

    frames = n_envs * max_steps
    # the critic steps along with the policy, so that its state too is stored for every step
    collector = Collector(env, TensorDictSequential(policy, critic), frames_per_batch=frames, total_frames=frames * iterations,
                          device=device, auto_register_policy_transforms=False)
    n_chunks = frames // chunk
    buffer = ReplayBuffer(storage=LazyTensorStorage(n_chunks, device=device), sampler=SamplerWithoutReplacement(),
                          batch_size=minibatch_chunks)

    rewards = []
    for i, data in enumerate(collector):  # data: [n_envs, max_steps], with the states each step started from
        t0 = time.perf_counter()
        loss.value_estimator(data)  # ("agents", "advantage"), ("agents", "value_target")
        buffer.extend(chunks(data.exclude("next"), chunk))  # [n_chunks, chunk]: whole chunks of consecutive steps
        with set_recurrent_mode(True):
            for _ in range(epochs):
                for _ in range(n_chunks // minibatch_chunks):
                    out = loss(buffer.sample())
                    total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
                    optim.zero_grad()
                    total.backward()
                    torch.nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
                    optim.step()
        collector.update_policy_weights_()
        done = data["next", "done"].squeeze(-1)
        rewards.append(float(data["next", "agents", "episode_reward"][done].mean()))
        print(f"iter {i:3d}  mean episode reward {rewards[-1]:+.3f}  kl {float(out['kl_approx']):.4f}  update {time.perf_counter() - t0:.1f}s", flush=True)
    collector.shutdown()
    return rewards


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--n-envs", type=int, default=32)
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    main(iterations=a.iterations, n_envs=a.n_envs, chunk=a.chunk, epochs=a.epochs, lr=a.lr, device=a.device)
