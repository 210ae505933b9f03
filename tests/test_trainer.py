"""The facade: evaluation uses the env it was given, loading a checkpoint writes nothing and leaves the config alone."""

import torch

from mappo_td import MAPPOTrainer, TrainConfig, make_env
from tests.helpers import small_config


def test_evaluate_uses_the_env_given_to_the_constructor():
    cfg = small_config()
    env = make_env(cfg.env, "cpu", seed=5, num_envs=3)
    calls = []
    rollout = env.rollout

    def counting(*args, **kwargs):
        calls.append(kwargs.get("policy", args[1] if len(args) > 1 else None))
        return rollout(*args, **kwargs)

    env.rollout = counting
    t = MAPPOTrainer(cfg, env=env)
    result = t.evaluate(episodes=3)
    assert len(calls) == 1 and result["episodes"] == 3.0  # one rollout of the given env's 3 copies
    own = MAPPOTrainer(cfg).evaluate(episodes=3)  # without one: a fresh env from the config
    assert own["episodes"] == 3.0 and len(calls) == 1


def test_from_checkpoint_writes_nothing_and_keeps_the_config(tmp_path):
    cfg = small_config(experiment={"directory": str(tmp_path), "experiment_name": "run", "checkpoint_interval": 16})
    MAPPOTrainer(cfg).train()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")}
    t = MAPPOTrainer.from_checkpoint(tmp_path / "run" / "checkpoints", {"timesteps": 64})
    t.evaluate(episodes=2)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").rglob("*")} == before
    assert t.cfg.mappo.experiment == cfg.mappo.experiment and t.cfg.timesteps == 64
    assert t.run_dir == tmp_path / "run" and t.timestep == 32


def test_public_views_follow_the_learner():
    t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 4, "timesteps": 8, "progress": False,
                                            "env": {"num_envs": 2}, "experiment": {"checkpoint_interval": 0}}))
    assert t.groups is t.learner.groups and t.env is t.learner.env
    t.learner.timestep = 5
    assert t.timestep == 5
    data = t.collect()
    assert data.batch_size == torch.Size([2, 4])
