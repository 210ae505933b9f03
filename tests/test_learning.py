"""Short runs must learn: real VMAS navigation on CPU, a memory task only a recurrent policy can solve, a masked lure."""

import csv
from pathlib import Path

import pytest

from mappo_td.config import TrainConfig
from mappo_td.trainer import MAPPOTrainer
from tests.mask_env import LURE, LureEnv
from tests.memory_env import CueMemoryEnv


def test_short_navigation_run_raises_the_reward(tmp_path):
    cfg = TrainConfig.from_dict({
        "timesteps": 800, "device": "cpu", "progress": False, "seed": 0, "env": {"num_envs": 64},
        "experiment": {"directory": str(tmp_path), "experiment_name": "learn", "write_interval": 100},
    })
    summary = MAPPOTrainer(cfg).train()
    rows = list(csv.DictReader(open(Path(summary["run_dir"]) / "progress.csv")))
    rewards = [float(r["reward/episode_mean"]) for r in rows]
    assert len(rewards) == 8
    first, last = rewards[0], sum(rewards[-2:]) / 2
    assert last > first + 1.0, f"mean episode reward did not rise: {rewards}"


@pytest.mark.parametrize("body,low,high", [("gru", 0.9, 1.0), ("mlp", 0.35, 0.65)])
def test_only_the_recurrent_policy_remembers_the_cue(tmp_path, body, low, high):
    """Each agent sees a cue (1 of 2) at the first step only and must name it at the last (4th): memory or chance."""
    cfg = TrainConfig.from_dict({
        "timesteps": 480, "rollouts": 16, "data_chunk_length": 8, "learning_epochs": 4, "mini_batches": 2, "learning_rate": 3e-3,
        "device": "cpu", "progress": False, "seed": 0, "env": {"num_envs": 64, "max_steps": 4},
        "model": {"body": body, "hidden_sizes": [32], "rnn_hidden_size": 32},
        "experiment": {"directory": str(tmp_path), "write_interval": 480},
    })
    trainer = MAPPOTrainer(cfg, env=CueMemoryEnv(num_envs=64, horizon=4))
    trainer.train()
    success = trainer.evaluate(episodes=64)["return_mean"]  # the return is the success rate (reward 1 for the right cue)
    assert low <= success <= high, f"{body}: success {success:.2f} outside [{low}, {high}]"


@pytest.mark.parametrize("masks", [True, False])
def test_a_masked_policy_never_takes_the_lure_an_unmasked_one_learns_to(tmp_path, masks):
    """Action 3 pays the most but the env's action mask never allows it: masked, it is never taken (random exploration
    included); unmasked, the policy learns to take it."""
    env = LureEnv(num_envs=32, horizon=4)
    cfg = TrainConfig.from_dict({
        "timesteps": 160, "rollouts": 8, "learning_rate": 3e-3, "learning_epochs": 4, "mini_batches": 2, "random_timesteps": 8,
        "device": "cpu", "progress": False, "seed": 0, "model": {"action_masks": masks, "hidden_sizes": [32]},
        "experiment": {"directory": str(tmp_path), "write_interval": 160, "checkpoint_interval": 0},
    })
    trainer = MAPPOTrainer(cfg, env=env)
    trainer.train()
    during = env.taken.clone()
    env.taken.zero_()
    trainer.collect()  # the trained policy, sampling
    lure_share = float(env.taken[LURE]) / float(env.taken.sum())
    if masks:
        assert int(during[LURE]) == 0 and int(env.taken[LURE]) == 0, (during, env.taken)
        assert float(env.taken[0]) / float(env.taken.sum()) > 0.5  # it learned the best legal action instead
    else:
        assert lure_share > 0.9, f"unmasked policy takes the lure {lure_share:.2f} of the time"
