import csv
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from mappo_td.train import CheckpointError, NonFiniteError, load_checkpoint
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config

FULL = dict(state_preprocessor="RunningStandardScaler", value_preprocessor="RunningStandardScaler",
            learning_rate_scheduler="KLAdaptiveLR", kl_threshold=0.5)


def flat(state, prefix=""):
    out = {}
    if isinstance(state, dict):
        for k, v in state.items():
            out.update(flat(v, f"{prefix}/{k}"))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            out.update(flat(v, f"{prefix}/{i}"))
    else:
        out[prefix] = state
    return out


def assert_same(a, b):
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            torch.testing.assert_close(fa[k], fb[k], rtol=0, atol=0, msg=k)
        else:
            assert fa[k] == fb[k], k


def test_round_trip_restores_every_piece_of_state():
    a = MAPPOTrainer(small_config(**FULL))
    a.train()
    path = a.save(Path(a.run_dir) / "rt.pt")
    b = MAPPOTrainer(small_config(seed=123, **FULL))
    b.load_state_dict(load_checkpoint(path))
    sa, sb = a.state_dict(), b.state_dict()
    sb["rng"] = sa["rng"] = None  # b's generator moved on by its collector reset
    sb["config"] = sa["config"] = None  # b was built with another seed and folder
    assert_same(sa, sb)
    assert b.timestep == 32 and b.updates == a.updates


@pytest.mark.parametrize("store_separately", [False, True])
def test_resume_is_exact(store_separately):
    exp = {"checkpoint_interval": 32, "store_separately": store_separately}
    full = MAPPOTrainer(small_config(timesteps=64, experiment=exp, **FULL))
    full.train()
    first = MAPPOTrainer(small_config(timesteps=32, experiment=exp, **FULL))
    first.train()
    ckpt = Path(first.run_dir) / "checkpoints"
    if store_separately:
        assert (ckpt / "agent_32.agents.policy.pt").exists() and (ckpt / "agent_32.agents.critic.pt").exists()
    resumed = MAPPOTrainer.from_checkpoint(ckpt, {"timesteps": 64})
    resumed.train()
    for p, q in zip(full.state_dict()["models"].values(), resumed.state_dict()["models"].values()):
        for k in p:
            torch.testing.assert_close(p[k], q[k], rtol=0, atol=0, msg=k)


def test_recurrent_resume_is_exact():
    """GRU policy and critic: hidden states restart with the episodes at a checkpoint, in the full run and on resume."""
    rec = dict(rollouts=8, data_chunk_length=4, model={"body": "gru", "rnn_hidden_size": 8}, env={"num_envs": 4, "max_steps": 6})
    exp = {"checkpoint_interval": 16}
    full = MAPPOTrainer(small_config(timesteps=32, experiment=exp, **rec, **FULL))
    full.train()
    first = MAPPOTrainer(small_config(timesteps=16, experiment=exp, **rec, **FULL))
    first.train()
    resumed = MAPPOTrainer.from_checkpoint(Path(first.run_dir) / "checkpoints", {"timesteps": 32})
    resumed.train()
    models = full.state_dict()["models"]
    assert any("cells" in k for k in models["agents/policy"])
    assert_same(models, resumed.state_dict()["models"])


def test_bad_checkpoints_are_refused_clearly(tmp_path):
    t = MAPPOTrainer(small_config())
    good = t.save(tmp_path / "agent_0.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a mappo_td checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "mappo_td-checkpoint", "obj": Path("x")}, tmp_path / "code.pt")  # needs unpickling code
    with pytest.raises(CheckpointError, match="not a plain-tensor checkpoint"):
        load_checkpoint(tmp_path / "code.pt")
    other = MAPPOTrainer(small_config(model={"hidden_sizes": [32]}))
    with pytest.raises(CheckpointError, match="does not match this configuration"):
        other.load_state_dict(load_checkpoint(good))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_nan_reward_stops_the_run_and_keeps_the_last_good_checkpoint():
    def shaper(reward, timestep, timesteps):
        return reward + (float("nan") if timestep >= 40 else 0.0)

    t = MAPPOTrainer(small_config(timesteps=80, rewards_shaper=shaper, env={"max_steps": 16},
                                  experiment={"checkpoint_interval": 16, "write_interval": 16}))
    with pytest.raises(NonFiniteError, match=r"\('next', 'agents', 'reward'\)"):
        t.train()
    ckpt = Path(t.run_dir) / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("agent_*.pt")) == ["agent_16.pt", "agent_32.pt"]
    state = load_checkpoint(ckpt)
    assert state["counters"]["timestep"] == 32
    assert all(torch.isfinite(v).all() for sd in state["models"].values() for v in sd.values())
    assert json.loads(state["config"])["timesteps"] == 80


