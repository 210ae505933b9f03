"""The fast path computes what the plain path computes: lean loss vs TensorDict path, compiled vs plain update,
the CUDA-graph wrapper in CPU form, and sampling that still draws fresh randomness when compiled or captured."""

import functools
import warnings

import pytest
import torch
from tensordict.nn import CudaGraphModule, TensorDictModule, TensorDictModuleBase
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import set_recurrent_mode

from mappo_td import MAPPOLoss, TensorPlan, TrainConfig, accelerate, compute_advantages, make_critic, make_policy
from mappo_td.fast import capture
from mappo_td.train import chunks, masked_update_step, minibatches, update
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config
from tests.models.test_policy import CASES, act_spec, obs_spec

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
    lean = MAPPOLoss(policy, critic, entropy_loss_scale=0.01)
    plain = MAPPOLoss(policy, critic, entropy_loss_scale=0.01, tensor_plan=False)
    assert lean.uses_tensor_plan and not plain.uses_tensor_plan
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


@pytest.mark.parametrize("share_params", [True, False])
def test_lean_loss_covers_the_gru_body(share_params):
    """The tensor plan runs GRU policy and critic too (sequence mode on chunks): same terms and gradients as the TensorDict path."""
    t = MAPPOTrainer(small_config(rollouts=8, data_chunk_length=4, model={"body": "gru", "rnn_hidden_size": 8, "share_params": share_params}))
    g = t.groups[0]
    data = compute_advantages(g, t.collect())
    batch = chunks(data.select(*t.learner.update_keys), 4)
    lean = MAPPOLoss(g.policy, g.critic, share_params=share_params, entropy_loss_scale=0.01)
    plain = MAPPOLoss(g.policy, g.critic, share_params=share_params, entropy_loss_scale=0.01, tensor_plan=False)
    assert lean.uses_tensor_plan
    outs, grads = [], []
    with set_recurrent_mode(True):
        for loss in (lean, plain):
            torch.manual_seed(3)  # same rsample for the entropy estimate (tanh-squashed Gaussian)
            out = loss(batch.clone())
            loss.zero_grad(set_to_none=True)
            (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).sum().backward()
            outs.append(out)
            grads.append([p.grad.clone() for p in loss.parameters() if p.grad is not None])
    for k in outs[0].keys():
        torch.testing.assert_close(outs[0][k], outs[1][k], msg=k)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


