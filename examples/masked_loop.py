"""Masked MAPPO from mappo_td's modules in a plain TorchRL loop, on PettingZoo's connect_four_v3 (self-play).

What a TorchRL user writes to train on a turn-based game with legal-action masks:
TorchRL's ``PettingZooWrapper(..., use_mask=True)`` gives each player's group
``(player_i, "action_mask")`` (which columns are open) and ``(player_i, "mask")``
(whose turn it is). ``make_policy`` finds the action mask in the spec and builds a
``MaskedCategorical`` policy (illegal columns get probability 0 when acting, in the
loss's recomputed log-probabilities and in the entropy); ``MAPPOLoss`` and ``MAPPOGAE``
read ``(player_i, "mask")`` as the alive mask, so a player's waiting steps reach no loss
and no advantage statistics. Besides mappo_td, needs pygame (``pip install pygame-ce``, the build
``pettingzoo[classic]`` installs): PettingZoo's connect_four_v3 imports it when it loads, although only
rendering uses it; the rest of that extra (chess, rlcard, shimmy, open_spiel) is not needed.

    python examples/masked_loop.py --iterations 10
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torchrl.collectors import Collector
from torchrl.envs import PettingZooWrapper, RewardSum, SerialEnv, TransformedEnv

from mappo_td import MAPPOLoss, make_critic, make_policy


def make_env(n_envs: int) -> TransformedEnv:
    try:
        from pettingzoo.classic import connect_four_v3
    except ModuleNotFoundError as err:
        if err.name != "pygame":
            raise
        raise ModuleNotFoundError("PettingZoo's connect_four_v3 imports pygame when it loads (only rendering uses it): "
                                  "pip install pygame-ce", name="pygame") from None

    warnings.filterwarnings("ignore", message="PettingZoo in TorchRL is tested using version")  # mappo_td tests 1.27
    env = SerialEnv(n_envs, lambda: PettingZooWrapper(connect_four_v3.env(), categorical_actions=True, use_mask=True))
    players = ["player_0", "player_1"]
    return TransformedEnv(env, RewardSum(in_keys=[(p, "reward") for p in players], out_keys=[(p, "episode_reward") for p in players]))


def main(iterations: int = 10, n_envs: int = 8, steps: int = 64, epochs: int = 4, lr: float = 1e-3, seed: int = 0) -> dict:
    """Train both players; return the count of illegal moves (0), of moves the mask forbade, and each player's wins."""
    torch.manual_seed(seed)
    env = make_env(n_envs)
    env.set_seed(seed)
    players = ["player_0", "player_1"]
    losses, policies = {}, {}
    for p in players:
        policies[p] = make_policy(env.observation_spec, env.full_action_spec, p, hidden_sizes=(64, 64))  # reads (p, "action_mask")
        critic = make_critic(env.observation_spec, p, centralized=False, hidden_sizes=(64, 64))
        losses[p] = MAPPOLoss(policies[p], critic, group=p, entropy_loss_scale=0.01)  # reads (p, "mask") as the alive mask
        losses[p].make_value_estimator(gamma=0.99, lmbda=0.95)
    optim = torch.optim.Adam([q for p in players for q in losses[p].parameters()], lr=lr)

    def act(td):
        for p in players:
            policies[p](td)
        return td

    collector = Collector(env, act, frames_per_batch=n_envs * steps, total_frames=n_envs * steps * iterations)
    illegal = forbidden = 0
    wins = {p: 0 for p in players}
    for i, data in enumerate(collector):  # [n_envs, steps]
        for p in players:
            moving = data[p, "mask"]  # whose turn it was
            legal = data[p, "action_mask"]
            illegal += int((~legal.gather(-1, data[p, "action"].unsqueeze(-1)).squeeze(-1))[moving].sum())
            forbidden += int((~legal)[moving].sum())
            wins[p] += int((data["next", p, "reward"] > 0).sum())
            losses[p].value_estimator(data)
        flat = data.reshape(-1)
        for _ in range(epochs):
            total = 0
            for p in players:
                out = losses[p](flat)
                total = total + out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
            optim.zero_grad()
            total.backward()
            optim.step()
        print(f"iter {i:3d}  illegal moves {illegal}  forbidden columns seen {forbidden}  wins {wins}", flush=True)
    collector.shutdown()
    return {"illegal": illegal, "forbidden": forbidden, "wins": wins}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--n-envs", type=int, default=8)
    a = p.parse_args()
    main(iterations=a.iterations, n_envs=a.n_envs)