def test_empty_and_incomplete_checkpoints_are_refused_clearly(tmp_path):
    (tmp_path / "agent_1.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a plain-tensor checkpoint"):
        load_checkpoint(tmp_path / "agent_1.pt")  # regression: the handler itself raised IndexError on the empty message
    state = MAPPOTrainer(small_config()).state_dict()
    del state["counters"]
    torch.save({"format": "mappo_td-checkpoint", "version": 1, **state}, tmp_path / "agent_2.pt")
    with pytest.raises(CheckpointError, match=r"lacks \['counters'\]"):
        load_checkpoint(tmp_path / "agent_2.pt")


def test_checkpoint_files_are_readable_like_other_outputs_and_rotate(tmp_path):
    t = MAPPOTrainer(small_config(timesteps=80, env={"max_steps": 16}, experiment={"directory": str(tmp_path), "experiment_name": "r",
                                                             "checkpoint_interval": 16, "keep_checkpoints": 2}))
    t.train()
    ckpts = sorted((tmp_path / "r" / "checkpoints").glob("*.pt"))
    assert [p.name for p in ckpts] == ["agent_64.pt", "agent_80.pt"]  # the newest 2 of 5
    umask = os.umask(0)
    os.umask(umask)
    for p in [*ckpts, tmp_path / "r" / "config.json"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def _run(tmp_path, timesteps, **exp):
    return small_config(timesteps=timesteps, env={"max_steps": 16}, experiment={"directory": str(tmp_path), "experiment_name": "r",
                                                                                  "checkpoint_interval": 16, "write_interval": 16, **exp})


def test_resuming_an_older_checkpoint_never_destroys(tmp_path):
    MAPPOTrainer(_run(tmp_path, 64)).train()
    ckpts = tmp_path / "r" / "checkpoints"
    names = sorted(p.name for p in ckpts.glob("*.pt"))
    config = (tmp_path / "r" / "config.json").read_bytes()
    old = MAPPOTrainer.from_checkpoint(ckpts / "agent_32.pt", {"timesteps": 96})
    with pytest.raises(CheckpointError, match="older than agent_64.pt.*--fork NEW_NAME.*--overwrite-later"):
        old.train()
    assert sorted(p.name for p in ckpts.glob("*.pt")) == names and (tmp_path / "r" / "config.json").read_bytes() == config
    with pytest.raises(ValueError, match=r"nothing to train: the run is already past timesteps, at 32 \(timesteps=16"):
        MAPPOTrainer.from_checkpoint(ckpts / "agent_32.pt", {"timesteps": 16}).train()
    assert sorted(p.name for p in ckpts.glob("*.pt")) == names

    fork = MAPPOTrainer.from_checkpoint(ckpts / "agent_32.pt", {"timesteps": 64}, fork="r2")
    fork.train()
    assert sorted(p.name for p in ckpts.glob("*.pt")) == names  # the original run is untouched
    rows = [int(r["timestep"]) for r in csv.DictReader(open(tmp_path / "r2" / "progress.csv"))]
    assert rows == [16, 32, 48, 64]  # the rows up to the fork point, then its own: none twice
    assert sorted(p.name for p in (tmp_path / "r2" / "checkpoints").glob("*.pt")) == ["agent_48.pt", "agent_64.pt"]

    again = MAPPOTrainer.from_checkpoint(ckpts / "agent_32.pt", {"timesteps": 48}, overwrite_later=True)
    again.train()
    assert sorted(p.name for p in ckpts.glob("*.pt")) == ["agent_16.pt", "agent_32.pt", "agent_48.pt"]
    assert [int(r["timestep"]) for r in csv.DictReader(open(tmp_path / "r" / "progress.csv"))] == [16, 32, 48]


def test_resume_after_a_crash_does_not_duplicate_log_rows(tmp_path):
    """Rows logged after the last checkpoint (a run killed between them) are dropped when the run resumes there."""
    MAPPOTrainer(_run(tmp_path, 48, checkpoint_interval=32)).train()
    (tmp_path / "r" / "checkpoints" / "agent_48.pt").unlink()  # as if killed after logging 48, before its checkpoint
    MAPPOTrainer.from_checkpoint(tmp_path / "r" / "checkpoints", {"timesteps": 64}).train()
    assert [int(r["timestep"]) for r in csv.DictReader(open(tmp_path / "r" / "progress.csv"))] == [16, 32, 48, 64]


def test_nonfinite_parameters_never_reach_a_checkpoint(tmp_path):
    """Regression: finite but huge rewards gave NaN weights that were saved; the run then died inside VMAS."""
    def shaper(reward, timestep, timesteps):
        return reward * (1e38 if timestep >= 40 else 1.0)

    t = MAPPOTrainer(small_config(timesteps=96, rewards_shaper=shaper,
                                  experiment={"directory": str(tmp_path), "experiment_name": "r", "checkpoint_interval": 32, "write_interval": 48}))
    with pytest.raises(NonFiniteError, match=r"non-finite (loss term\(s\) \[.*\]|parameters).*group 'agents', first .*timestep 48"):
        t.train()
    ckpt = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in ckpt.glob("*.pt")) == ["agent_32.pt"]
    state = load_checkpoint(ckpt)
    assert all(torch.isfinite(v).all() for sd in state["models"].values() for v in sd.values())