class _Wrapped(TensorDictModuleBase):
    """A critic that is not a plain chain of TensorDictModules (the plan cannot see inside)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.in_keys, self.out_keys = inner, inner.in_keys, inner.out_keys

    def forward(self, td):
        return self.inner(td)


def test_tensor_plan_fallback_warns_and_gives_the_same_loss():
    obs, act = obs_spec(), act_spec("categorical")
    policy, critic = make_policy(obs, act, hidden_sizes=(8,)), make_critic(obs, hidden_sizes=(8,))
    with torch.no_grad():
        td = critic(policy(obs.rand()))
    td["agents", "advantage"] = torch.randn(*td["agents", "state_value"].shape)
    td["agents", "value_target"] = torch.randn(*td["agents", "state_value"].shape)
    with pytest.warns(UserWarning, match="the critic network .* is not a plain chain"):
        fallback = MAPPOLoss(policy, _Wrapped(critic))
    assert not fallback.uses_tensor_plan
    assert TensorPlan.of(TensorDictModule(torch.nn.Identity(), ["x"], ["y"])) is not None
    a, b = fallback(td.clone()), MAPPOLoss(policy, critic)(td.clone())
    for k in ("loss_objective", "loss_critic"):
        torch.testing.assert_close(a[k], b[k])


def _run_steps(fast: str, n: int = 4):
    t = MAPPOTrainer(small_config(fast=fast, seed=7))
    torch.manual_seed(11)
    data = t.collect()
    g = t.groups[0]
    compute_advantages(g, data)
    flat = data.select(*t.learner.update_keys).reshape(-1)
    batches = [b for _ in range(n // 2) for b in minibatches(flat, 2)]
    step = t.learner.step_fns[g.name]  # update_step, wrapped by the fast path
    for b in batches:
        step(b)
    return [p.detach().clone() for p in g.optimizer.params]


def test_compiled_update_matches_plain():
    """Same seed, same minibatches: parameters agree to 1e-5 after 4 compiled vs plain steps."""
    for a, b in zip(_run_steps("off"), _run_steps("compile")):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _params_after_updates(fast: str, updates: int = 1, **overrides) -> list[torch.Tensor]:
    """The group's parameters after ``updates`` collect-and-update iterations of the trainer's loop, from one seed."""
    t = MAPPOTrainer(small_config(fast=fast, seed=7, **overrides))
    torch.manual_seed(11)
    for _ in range(updates):
        update(t.learner, t.collect())
    return [p.detach().clone() for p in t.groups[0].optimizer.params]


def test_compiled_recurrent_update_matches_plain():
    """GRU policy and critic, sequence minibatches: a compiled update (acting compiled too) equals the plain one to 1e-5."""
    gru = dict(rollouts=4, data_chunk_length=2, learning_epochs=1, kl_threshold=0.05, learning_rate_scheduler="KLAdaptiveLR",
               model={"body": "gru", "rnn_hidden_size": 8})
    for a, b in zip(_params_after_updates("off", **gru), _params_after_updates("compile", **gru)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _action_spread(act, td, calls: int = 300) -> torch.Tensor:
    """Std of the actions ``act`` samples on one input over many calls (per action dim)."""
    with set_exploration_type(ExplorationType.RANDOM):
        return torch.stack([act(td.clone())["agents", "action"].clone() for _ in range(calls)]).flatten(0, -2).std(0)


def test_compiled_acting_draws_fresh_samples():
    t = MAPPOTrainer(small_config(fast="compile"))
    td = t.env.reset()
    acting = t.acting  # each group's policy compiled inside
    with set_exploration_type(ExplorationType.RANDOM):  # as in the collector
        a = acting(td.clone())["agents", "action"]
        b = acting(td.clone())["agents", "action"]
    assert not torch.equal(a, b), "two calls on the same input must sample differently"
    # TorchRL #3002: a frozen random state collapses the spread; compiled sampling keeps the eager policy's spread
    eager = _action_spread(t.groups[0].policy, td)
    torch.testing.assert_close(_action_spread(acting, td), eager, rtol=0.1, atol=0)
    with set_exploration_type(ExplorationType.DETERMINISTIC):  # evaluation: the mode, every time
        torch.testing.assert_close(acting(td.clone())["agents", "action"], acting(td.clone())["agents", "action"])


def _update_with_kl(device: str, fast: str | None = None, wrap: bool = False, updates: int = 2):
    """Updates with the KL early stop (a threshold it crosses) and the KL-adaptive learning rate, from one seed."""
    t = MAPPOTrainer(small_config(device=device, seed=7, kl_threshold=1e-4, learning_epochs=2, mini_batches=4,
                                  learning_rate_scheduler="KLAdaptiveLR", **({"fast": fast} if fast else {})))
    if wrap:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t.learner.step_fns["agents"] = capture(functools.partial(masked_update_step, t.groups[0]))
    torch.manual_seed(11)
    masks = []
    for _ in range(updates):
        update(t.learner, t.collect())
        masks.append(t.learner.keep_updating["agents"].clone())
    g = t.groups[0]
    return [p.detach().clone() for p in g.optimizer.params], masks, g.optimizer.effective_lr().clone()


def test_cudagraph_wrapper_in_cpu_form_matches_plain():
    """The CUDA-graph step wrapper (tensordict's CudaGraphModule passes calls through without CUDA), with the KL
    early-stop mask and the KL-adaptive learning rate in use: same parameters, masks and rate as the plain step."""
    (a, masks_a, lr_a), (b, masks_b, lr_b) = _update_with_kl("cpu"), _update_with_kl("cpu", wrap=True)
    assert not any(bool(m.all()) for m in masks_a), "the early stop should have fired in every update"
    assert float(lr_a) != pytest.approx(1e-3), "the KL-adaptive rate should have moved"
    assert all(torch.equal(x, y) for x, y in zip(masks_a, masks_b)) and torch.equal(lr_a, lr_b)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_fast_path_flags_are_checked():
    with pytest.raises(ValueError, match="cudagraphs' needs a CUDA device"):
        MAPPOTrainer(small_config(fast="cudagraphs"))
    with pytest.raises(ValueError, match="KLAdaptiveLR"):
        small_config(fast="compile", learning_rate_scheduler="StepLR", learning_rate_scheduler_kwargs={"step_size": 5})
    with pytest.raises(ValueError, match="fast must be one of off, compile, cudagraphs"):
        small_config(fast="turbo")
    with pytest.raises(ValueError, match="fast must be one of"):
        accelerate(torch.tanh, "turbo")
    assert TrainConfig.from_dict({"compile": True}).fast == "compile"  # the earlier flags still read
    assert TrainConfig.from_dict({"compile": True, "cudagraphs": True}).fast == "cudagraphs"


def test_adam_is_capturable_only_for_cuda_graphs():
    assert not MAPPOTrainer(small_config()).groups[0].optimizer.adam.defaults["capturable"]


@pytest.mark.gpu
@cuda
def test_cudagraph_update_matches_plain_on_cuda():
    def run(fast: str):
        t = MAPPOTrainer(small_config(device="cuda", fast=fast, seed=7))
        torch.manual_seed(11)
        data = t.collect()
        compute_advantages(t.groups[0], data)
        flat = data.select(*t.learner.update_keys).reshape(-1)
        batches = [b for _ in range(3) for b in minibatches(flat, 2)]
        for b in batches:
            t.learner.step_fns["agents"](b)
        return [p.detach().clone() for p in t.groups[0].optimizer.params]

    for a, b in zip(run("off"), run("cudagraphs")):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.gpu
@cuda
def test_cudagraph_update_with_kl_stop_and_adaptive_rate_matches_plain_on_cuda():
    (a, masks_a, lr_a), (b, masks_b, lr_b) = _update_with_kl("cuda"), _update_with_kl("cuda", fast="cudagraphs")
    assert all(torch.equal(x, y) for x, y in zip(masks_a, masks_b))
    torch.testing.assert_close(lr_a, lr_b, rtol=1e-5, atol=0)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-3)


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
    # TorchRL #3002: a frozen random state collapses the spread; the captured policy keeps the eager one's
    torch.testing.assert_close(_action_spread(policy, td), _action_spread(t.groups[0].policy, td), rtol=0.1, atol=0)


@pytest.mark.gpu
@cuda
def test_recurrent_cudagraph_update_matches_plain_on_cuda():
    gru = dict(device="cuda", rollouts=8, data_chunk_length=4, model={"body": "gru"})
    for a, b in zip(_params_after_updates("off", 2, **gru), _params_after_updates("cudagraphs", 2, **gru)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


@pytest.mark.gpu
@cuda
def test_short_cuda_training_run_with_cudagraphs():
    t = MAPPOTrainer(small_config(device="cuda", fast="cudagraphs", timesteps=64))
    summary = t.train()
    assert summary["updates"] == 4 * 2 * 2
    assert all(torch.isfinite(p).all() for p in t.groups[0].optimizer.params)
    assert t.groups[0].optimizer.adam.defaults["capturable"]
