"""The agent driven by a plain PettingZoo loop, as a skrl user writes it: no TorchRL env, no trainer.

``num_envs`` copies of mpe2's ``simple_spread_v3`` (parallel API) are stepped one after another
in Python; their observations are stacked into ``[num_envs, ...]`` tensors per agent name, and
``mappo_td.agent.MAPPO`` is called exactly where skrl's ``SequentialTrainer`` calls its agent:
``pre_interaction``, ``act``, ``record_transition``, ``post_interaction`` (which updates every
``rollouts`` steps and writes the trainer's logs and checkpoints). At the end it prints the run folder
(a new temporary folder unless ``directory`` is given).

With ``--body gru`` the policy and the critic are GRUs (``cfg["model"]["body"] = "gru"``): the loop is the same,
the agent keeps each env's hidden states between ``act`` and ``record_transition`` and restarts them where an
episode ends; updates train on chunks of ``data_chunk_length`` = 25 steps (here a whole episode).

    python examples/skrl_style_loop.py --timesteps 5000
    python examples/skrl_style_loop.py --timesteps 5000 --body gru
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

from mappo_td.agent import MAPPO


def main(timesteps: int = 5000, num_envs: int = 8, n_agents: int = 3, seed: int = 0, directory: str | None = None,
         body: str = "mlp") -> list[float]:
    """Train (``body``: ``"mlp"`` or ``"gru"``); return every finished episode's return (mean over agents), in order, and
    print the run folder."""
    from mpe2 import simple_spread_v3

    torch.manual_seed(seed)
    envs = [simple_spread_v3.parallel_env(N=n_agents, max_cycles=25, continuous_actions=False) for _ in range(num_envs)]
    names = envs[0].possible_agents
    cfg = {"rollouts": 25, "learning_epochs": 8, "mini_batches": 2, "learning_rate": 1e-3, "entropy_loss_scale": 0.01,
           "seed": seed, "experiment": {"directory": directory or tempfile.mkdtemp(), "write_interval": 1000, "checkpoint_interval": 0},
           "model": {"body": body}, "data_chunk_length": 25}  # GRU: chunks of 25 steps (rollouts = one episode here)
    agent = MAPPO(names, observation_spaces={a: envs[0].observation_space(a) for a in names},
                  action_spaces={a: envs[0].action_space(a) for a in names}, device="cpu", cfg=cfg, num_envs=num_envs)
    agent.init()

    def stack(per_env: list[dict]) -> dict[str, torch.Tensor]:
        return {a: torch.as_tensor(np.stack([d[a] for d in per_env])) for a in names}

    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    ep_return = np.zeros(num_envs)
    returns: list[float] = []
    for t in range(timesteps):
        agent.pre_interaction(t, timesteps)
        states = stack(obs)
        actions, _, _ = agent.act(states, t, timesteps)
        results = [env.step({a: int(actions[a][i]) for a in names}) for i, env in enumerate(envs)]
        next_obs, rewards, terms, truncs = ([r[k] for r in results] for k in range(4))
        to = {a: torch.tensor([[float(r[a])] for r in rewards]) for a in names}
        flags = [{a: torch.tensor([[bool(f[a])] for f in fs]) for a in names} for fs in (terms, truncs)]
        agent.record_transition(states, actions, to, stack(next_obs), *flags, {}, t, timesteps)
        agent.post_interaction(t, timesteps)
        ep_return += np.mean([[r[a] for a in names] for r in rewards], axis=1)
        for i, env in enumerate(envs):
            if all(terms[i][a] or truncs[i][a] for a in names):
                returns.append(float(ep_return[i]))
                ep_return[i] = 0.0
                next_obs[i] = env.reset()[0]
        obs = next_obs
        if (t + 1) % 500 == 0 and returns:
            print(f"timestep {t + 1:6d}  episodes {len(returns):5d}  mean return (last 20) {np.mean(returns[-20:]):+.2f}", flush=True)
    print(f"run folder (config, progress.csv, TensorBoard): {agent.logger.run_dir}", flush=True)
    return returns


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=5000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--n-agents", type=int, default=3)
    p.add_argument("--body", choices=["mlp", "gru"], default="mlp", help="the networks: MLPs, or GRUs (recurrent)")
    a = p.parse_args()
    main(timesteps=a.timesteps, num_envs=a.num_envs, n_agents=a.n_agents, body=a.body)
