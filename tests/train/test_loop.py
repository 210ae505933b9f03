"""The training loop's semantics, each checked with a number."""

import pytest
import torch

from mappo_td.train import NonFiniteError
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config


def params(trainer):
    return [p.detach().clone() for g in trainer.groups for p in [*g.policy.parameters(), *g.critic.parameters()]]


def test_no_update_before_learning_starts():
    t = MAPPOTrainer(small_config(timesteps=48, learning_starts=48))
    before = params(t)
    t.train()
    assert t.updates == 0
    for a, b in zip(before, params(t)):
        torch.testing.assert_close(a, b)
    t = MAPPOTrainer(small_config(timesteps=64, learning_starts=48))  # the 4th rollout ends at step index 63 >= 48
    t.train()
    assert t.updates == 2 * 2  # one update: learning_epochs x mini_batches


def test_random_timesteps_act_uniformly_then_follow_the_policy():
    t = MAPPOTrainer(small_config(random_timesteps=16, env={"continuous_actions": False, "num_envs": 64}))
    policy = t.groups[0].policy
    k = t.env.full_action_spec["agents", "action"].space.n
    with torch.no_grad():  # make the policy pick action 0 almost surely: the output layer's bias
        out_bias = [p for name, p in policy.named_parameters() if name.endswith("bias") and p.shape[-1] == k]
        assert len(out_bias) == 1
        out_bias[0][..., 0] = 100.0
    t.acting.step = 0
    data = t.collector.rollout()  # steps 0..15: random
    actions = data["agents", "action"].flatten()
    counts = torch.bincount(actions, minlength=k).float() / actions.numel()
    assert (counts - 1 / k).abs().max() < 0.02, counts  # uniform over the k actions
    lp = policy.get_dist(data).log_prob(data["agents", "action"])
    torch.testing.assert_close(data["agents", "action_log_prob"], lp)  # log-prob under the current policy
    t.acting.step = 16
    data = t.collector.rollout()  # steps 16..31: the policy
    assert (data["agents", "action"] == 0).all()


def test_rewards_shaper_gets_the_right_arguments_and_its_output_is_stored():
    calls = []

    def shaper(reward, timestep, timesteps):
        calls.append((reward.clone(), timestep, timesteps))
        return reward * 0 + timestep

    t = MAPPOTrainer(small_config(timesteps=32, rewards_shaper=shaper))
    step, seen = t.learner.step_fns["agents"], []

    def recording_step(batch, *mask):  # what each gradient step of the update is given
        seen.append(batch["next", "agents", "reward"].clone())
        return step(batch, *mask)

    t.learner.step_fns["agents"] = recording_step
    t.train()
    assert [c[1] for c in calls] == list(range(32)) and {c[2] for c in calls} == {32}
    assert calls[0][0].shape == (8, 3, 1)  # one step of every env and agent
    first, last = torch.cat(seen[:4]), torch.cat(seen[-4:])  # the first and last update's minibatches (2 epochs x 2)
    assert set(first.unique().tolist()) == set(range(16)) and set(last.unique().tolist()) == set(range(16, 32))


def test_kl_early_stop_cuts_the_rest_of_the_epoch():
    t = MAPPOTrainer(small_config(timesteps=16, learning_epochs=3, mini_batches=4, kl_threshold=1e-9))
    g = t.groups[0]
    seen, snapshots = [], []
    step = g.optimizer.step

    def record(keep_updating=None):
        seen.append(keep_updating.clone())
        step(keep_updating)
        snapshots.append([p.detach().clone() for p in g.optimizer.params])

    g.optimizer.step = record
    t.train()
    flags = [bool(a) for a in seen]
    # epoch 1: the first minibatch (policy unchanged: KL ~ 0) steps, then KL > threshold stops the rest;
    # later epochs start with KL > threshold: nothing more happens.
    assert flags == [True, False, False, False] + [False] * 8
    for snap in snapshots[1:]:
        for a, b in zip(snapshots[0], snap):
            torch.testing.assert_close(a, b)


def test_a_kl_threshold_of_zero_is_off_for_its_agent():
    """Per agent, 0 means no early stop (skrl's ``kl_threshold: 0``): that agent updates every minibatch while the others stop."""
    t = MAPPOTrainer(small_config(timesteps=16, learning_epochs=2, mini_batches=2, model={"share_params": False},
                                  kl_threshold={"agent_0": 0.0, "agent_1": 1e-9, "agent_2": 1e-9}))
    g = t.groups[0]
    seen = []
    step = g.optimizer.step

    def record(keep_updating=None):
        seen.append(keep_updating.clone())
        step(keep_updating)

    g.optimizer.step = record
    t.train()
    assert all(bool(k[0]) for k in seen), "agent_0 (threshold 0) never stops"
    assert not bool(seen[-1][1:].any()), "the others stop once their KL exceeds 1e-9"


