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
    with pytest.raises(ValueError, match="timesteps=16 is below the checkpoint's timestep 32"):
        MAPPOTrainer.from_checkpoint(ckpts / "agent_32.pt", {"timesteps": 16})

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
