import numpy as np
import pytest
import torch

from mappo_td import RunningStandardizer


def test_running_statistics_match_skrl_merge_and_converge_to_data_stats():
    s = RunningStandardizer(3)
    batches = [torch.randn(100, 3) * torch.tensor([1.0, 5.0, 0.1]) + torch.tensor([2.0, -1.0, 0.0]) for _ in range(5)]
    mean, var, count = np.zeros(3), np.ones(3), 1.0  # skrl's initial statistics
    for b in batches:
        s.update(b)
        x = b.double().numpy()
        bm, bv, n = x.mean(0), x.var(0, ddof=1), len(x)
        delta, total = bm - mean, count + n
        m2 = var * count + bv * n + delta**2 * count * n / total
        mean, var, count = mean + delta * n / total, m2 / total, total
    np.testing.assert_allclose(s.running_mean.numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s.running_variance.numpy(), var, rtol=1e-4)
    data = torch.cat(batches).double().numpy()
    np.testing.assert_allclose(s.running_mean.numpy(), data.mean(0), atol=0.05)


def test_normalize_inverse_and_clip():
    s = RunningStandardizer(2, clip_threshold=5.0)
    s.update(torch.randn(1000, 2) * 3 + 1)
    x = torch.randn(10, 2)
    torch.testing.assert_close(s(s(x), inverse=True), x, atol=1e-4, rtol=1e-4)
    assert s(torch.full((1, 2), 1e6)).max() == 5.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="trailing dims must match"):
        RunningStandardizer(3).update(torch.zeros(4, 2))
