"""BatchedPettingZooEnv against TorchRL's SerialEnv(PettingZooWrapper): the same tensors, through resets and deaths;
its worker pool gives the same rows as stepping in this process, and a dead worker is a clear error."""

import os
import signal

import pytest
import torch

pytest.importorskip("mpe2")
from torchrl.envs import PettingZooWrapper, SerialEnv  # noqa: E402

from mappo_td.batched_pettingzoo import BatchedPettingZooEnv  # noqa: E402
from mappo_td.pettingzoo_pool import WorkerError  # noqa: E402


def _task(name):
    if name == "knights_archers_zombies_v11":
        from pettingzoo.butterfly import knights_archers_zombies_v11 as mod

        return lambda: mod.parallel_env(max_cycles=40)
    import importlib

    mod = importlib.import_module(f"mpe2.{name}")
    return lambda: mod.parallel_env(continuous_actions=False, max_cycles=10)


def _rollout(env, steps, groups, seed=3):
    """``steps`` steps of seeded random legal-or-not actions (the same draws for every env given), through resets."""
    g = torch.Generator().manual_seed(seed)
    spec = env.full_action_spec

    def policy(td):
        for group in groups:
            s = spec[group, "action"]
            td.set((group, "action"), torch.randint(0, s.space.n, s.shape, generator=g))
        return td

    env.set_seed(7)
    return env.rollout(steps, policy, break_when_any_done=False)


@pytest.mark.parametrize("task,steps", [("simple_spread_v3", 25), ("simple_speaker_listener_v4", 25),
                                        ("knights_archers_zombies_v11", 60)])
def test_equals_torchrl_serial_env(task, steps):
    make = _task(task)
    ref = SerialEnv(3, lambda: PettingZooWrapper(make(), categorical_actions=True, use_mask=True))
    env = BatchedPettingZooEnv(make, 3)
    for spec in ("observation_spec", "full_action_spec", "full_reward_spec", "full_done_spec"):
        assert getattr(env, spec) == getattr(ref, spec), spec
    assert env.group_map == PettingZooWrapper(make(), use_mask=True).group_map
    a, b = _rollout(ref, steps, env.group_map), _rollout(env, steps, env.group_map)
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert torch.equal(a[key], b[key]), key
    assert a["next", "done"].any(), "the rollout must cross episode ends"
    if task == "knights_archers_zombies_v11":
        group = next(iter(env.group_map))
        assert not a["next", group, "mask"].all(), "agents must die in this rollout"
    ref.close()
    env.close()


def test_worker_pool_gives_the_rows_of_one_process():
    make = _task("simple_speaker_listener_v4")
    one, pool = BatchedPettingZooEnv(make, 5), BatchedPettingZooEnv(make, 5, num_workers=2)
    assert [len(s) for s in pool.pool.shares] == [2, 3]
    a, b = _rollout(one, 25, one.group_map), _rollout(pool, 25, one.group_map)
    for key in a.keys(True, True):
        assert torch.equal(a[key], b[key]), key
    pool.close()


def test_a_dead_worker_is_a_clear_error():
    env = BatchedPettingZooEnv(_task("simple_spread_v3"), 4, num_workers=2)
    env.set_seed(0)
    td = env.reset()
    os.kill(env.pool.processes[1].pid, signal.SIGKILL)
    env.pool.processes[1].join(timeout=10)
    td["agent", "action"] = torch.zeros(4, 3, dtype=torch.long)
    with pytest.raises(WorkerError, match=r"worker 1 \(envs 2\.\.3\) died with exit code -9 during 'step'"):
        env.step(td)


def test_more_workers_than_envs_is_refused():
    with pytest.raises(ValueError, match=r"num_workers must be between 1 and num_envs \(2\), got 3"):
        BatchedPettingZooEnv(_task("simple_spread_v3"), 2, num_workers=3)
