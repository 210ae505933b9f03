"""Minibatches: whole epochs without replacement, equal sizes, on the data's device; whole chunks for recurrent models."""

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules import set_recurrent_mode

from mappo_td import MAPPOTrainer
from mappo_td.train import chunks, collect, compute_advantages, minibatches
from tests.helpers import small_config


@pytest.mark.parametrize("n,k", [(96, 4), (100, 3), (7, 7)])
def test_each_epoch_covers_distinct_frames_in_equal_minibatches(n, k):
    data = TensorDict({"x": torch.arange(n)}, [n])
    torch.manual_seed(0)
    parts = list(minibatches(data, k))
    assert [len(p) for p in parts] == [n // k] * k
    seen = torch.cat([p["x"] for p in parts])
    assert len(set(seen.tolist())) == k * (n // k)  # no frame twice; the remainder (n mod k) is left out
    if n % k == 0:
        assert sorted(seen.tolist()) == list(range(n))  # every frame exactly once
    again = torch.cat([p["x"] for p in minibatches(data, k)])
    assert not torch.equal(seen, again)  # a fresh permutation each epoch


def test_minibatches_are_reproducible_from_the_torch_seed():
    data = TensorDict({"x": torch.arange(50)}, [50])
    torch.manual_seed(3)
    a = [p["x"] for p in minibatches(data, 5)]
    torch.manual_seed(3)
    b = [p["x"] for p in minibatches(data, 5)]
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_bad_inputs():
    with pytest.raises(ValueError, match="needs a flat batch"):
        next(minibatches(TensorDict({"x": torch.zeros(4, 5, 2)}, [4, 5, 2]), 2))
    with pytest.raises(ValueError, match="must divide"):
        chunks(TensorDict({"x": torch.zeros(4, 6)}, [4, 6]), 4)
    with pytest.raises(ValueError, match="larger than the batch \\(3 chunks\\)"):
        next(minibatches(chunks(TensorDict({"x": torch.zeros(1, 6)}, [1, 6]), 2), 4))
    with pytest.raises(ValueError, match="larger than the batch"):
        next(minibatches(TensorDict({"x": torch.zeros(3)}, [3]), 4))


def test_sequence_minibatches_are_whole_chunks_covering_every_step_once():
    envs, steps, length, k = 6, 12, 4, 3
    t = torch.arange(steps).expand(envs, steps)
    env = torch.arange(envs).unsqueeze(-1).expand(envs, steps)
    data = TensorDict({"t": t, "env": env}, [envs, steps])
    torch.manual_seed(0)
    parts = list(minibatches(chunks(data, length), k))
    assert [p.batch_size for p in parts] == [torch.Size([envs * steps // length // k, length])] * k
    for p in parts:  # consecutive steps of one env, starting on a chunk boundary
        assert (p["t"][:, 1:] - p["t"][:, :-1] == 1).all() and (p["t"][:, 0] % length == 0).all()
        assert (p["env"] == p["env"][:, :1]).all()
    seen = sorted(zip(torch.cat([p["env"] for p in parts]).flatten().tolist(), torch.cat([p["t"] for p in parts]).flatten().tolist()))
    assert seen == [(e, s) for e in range(envs) for s in range(steps)]  # every step exactly once per epoch


def test_a_chunk_starts_from_the_hidden_state_stored_at_collection():
    trainer = MAPPOTrainer(small_config(rollouts=12, data_chunk_length=4, env={"num_envs": 4, "max_steps": 7},
                                        model={"body": "gru", "rnn_hidden_size": 8}))
    data = collect(trainer.learner)
    parts = chunks(data, 4)
    for key in [("agents", "rnn_state"), ("agents", "rnn_state_critic")]:
        stored = data[key]  # [envs, 12, ...]
        torch.testing.assert_close(parts[key][:, 0], stored[:, ::4].reshape(-1, *stored.shape[2:]), rtol=0, atol=0)
        assert parts[key][:, 0].abs().sum() > 0  # not all zeros: chunks after the first start mid-episode
    torch.testing.assert_close(parts["is_init"][:, 0], data["is_init"][:, ::4].reshape(-1, 1), rtol=0, atol=0)
    # the policy replayed on chunks (sequence mode) gives back the log-probabilities and values of collection
    group = trainer.groups[0]
    compute_advantages(group, data)
    with set_recurrent_mode(True):
        out = group.loss(chunks(data.select(*trainer.learner.update_keys), 4))
    assert float(out["kl_approx"]) < 1e-10 and float(out["clip_fraction"]) == 0.0
    with set_recurrent_mode(True):
        replay = group.critic(parts.exclude(("agents", "state_value")))
    torch.testing.assert_close(replay["agents", "state_value"], chunks(data, 4)["agents", "state_value"], rtol=0, atol=1e-5)


def test_recurrent_next_state_values_use_the_state_after_the_step():
    """V(s'_t) for GAE: one step of the critic from ("next", state) — where no episode restarts at t+1 it is
    exactly V(s_{t+1}) of the sequence pass (same observation, same state)."""
    trainer = MAPPOTrainer(small_config(rollouts=12, data_chunk_length=4, env={"num_envs": 4, "max_steps": 5},
                                        model={"body": "gru", "rnn_hidden_size": 8}))
    data = compute_advantages(trainer.groups[0], collect(trainer.learner))
    v, v_next = data["agents", "state_value"], data["next", "agents", "state_value"]
    same = ~data["is_init"][:, 1:, 0]  # t+1 continues the episode of t
    assert same.any() and (~same).any()
    torch.testing.assert_close(v_next[:, :-1][same], v[:, 1:][same], rtol=0, atol=1e-5)
    assert (v_next[:, :-1][~same] - v[:, 1:][~same]).abs().max() > 1e-4  # at a restart s'_t is the last state, not the new first
