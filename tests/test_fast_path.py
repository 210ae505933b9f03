"""The fast path computes what the plain path computes: lean loss vs TensorDict path, compiled vs plain update,
and sampling that still draws fresh randomness when compiled or captured."""

import pytest
import torch
from tensordict.nn import CudaGraphModule
from torchrl.envs.utils import ExplorationType, set_exploration_type

from mappo_td import MAPPOLoss, make_critic, make_policy
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config
from tests.test_policy import CASES, act_spec, obs_spec

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("share_params", [True, False])
@pytest.mark.parametrize("space,kwargs,name", CASES, ids=[c[2] for c in CASES])
def test_lean_loss_equals_tensordict_path(space, kwargs, name, share_params):
    obs, act = obs_spec(), act_spec(space)
    policy = make_policy(obs, act, hidden_sizes=(16,), share_params=share_params, **kwargs)
    critic = make_critic(obs, hidden_sizes=(16,), share_params=share_params)
    with torch.no_grad():
        td = critic(policy(obs.rand()))
    td["agents", "advantage"] = torch.randn(*td["agents", "state_value"].shape)
    td["agents", "value_target"] = torch.randn(*td["agents", "state_value"].shape)
    lean, plain = MAPPOLoss(policy, critic, entropy_loss_scale=0.01), MAPPOLoss(policy, critic, entropy_loss_scale=0.01, fast=False)
    assert lean._plans is not None and plain._plans is None
    outs, grads = [], []
    for loss in (lean, plain):
        torch.manual_seed(3)  # same rsample for entropy estimates
        out = loss(td.clone())
        loss.zero_grad(set_to_none=True)
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in loss.parameters() if p.grad is not None])
    for k in outs[0].keys():
        torch.testing.assert_close(outs[0][k], outs[1][k], msg=k)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def _run_steps(compile_: bool, n: int = 4):
    t = MAPPOTrainer(small_config(compile=compile_, seed=7))
    torch.manual_seed(11)
    data = t.collector.rollout().copy()
    t._advantages(data)
    t.buffer.extend(data.select(*t._update_keys).reshape(-1))
    batches = [t.buffer.sample() for _ in range(n)]
    g = t.groups[0]
    for b in batches:
        t._step_fn(g, b, None)
    return [p.detach().clone() for p in g.optimizer.params]


def test_compiled_update_matches_plain():
    """Same seed, same minibatches: parameters agree to 1e-5 after 4 compiled vs plain steps."""
    for a, b in zip(_run_steps(False), _run_steps(True)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_compiled_acting_draws_fresh_samples():
    t = MAPPOTrainer(small_config(compile=True))
    td = t.env.reset()
    acting = t.acting  # each group's policy compiled inside
    with set_exploration_type(ExplorationType.RANDOM):  # as in the collector
        a = acting(td.clone())["agents", "action"]
        b = acting(td.clone())["agents", "action"]
    assert not torch.equal(a, b), "two calls on the same input must sample differently"
    with set_exploration_type(ExplorationType.DETERMINISTIC):  # evaluation: the mode, every time
        torch.testing.assert_close(acting(td.clone())["agents", "action"], acting(td.clone())["agents", "action"])


def test_cudagraph_wrapper_in_cpu_form_matches_plain():
    """The CUDA-graph step wrapper (tensordict's CudaGraphModule passes calls through without CUDA), with the KL
    early-stop mask in use: same parameters as the plain step."""
    import warnings

    def run(wrapped: bool):
        t = MAPPOTrainer(small_config(seed=7, kl_threshold=0.02, learning_epochs=2, mini_batches=4))
        if wrapped:
            t.cfg.cudagraphs = True  # bypass the CUDA check: exercise the wrapper itself
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t._step_fn = t._make_step_fn()
        torch.manual_seed(11)
        data = t.collector.rollout().copy()
        t._advantages(data)
        t._update(data)
        return [p.detach().clone() for p in t.groups[0].optimizer.params], t._active["agents"].clone()

    (a, mask_a), (b, mask_b) = run(False), run(True)
    assert torch.equal(mask_a, mask_b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_fast_path_flags_are_checked():
    with pytest.raises(ValueError, match="cudagraphs=True needs a CUDA device"):
        MAPPOTrainer(small_config(cudagraphs=True))
    with pytest.raises(ValueError, match="KLAdaptiveLR"):
        MAPPOTrainer(small_config(compile=True, learning_rate_scheduler="StepLR", learning_rate_scheduler_kwargs={"step_size": 5}))


@pytest.mark.gpu
@cuda
def test_cudagraph_update_matches_plain_on_cuda():
    def run(cudagraphs: bool):
        t = MAPPOTrainer(small_config(device="cuda", compile=cudagraphs, cudagraphs=cudagraphs, seed=7))
        torch.manual_seed(11)
        data = t.collector.rollout().copy()
        t._advantages(data)
        t.buffer.extend(data.select(*t._update_keys).reshape(-1))
        batches = [t.buffer.sample() for _ in range(6)]
        for b in batches:
            t._step_fn(t.groups[0], b, None)
        return [p.detach().clone() for p in t.groups[0].optimizer.params]

    for a, b in zip(run(False), run(True)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.gpu
@cuda
def test_captured_acting_draws_fresh_samples_on_cuda():
    t = MAPPOTrainer(small_config(device="cuda"))
    td = t.env.reset()
    policy = CudaGraphModule(t.groups[0].policy, warmup=2)
    with set_exploration_type(ExplorationType.RANDOM):
        for _ in range(3):
            policy(td.clone())
        a = policy(td.clone())["agents", "action"].clone()
        b = policy(td.clone())["agents", "action"].clone()
    assert not torch.equal(a, b), "a captured graph must not replay the same random numbers"


@pytest.mark.gpu
@cuda
def test_short_cuda_training_run_with_cudagraphs():
    t = MAPPOTrainer(small_config(device="cuda", compile=True, cudagraphs=True, timesteps=64))
    summary = t.train()
    assert summary["updates"] == 4 * 2 * 2
    assert all(torch.isfinite(p).all() for p in t.groups[0].optimizer.params)
