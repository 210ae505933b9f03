"""skrl's interval semantics through the agent: write_interval 0 is off, "auto" follows init(trainer_cfg)'s timesteps."""

import copy
import csv

import gymnasium as gym
import torch

from mappo_td.agent import MAPPO
from tests.test_config import SEED  # skrl's MAPPO_DEFAULT_CONFIG, verbatim

NAMES = ["agent_0", "agent_1"]


def make_agent(experiment, **cfg):
    d = copy.deepcopy(SEED)
    d.update(rollouts=4, **cfg)
    d["experiment"].update(experiment)
    return MAPPO(NAMES, observation_spaces={a: (3,) for a in NAMES}, action_spaces={a: gym.spaces.Discrete(2) for a in NAMES},
                 device="cpu", cfg=d, num_envs=2)


def feed(agent, steps):
    for t in range(steps):
        s = {a: torch.rand(2, 3) for a in NAMES}
        actions, _, _ = agent.act(s, t, steps)
        done = {a: torch.full((2, 1), t % 3 == 2) for a in NAMES}
        agent.record_transition(s, actions, {a: torch.ones(2, 1) for a in NAMES}, s, done, done, {}, t, steps)
        agent.post_interaction(t, steps)


def test_skrl_default_config_with_write_interval_0_trains_and_writes_no_rows(tmp_path):
    agent = make_agent({"directory": str(tmp_path), "experiment_name": "off", "write_interval": 0})
    agent.init({"timesteps": 8})
    feed(agent, 8)
    run = tmp_path / "off"
    assert agent.learner.updates == 2 * 8 * 2  # two updates of 8 epochs x 2 minibatches
    assert not (run / "tensorboard").exists() and not (run / "progress.csv").exists()
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == ["agent_8.pt"]  # the run's last (checkpoint_interval 1000)
    assert agent.session.last_row["timestep"] == 8 and agent.session.last_row["reward/episode_mean"] == 3.0  # computed, not written


def test_auto_intervals_follow_the_trainers_timesteps_as_in_skrl(tmp_path):
    agent = make_agent({"directory": str(tmp_path), "experiment_name": "auto", "write_interval": "auto", "checkpoint_interval": "auto"})
    assert (agent.cfg.mappo.experiment.write_interval, agent.cfg.mappo.experiment.checkpoint_interval) == (40, 400)  # 4000 // 100
    agent.init({"timesteps": 800})  # skrl's trainer passes its cfg: int(800 / 100) = 8, int(800 / 10) = 80
    assert (agent.learner.cfg.mappo.experiment.write_interval, agent.learner.cfg.mappo.experiment.checkpoint_interval) == (8, 80)
    feed(agent, 16)
    assert [int(r["timestep"]) for r in csv.DictReader(open(tmp_path / "auto" / "progress.csv"))] == [8, 16]
    short = make_agent({"directory": str(tmp_path), "experiment_name": "short", "write_interval": "auto", "checkpoint_interval": 12})
    short.init({"timesteps": 99})  # int(99 / 100) = 0: off; a number given stays
    assert (short.cfg.mappo.experiment.write_interval, short.cfg.mappo.experiment.checkpoint_interval) == (0, 12)
