"""Minibatches: whole epochs without replacement, equal sizes, on the data's device."""

import pytest
import torch
from tensordict import TensorDict

from mappo_td.train import minibatches


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
        next(minibatches(TensorDict({"x": torch.zeros(4, 5)}, [4, 5]), 2))
    with pytest.raises(ValueError, match="larger than the batch"):
        next(minibatches(TensorDict({"x": torch.zeros(3)}, [3]), 4))
