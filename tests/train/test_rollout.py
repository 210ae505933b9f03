"""The lean rollout (TensorRollout) against TorchRL's Collector: the same tensors, key for key, through resets, deaths,
random first actions, GRU states and a worker pool; where it does not apply the trainer keeps TorchRL's collector."""

import pytest
import torch

pytest.importorskip("mpe2")
from torchrl.collectors import Collector  # noqa: E402

from mappo_td import TrainConfig  # noqa: E402
from mappo_td.config import merge_config, preset  # noqa: E402
from mappo_td.train import build_learner, collect  # noqa: E402
from mappo_td.train.rollout import TensorRollout  # noqa: E402


def _config(scenario, rollouts=7, max_steps=10, paper=False, **extra):
    d = {"device": "cpu", "seed": 3, "rollouts": rollouts,
         "env": {"backend": "pettingzoo", "scenario": scenario, "num_envs": 3, "max_steps": max_steps}}
    if scenario.startswith("simple"):
        d["env"]["continuous_actions"] = False
    d = merge_config(d, extra)
    if paper:
        d = merge_config(preset("mappo-paper"), merge_config(d, {"mappo": {"rollouts": rollouts, "data_chunk_length": rollouts}}))
    return TrainConfig.from_dict(d)


def _pair(cfg):
    """Two learners from ``cfg``: the trainer's (the lean rollout) and one collecting with TorchRL's Collector."""
    lean, ref = build_learner(cfg), build_learner(cfg)
    assert isinstance(lean.collector, TensorRollout)
    ref.collector = Collector(ref.env, ref.acting, frames_per_batch=cfg.frames_per_iteration, total_frames=-1,
                              device=ref.device, auto_register_policy_transforms=False, trust_policy=True)
    return lean, ref


@pytest.mark.parametrize("scenario,paper,extra", [
    ("simple_spread_v3", True, {"random_timesteps": 10}),  # GRU policy and critic states, random first actions
    ("simple_spread_v3", False, {}),
    ("simple_speaker_listener_v4", False, {}),  # two groups of different shapes
    ("simple_spread_v3", False, {"env": {"num_workers": 2}}),  # the worker pool
])
def test_equals_torchrl_collector(scenario, paper, extra):
    lean, ref = _pair(_config(scenario, paper=paper, **extra))
    ended = False
    for r in range(4):  # 28 steps: episodes of 10 end inside rollouts
        torch.manual_seed(r)
        a = collect(ref).exclude("collector")
        torch.manual_seed(r)
        b = collect(lean)
        assert set(a.keys(True, True)) == set(b.keys(True, True))
        for key in a.keys(True):
            assert getattr(a.get(key), "batch_size", None) == getattr(b.get(key), "batch_size", None), key
        for key in a.keys(True, True):
            assert torch.equal(a[key], b[key]), (r, key)
        ended |= bool(a["next", "done"].any())
    assert ended, "the rollouts must cross episode ends"


def test_equals_torchrl_collector_where_agents_die():
    lean, ref = _pair(_config("knights_archers_zombies_v11", rollouts=30, max_steps=40))
    seen_dead = False
    for r in range(2):
        torch.manual_seed(r)
        a = collect(ref).exclude("collector")
        torch.manual_seed(r)
        b = collect(lean)
        for key in a.keys(True, True):
            assert torch.equal(a[key], b[key]), (r, key)
        seen_dead |= not bool(a["next", next(iter(lean.group_map)), "mask"].all())
    assert seen_dead, "agents must die in these rollouts"


def test_after_reset_the_next_rollout_starts_new_episodes():
    lean, ref = _pair(_config("simple_spread_v3"))
    for learner in (lean, ref):
        torch.manual_seed(0)
        collect(learner)
        learner.collector.reset()
    torch.manual_seed(1)
    a = collect(ref).exclude("collector")
    torch.manual_seed(1)
    b = collect(lean)
    assert bool(b["step_count"][:, 0].eq(0).all())
    for key in a.keys(True, True):
        assert torch.equal(a[key], b[key]), key


def test_torchrl_collector_is_kept_where_the_lean_rollout_does_not_apply():
    vmas = build_learner(TrainConfig.from_dict({"device": "cpu", "env": {"num_envs": 2}}))
    assert isinstance(vmas.collector, Collector)
    lean, why = TensorRollout.of(vmas.env, vmas.acting, steps=4)
    assert lean is None and "BatchedPettingZooEnv" in why
