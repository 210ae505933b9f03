"""Small configurations shared by the trainer tests."""

import tempfile

from mappo_td.config import TrainConfig


def small_config(**overrides) -> TrainConfig:
    d = {
        "timesteps": 32, "rollouts": 16, "learning_epochs": 2, "mini_batches": 2, "device": "cpu", "progress": False, "seed": 0,
        "env": {"num_envs": 8, "max_steps": 20},
        "model": {"hidden_sizes": [16]},
        "experiment": {"directory": tempfile.mkdtemp(), "experiment_name": "t", "write_interval": 16, "checkpoint_interval": 0},
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return TrainConfig.from_dict(d)
