"""A short real VMAS navigation run on CPU must learn."""

import csv
from pathlib import Path

from mappo_td.config import TrainConfig
from mappo_td.trainer import MAPPOTrainer


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
