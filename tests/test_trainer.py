"""The facade: evaluation uses the env it was given, loading a checkpoint writes nothing and leaves the config alone."""

import csv
import importlib
import json
import warnings

import pytest
import torch

from mappo_td import MAPPOTrainer, TrainConfig, make_env
from mappo_td.train import load_checkpoint
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
    cfg = small_config(env={"max_steps": 16}, experiment={"directory": str(tmp_path), "experiment_name": "run", "checkpoint_interval": 16})
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


def test_a_user_env_steps_as_many_envs_as_it_has(tmp_path):
    """The env given wins over cfg.env.num_envs (128 by default): the collector, the frames logged and config.json follow it."""
    from torchrl.envs.libs.vmas import VmasEnv

    env = VmasEnv("navigation", num_envs=4, n_agents=2, max_steps=None)
    cfg = TrainConfig.from_dict({"device": "cpu", "rollouts": 8, "timesteps": 16, "progress": False, "model": {"hidden_sizes": [16]},
                                 "experiment": {"directory": str(tmp_path), "experiment_name": "u", "write_interval": 8,
                                                "checkpoint_interval": 0}})
    t = MAPPOTrainer(cfg, env=env)
    assert t.collect().batch_size == torch.Size([4, 8]) and t.cfg.env.num_envs == 4
    t.train()
    rows = list(csv.DictReader((tmp_path / "u" / "progress.csv").open()))
    assert [(int(r["timestep"]), int(r["frames"])) for r in rows] == [(8, 32), (16, 64)]
    assert json.loads((tmp_path / "u" / "config.json").read_text())["env"]["num_envs"] == 4


def test_a_failing_evaluation_loses_neither_the_row_nor_a_checkpoint(tmp_path, monkeypatch):
    evaluation = importlib.import_module("mappo_td.train.evaluate")  # the module (mappo_td.train.evaluate is also the function)

    def broken(*args, **kwargs):
        raise RuntimeError("the renderer crashed")

    monkeypatch.setattr(evaluation, "evaluate", broken)
    t = MAPPOTrainer(small_config(timesteps=48, experiment={"directory": str(tmp_path), "experiment_name": "e", "eval_interval": 32,
                                                             "eval_episodes": 2, "eval_render": True}))
    with pytest.raises(RuntimeError, match="the renderer crashed"):
        t.train()
    run = tmp_path / "e"
    rows = list(csv.DictReader((run / "progress.csv").open()))
    assert [r["timestep"] for r in rows] == ["16", "32"] and rows[1]["eval/return_mean"] == "nan"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["agent_32.pt"]
    assert load_checkpoint(run / "checkpoints")["counters"]["timestep"] == 32
    assert not (run / "eval").exists()  # no empty folder for the GIF that was never written


def test_check_run_warns_when_checkpoints_cut_episodes_short_and_is_silent_by_default():
    from mappo_td.train.learner import check_run

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_run(TrainConfig(), torch.device("cpu"))  # checkpoint_interval 1000, 100-step episodes
    cfg = TrainConfig.from_dict({"rollouts": 8, "timesteps": 320, "experiment": {"checkpoint_interval": 150}})
    with pytest.warns(UserWarning) as caught:
        check_run(cfg, torch.device("cpu"))
    assert len(caught) == 1 and str(caught[0].message) == (
        "checkpoint_interval=150 is not a multiple of the episode length (100 steps): each checkpoint restarts every episode "
        "(so that a resumed run is exact), cutting the episodes running then short after 52 of their 100 steps (the rest of "
        "them is never played, and they do not count in reward/episode_mean). A multiple of 200 cuts none.")
