import numpy as np
import pytest
import torch

from mappo_td import RunningStandardScaler


def test_running_statistics_match_skrl_merge_and_converge_to_data_stats():
    s = RunningStandardScaler(3)
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
    s = RunningStandardScaler(2, clip_threshold=5.0)
    s.update(torch.randn(1000, 2) * 3 + 1)
    x = torch.randn(10, 2)
    torch.testing.assert_close(s(s(x), inverse=True), x, atol=1e-4, rtol=1e-4)
    assert s(torch.full((1, 2), 1e6)).max() == 5.0


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="trailing dims must match"):
        RunningStandardScaler(3).update(torch.zeros(4, 2))


class ReferenceValueNorm:
    """The MAPPO reference's ValueNorm (on-policy, algorithms/utils/valuenorm.py; norm_axes=1, per_element_update=False),
    transcribed with numpy."""

    def __init__(self, beta=0.99999, epsilon=1e-5):
        import numpy as np

        self.np, self.beta, self.epsilon = np, beta, epsilon
        self.mean, self.mean_sq, self.debias = np.zeros(1), np.zeros(1), 0.0

    def running_mean_var(self):
        d = max(self.debias, self.epsilon)
        mean, mean_sq = self.mean / d, self.mean_sq / d
        return mean, self.np.clip(mean_sq - mean**2, 1e-2, None)

    def update(self, x):
        w = self.beta
        self.mean = self.mean * w + x.mean(0) * (1 - w)
        self.mean_sq = self.mean_sq * w + (x**2).mean(0) * (1 - w)
        self.debias = self.debias * w + (1 - w)

    def normalize(self, x):
        m, v = self.running_mean_var()
        return (x - m) / self.np.sqrt(v)

    def denormalize(self, x):
        m, v = self.running_mean_var()
        return x * self.np.sqrt(v) + m


def test_value_norm_equals_the_reference_transcription():
    from mappo_td import ValueNorm

    ours, ref = ValueNorm(1, beta=0.99), ReferenceValueNorm(beta=0.99)
    gen = torch.Generator().manual_seed(0)
    for step in range(5):
        x = (torch.randn(64, 1, generator=gen, dtype=torch.float64) * (step + 1) * 3 + 10 * step)
        ours = ours.double()
        ours.update(x)
        ref.update(x.numpy())
        probe = torch.linspace(-20, 60, 7, dtype=torch.float64).view(-1, 1)
        torch.testing.assert_close(ours.normalize(probe), torch.as_tensor(ref.normalize(probe.numpy())))
        torch.testing.assert_close(ours.denormalize(probe), torch.as_tensor(ref.denormalize(probe.numpy())))
    with pytest.raises(ValueError, match="0 < beta < 1"):
        ValueNorm(1, beta=1.0)


def test_value_norm_as_value_preprocessor_updates_from_returns_and_keeps_the_critic_outputs():
    from mappo_td import MAPPOTrainer, TrainConfig, compute_advantages

    t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 8, "env": {"num_envs": 4}, "progress": False,
                                            "value_preprocessor": "ValueNorm", "value_preprocessor_kwargs": {"beta": 0.9}}))
    g = t.groups[0]
    vn = g.preprocessors["value_preprocessor"]
    data = t.collect()
    predicted = g.critic(data.clone())["agents", "state_value"]  # normalized outputs, as collected
    ref = ReferenceValueNorm(beta=0.9)
    compute_advantages(g, data)
    torch.testing.assert_close(data["agents", "state_value"], predicted, atol=1e-5, rtol=1e-5)  # the critic's own outputs
    # the statistics moved with the returns alone: replay the reference on the de-normalized returns
    returns = vn.denormalize(data["agents", "value_target"])
    ref.update(returns.reshape(-1, 1).double().numpy())
    torch.testing.assert_close(vn.running_mean.double(), torch.as_tensor(ref.mean), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("share_params", [True, False], ids=["shared", "per-agent"])
def test_a_popart_update_keeps_the_critics_denormalized_outputs(share_params):
    """On a fixed batch: de-normalized critic outputs before and after compute_advantages (which updates PopArt) agree."""
    from mappo_td import MAPPOTrainer, TrainConfig, compute_advantages

    t = MAPPOTrainer(TrainConfig.from_dict({"device": "cpu", "rollouts": 8, "env": {"num_envs": 4}, "progress": False,
                                            "model": {"share_params": share_params},
                                            "value_preprocessor": "PopArt", "value_preprocessor_kwargs": {"beta": 0.9}}))
    g = t.groups[0]
    popart = g.preprocessors["value_preprocessor"]
    data = t.collect()
    probe = data.clone()
    before = popart.denormalize(g.critic(probe.clone())["agents", "state_value"])
    weight, bias = (p.detach().clone() for p in popart.output_layer)
    data["next", "agents", "reward"] = data["next", "agents", "reward"] * 100 + 5  # returns far from the start (mean 0, std 0.1)
    compute_advantages(g, data)  # updates PopArt's statistics and rescales the critic's output layer
    after = popart.denormalize(g.critic(probe.clone())["agents", "state_value"])
    assert not torch.allclose(popart.output_layer[0], weight) and not torch.allclose(popart.output_layer[1], bias)  # rescaled
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_popart_needs_a_linear_output_layer():
    from mappo_td import PopArt

    with pytest.raises(ValueError, match="output layer is linear with one output"):
        PopArt(1).attach(torch.nn.Sequential(torch.nn.Linear(3, 2)))