def test_separate_parameters_get_their_own_optimizer():
    t = MAPPOTrainer(small_config(model={"share_params": False}, grad_norm_clip={"agent_0": 0.1, "agent_1": 0.5, "agent_2": 1.0}))
    g = t.groups[0]
    assert not g.share_params and not g.optimizer.share_params
    torch.testing.assert_close(g.optimizer.grad_norm_clip, torch.tensor([0.1, 0.5, 1.0]))
    assert all(p.shape[0] == 3 for p in g.optimizer.params)


@pytest.mark.parametrize("kl_threshold,direction", [(1e-12, "down"), (10.0, "up")])
def test_kl_adaptive_schedule_moves_the_learning_rate(kl_threshold, direction):
    t = MAPPOTrainer(small_config(learning_rate_scheduler="KLAdaptiveLR",
                                  learning_rate_scheduler_kwargs={"kl_threshold": kl_threshold, "min_lr": 1e-5, "max_lr": 1e-2}))
    t.train()
    lr = float(t.groups[0].optimizer.lr)
    assert (lr < 1e-3) if direction == "down" else (lr > 1e-3), lr


def test_torch_scheduler_by_name_scales_the_rate():
    t = MAPPOTrainer(small_config(learning_rate_scheduler="LinearLR",
                                  learning_rate_scheduler_kwargs={"start_factor": 1.0, "end_factor": 0.5, "total_iters": 8}))
    t.train()
    assert float(t.groups[0].optimizer.effective_lr()) == pytest.approx(0.5e-3)


def test_preprocessors_track_statistics():
    t = MAPPOTrainer(small_config(state_preprocessor="RunningStandardScaler", shared_state_preprocessor="RunningStandardScaler",
                                  value_preprocessor="RunningStandardScaler"))
    t.train()
    pre = t.groups[0].preprocessors
    assert set(pre) == {"state_preprocessor", "shared_state_preprocessor", "value_preprocessor"}
    n = 2 * 8 * 16  # two iterations of 8 envs x 16 steps
    assert float(pre["state_preprocessor"].current_count) == 1 + n * 3  # per-agent observations
    assert float(pre["shared_state_preprocessor"].current_count) == 1 + n
    assert float(pre["value_preprocessor"].current_count) == 1 + 2 * n * 3  # values, then returns


def test_shared_model_counts_each_observation_once():
    """The shared trunk holds the state preprocessor: the critic pass must not merge the batch a second time."""
    t = MAPPOTrainer(small_config(state_preprocessor="RunningStandardScaler", model={"shared_model": True, "centralized_critic": False}))
    t.train()
    assert float(t.groups[0].preprocessors["state_preprocessor"].current_count) == 1 + 2 * 8 * 16 * 3


def test_nonfinite_observation_is_named():
    t = MAPPOTrainer(small_config())
    data = t.collector.rollout()
    data["next", "agents", "observation"][0, 3, 1, 2] = float("nan")
    t.stats.track(data)
    with pytest.raises(NonFiniteError, match=r"\('next', 'agents', 'observation'\)"):
        t.stats.raise_if_nonfinite(t.timestep)


def test_rewards_shaper_must_keep_the_shape():
    """Regression: a shaper returning the wrong shape was broadcast silently."""
    t = MAPPOTrainer(small_config(rewards_shaper=lambda r, t, n: r.sum(-2)))  # [N, n_agents, 1] -> [N, 1]
    with pytest.raises(ValueError, match=r"rewards_shaper returned shape \(8, 1\) for \('next', 'agents', 'reward'\) of shape \(8, 3, 1\)"):
        t.train()


@pytest.mark.parametrize("name,kwargs,match", [
    ("ReduceLROnPlateau", {}, "steps on a metric"),
    ("StepLR", {"gamma": 0.5}, r"do not fit StepLR .*step_size"),
    ("KLAdaptiveLR", {"kl_treshold": 0.01}, r"do not fit KLAdaptiveLR .*kl_threshold: 'float' = 0.008"),
    ("NoSuchLR", {}, "unknown learning_rate_scheduler 'NoSuchLR'"),
])
def test_scheduler_errors_are_clear(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAPPOTrainer(small_config(learning_rate_scheduler=name, learning_rate_scheduler_kwargs=kwargs))


def test_mini_batches_that_do_not_divide_the_batch_warn():
    with pytest.warns(UserWarning, match="mini_batches=3 does not divide the 128 frames of an update: each epoch leaves 2 frames out"):
        MAPPOTrainer(small_config(mini_batches=3))


def test_one_frame_minibatches_are_not_a_false_nonfinite_alarm():
    """The per-agent explained variance of a 1-frame minibatch is NaN (a diagnostic); only losses and parameters stop a run."""
    t = MAPPOTrainer(small_config(timesteps=4, rollouts=1, mini_batches=2, env={"num_envs": 2}, model={"share_params": False}))
    summary = t.train()
    assert summary["timestep"] == 4 and summary["updates"] == 4 * 2 * 2
    assert all(torch.isfinite(p).all() for p in t.groups[0].optimizer.params)