def test_a_simulator_failure_after_nan_parameters_is_explained(tmp_path):
    """With no log or checkpoint between the bad update and the next rollout, the simulator meets NaN actions first
    (VMAS asserts on them): the run still stops with NonFiniteError naming the cause, not the simulator's bare error."""
    def shaper(reward, timestep, timesteps):
        return reward * (1e38 if timestep >= 40 else 1.0)

    t = MAPPOTrainer(small_config(timesteps=160, rewards_shaper=shaper,
                                  experiment={"directory": str(tmp_path), "experiment_name": "r", "checkpoint_interval": 0, "write_interval": 160}))
    with pytest.raises(NonFiniteError, match="group 'agents', first .*timestep 48") as err:
        t.train()
    assert err.value.__cause__ is not None  # the simulator's own error, kept as the cause
    assert not list((tmp_path / "r" / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize("kind", ["ValueNorm", "PopArt"])
def test_value_norm_run_resumes_exactly_and_keeps_its_statistics(kind):
    vn = dict(value_preprocessor=kind, value_preprocessor_kwargs={"beta": 0.99})
    exp = {"checkpoint_interval": 32}
    full = MAPPOTrainer(small_config(timesteps=64, experiment=exp, **vn))
    full.train()
    first = MAPPOTrainer(small_config(timesteps=32, experiment=exp, **vn))
    first.train()
    resumed = MAPPOTrainer.from_checkpoint(Path(first.run_dir) / "checkpoints", {"timesteps": 64})
    assert_same(first.state_dict()["preprocessors"], resumed.state_dict()["preprocessors"])
    assert float(resumed.groups[0].preprocessors["value_preprocessor"].debiasing_term) > 0
    resumed.train()
    assert_same(full.state_dict()["models"], resumed.state_dict()["models"])
    assert_same(full.state_dict()["preprocessors"], resumed.state_dict()["preprocessors"])


def test_a_run_ending_past_timesteps_is_evaluated_and_says_it_is_finished(tmp_path):
    """timesteps=20 with rollouts=16 ends at 32: eval reads that checkpoint; resuming it as is says it is finished."""
    MAPPOTrainer(_run(tmp_path, 20)).train()
    ckpts = tmp_path / "r" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.pt")) == ["agent_16.pt", "agent_32.pt"]
    before = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    t = MAPPOTrainer.from_checkpoint(ckpts)  # regression: refused, "timesteps=20 is below the checkpoint's timestep 32"
    assert t.evaluate(episodes=2)["episodes"] == 2.0
    with pytest.raises(ValueError, match=r"the run is finished: it reached timestep 32 \(timesteps=20, in updates of rollouts=16 "
                                         r"steps\)\. To train it further, resume with a larger --timesteps"):
        t.train()
    assert {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()} == before


def test_the_progress_bar_ends_where_the_run_ends():
    from mappo_td.train.logging import Progress

    cfg = small_config(timesteps=300, rollouts=8, env={"num_envs": 4}, progress=True)
    bar = Progress(cfg, 0, "cpu")
    assert bar.bar.total == 304 * 4  # regression: 300 x 4, and the bar ran past it ("38.9k/?")
    bar.close()
    resumed = Progress(cfg, 40, "cpu", frames=100)  # a resumed run: from its frame count on
    assert (resumed.bar.n, resumed.bar.total) == (100, 100 + (304 - 40) * 4)
    resumed.close()


def test_a_resume_that_adds_columns_rewrites_the_csv_with_every_column(tmp_path):
    from mappo_td.plot import read_progress

    MAPPOTrainer(_run(tmp_path, 32)).train()
    ckpts = tmp_path / "r" / "checkpoints"
    MAPPOTrainer.from_checkpoint(ckpts, {"timesteps": 48, "experiment": {"eval_interval": 16, "eval_episodes": 1}}).train()
    lines = [line.split(",") for line in (tmp_path / "r" / "progress.csv").read_text().splitlines()]
    header = lines[0]
    assert "eval/return_mean" in header and {len(line) for line in lines} == {len(header)}
    rows = list(csv.DictReader(open(tmp_path / "r" / "progress.csv")))
    assert [r["eval/return_mean"] == "" for r in rows] == [True, True, False]  # rows from before: empty there
    assert read_progress(tmp_path / "r")["eval/return_mean"][-1] == float(rows[-1]["eval/return_mean"])
    MAPPOTrainer.from_checkpoint(ckpts, {"timesteps": 64, "experiment": {"eval_interval": 0}}).train()  # regression: "dict contains
    # fields not in fieldnames"; this row lacks the eval columns: empty there
    rows = list(csv.DictReader(open(tmp_path / "r" / "progress.csv")))
    assert [int(r["timestep"]) for r in rows] == [16, 32, 48, 64] and None not in rows[-1] and rows[-1]["eval/return_mean"] == ""


def test_a_torn_last_csv_row_is_dropped_on_resume(tmp_path):
    MAPPOTrainer(_run(tmp_path, 32)).train()
    csv_path = tmp_path / "r" / "progress.csv"
    before = list(csv.DictReader(open(csv_path)))
    csv_path.write_text(csv_path.read_text() + "4")  # killed while writing the row of timestep 48 (regression: kept as timestep 4)
    MAPPOTrainer.from_checkpoint(tmp_path / "r" / "checkpoints", {"timesteps": 48}).train()
    after = list(csv.DictReader(open(csv_path)))
    assert after[:2] == before and [int(r["timestep"]) for r in after] == [16, 32, 48] and after[-1]["frames"] == "384"
    assert all(None not in r and None not in r.values() for r in after)


def test_frames_keep_counting_when_num_envs_changes_on_resume(tmp_path):
    MAPPOTrainer(_run(tmp_path, 32, write_interval=16)).train()  # 8 envs: 256 frames at timestep 32
    ckpts = tmp_path / "r" / "checkpoints"
    MAPPOTrainer.from_checkpoint(ckpts, {"timesteps": 64, "env": {"num_envs": 4}}).train()
    frames = [int(r["frames"]) for r in csv.DictReader(open(tmp_path / "r" / "progress.csv"))]
    assert frames == [128, 256, 320, 384]  # regression: 192, 256 (timestep x the new count)
    assert load_checkpoint(ckpts / "agent_64.pt")["counters"]["frames"] == 384


def test_a_checkpoint_without_a_frame_count_counts_from_its_own_num_envs(tmp_path):
    MAPPOTrainer(_run(tmp_path, 32)).train()
    path = tmp_path / "r" / "checkpoints" / "agent_32.pt"
    state = torch.load(path, weights_only=True)
    del state["counters"]["frames"]  # as written before the count was kept
    torch.save(state, path)
    t = MAPPOTrainer.from_checkpoint(path, {"timesteps": 48, "env": {"num_envs": 2}})
    assert t.learner.frames == 32 * 8
    t.train()
    assert [int(r["frames"]) for r in csv.DictReader(open(tmp_path / "r" / "progress.csv"))] == [128, 256, 288]


def _resumed(tmp_path, first: dict, then: dict) -> MAPPOTrainer:
    exp = {"directory": str(tmp_path), "experiment_name": "r", "checkpoint_interval": 16, "write_interval": 16}
    MAPPOTrainer(small_config(timesteps=32, env={"max_steps": 16}, experiment=exp, **first)).train()
    return MAPPOTrainer.from_checkpoint(tmp_path / "r" / "checkpoints", {"timesteps": 48, **then})


STEP = {"learning_rate_scheduler": "StepLR", "learning_rate_scheduler_kwargs": {"step_size": 4, "gamma": 0.5}}  # x 0.5 every 4 steps


@pytest.mark.parametrize("first,then,read,want", [
    ({}, {"learning_rate": 0.05}, lambda g: g.optimizer.effective_lr(), 0.05),  # regression: the saved 0.001
    (dict(learning_rate_scheduler="KLAdaptiveLR", kl_threshold=1e-6), {"learning_rate": 0.05}, lambda g: g.optimizer.effective_lr(), 0.05),
    (STEP, {"learning_rate": 0.01}, lambda g: g.optimizer.effective_lr(), 0.01 * 0.25),  # 8 steps in: x 0.25, on the new base
    (dict(STEP, model={"share_params": False}), {"learning_rate": 0.01}, lambda g: g.optimizer.effective_lr(), [0.01 * 0.25] * 3),
    (STEP, {"learning_rate_scheduler_kwargs": {"step_size": 4, "gamma": 0.1}}, lambda g: g.scheduler.gamma, 0.1),  # regression: 0.5
    (dict(learning_rate_scheduler="KLAdaptiveLR"), {"learning_rate_scheduler_kwargs": {"kl_threshold": 0.02}},
     lambda g: g.scheduler.kl_threshold, 0.02),
    ({}, {"grad_norm_clip": 1.0}, lambda g: g.optimizer.grad_norm_clip, 1.0),
    ({}, {"kl_threshold": 0.3}, lambda g: g.kl_threshold, 0.3),
])
def test_optimizer_settings_given_on_resume_win(tmp_path, first, then, read, want):
    t = _resumed(tmp_path, first, then)
    name = next(iter(then))
    assert any(c.startswith(f"{name} ") for c in t.resume.changes)  # the line the CLI prints
    torch.testing.assert_close(torch.as_tensor(read(t.groups[0]), dtype=torch.float32), torch.tensor(want))
    t.train()
    if name == "learning_rate" and "learning_rate_scheduler" not in first:
        rows = list(csv.DictReader(open(tmp_path / "r" / "progress.csv")))
        assert float(rows[-1]["agents/learning_rate"]) == pytest.approx(0.05)  # the log shows it


def test_another_learning_rate_scheduler_on_resume_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"learning_rate_scheduler 'KLAdaptiveLR' differs from the checkpoint's None: the schedule's "
                                         r"state cannot carry over"):  # regression: "does not match this configuration's models"
        _resumed(tmp_path, {}, {"learning_rate_scheduler": "KLAdaptiveLR"})


def test_restored_adam_keeps_this_runs_own_settings():
    """A run resumed with another fast mode: Adam's capturable (CUDA graphs) and fused are this run's, not the checkpoint's."""
    from mappo_td.train.optim import GroupOptimizer

    def make(capturable):
        p = torch.nn.Parameter(torch.zeros(3))
        opt = GroupOptimizer([p], lr=torch.tensor(0.1), grad_norm_clip=torch.tensor(0.0), capturable=capturable)
        p.grad = torch.ones(3)
        opt.step()
        return opt

    restored = make(capturable=True)
    restored.load_state_dict(make(capturable=False).state_dict())
    assert restored.adam.param_groups[0]["capturable"] is True  # regression: False, from the checkpoint
    restored.step()  # and it still steps
