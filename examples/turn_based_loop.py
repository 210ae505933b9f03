"""A turn-based board game with legal-action masks, driven through the agent (``mappo_td.agent.MAPPO``) from a plain loop.

PettingZoo's classic games (``connect_four_v3``, ``tictactoe_v3``) use the AEC API: one player moves per
step. :class:`TurnBased` (below, ~20 lines) presents one game as the agent sees every env: each step gives
every player's observation as PettingZoo makes it, a dict ``{"observation", "action_mask"}``. The player
whose turn it is finds its legal moves in ``"action_mask"``; the other gets an all-zero mask, so it does
not act at that step (the agent's alive mask is false there: its waiting steps reach no loss). Only the
mover's action is played. Both players are one agent group (self-play with shared parameters).

The agent reads each player's mask from its Dict observation (an ``act(..., infos=...)`` or
``act(..., action_masks=...)`` argument would take precedence), never samples an illegal move, stores
the mask with the step, and its loss recomputes log-probabilities under it. The loop counts illegal
moves (0) and the games each player won. Needs pygame (``pip install pygame-ce``), which PettingZoo's
classic games import when they load.

    python examples/turn_based_loop.py --games 200 --game tictactoe_v3
"""

from __future__ import annotations

import argparse
import importlib
import tempfile

import numpy as np
import torch

from mappo_td.agent import MAPPO


class TurnBased:
    """One AEC game as a step of every player: ``reset()`` and ``step(actions)`` give every player's observation
    (``{"observation", "action_mask"}``); ``step`` plays the mover's action only and says whether it was illegal."""

    def __init__(self, game) -> None:
        self.game, self.agents = game, list(game.possible_agents)

    def observe(self) -> dict:
        return {a: self.game.observe(a) for a in self.agents}

    def reset(self, seed: int | None = None) -> dict:
        self.game.reset(seed=seed)
        return self.observe()

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, bool]:
        """``(states, rewards, terminated, truncated, illegal)`` after the mover plays ``actions[mover]``."""
        mover = self.game.agent_selection
        move = int(actions[mover])
        illegal = not bool(self.game.observe(mover)["action_mask"][move])
        self.game.step(move)
        g = self.game
        return (self.observe(), {a: float(g.rewards[a]) for a in self.agents}, {a: bool(g.terminations[a]) for a in self.agents},
                {a: bool(g.truncations[a]) for a in self.agents}, illegal)


def stack(per_env: list[dict], names: list[str]) -> dict:
    """Every env's dict by agent name as one dict of ``[num_envs, ...]`` tensors (Dict observations key by key)."""
    return {a: {k: torch.as_tensor(np.stack([d[a][k] for d in per_env])) for k in per_env[0][a]} if isinstance(per_env[0][a], dict)
            else torch.as_tensor(np.stack([d[a] for d in per_env])).reshape(len(per_env), -1) for a in names}


def main(games: int = 200, num_envs: int = 8, game: str = "connect_four_v3", seed: int = 0, directory: str | None = None,
         masked: bool = True) -> dict:
    """Self-play until ``games`` games have ended; return the counts: games, moves, illegal moves (0), options the masks
    forbade the movers, and each player's wins. ``masked=False`` builds the policy without masks (to see it move illegally)."""
    module = importlib.import_module(f"pettingzoo.classic.{game}")
    torch.manual_seed(seed)
    envs = [TurnBased(module.env()) for _ in range(num_envs)]
    names, raw = envs[0].agents, envs[0].game
    cfg = {"rollouts": 16, "learning_epochs": 4, "mini_batches": 2, "entropy_loss_scale": 0.01, "seed": seed,
           "experiment": {"directory": directory or tempfile.mkdtemp(), "write_interval": 1000, "checkpoint_interval": 0}}
    agent = MAPPO(names, observation_spaces={a: raw.observation_space(a) for a in names},
                  action_spaces={a: raw.action_space(a) for a in names}, device="cpu", cfg=cfg, num_envs=num_envs,
                  action_masks=None if masked else False)
    obs = [env.reset(seed=seed + i) for i, env in enumerate(envs)]
    out = {"games": 0, "moves": 0, "illegal": 0, "forbidden": 0, "wins": dict.fromkeys(names, 0)}
    t, bound = 0, games * 100  # timesteps: an upper bound, far above what the games take
    while out["games"] < games:
        states = stack(obs, names)
        actions, _, _ = agent.act(states, t, bound)
        results = [env.step({a: actions[a][i] for a in names}) for i, env in enumerate(envs)]
        next_obs, rewards, terms, truncs, illegal = (list(r) for r in zip(*results))
        to = lambda dicts: {a: torch.tensor([[d[a]] for d in dicts]) for a in names}  # noqa: E731
        agent.record_transition(states, actions, to(rewards), stack(next_obs, names), to(terms), to(truncs), {}, t, bound)
        agent.post_interaction(t, bound)
        out["moves"] += num_envs
        out["illegal"] += sum(illegal)
        out["forbidden"] += int(sum((1 - states[a]["action_mask"]).sum(-1)[states[a]["action_mask"].any(-1)].sum() for a in names))
        for i, env in enumerate(envs):
            if all(terms[i][a] or truncs[i][a] for a in names):
                out["games"] += 1
                out["wins"] = {a: out["wins"][a] + (rewards[i][a] > 0) for a in names}
                next_obs[i] = env.reset()
        obs, t = next_obs, t + 1
    print(f"{out['games']} games, {out['moves']} moves, {out['illegal']} illegal, wins {out['wins']}", flush=True)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", type=int, default=200)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--game", default="connect_four_v3", choices=["connect_four_v3", "tictactoe_v3"])
    a = p.parse_args()
    main(games=a.games, num_envs=a.num_envs, game=a.game)
