"""PettingZoo (mpe2) through the same modules: a two-group environment with per-agent configuration."""

import csv
import warnings

import pytest
import torch

from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config

pytest.importorskip("mpe2")


def test_two_groups_train_with_per_agent_values():
    cfg = small_config(
        timesteps=48, rollouts=16,
        env={"backend": "pettingzoo", "scenario": "simple_adversary_v3", "num_envs": 4, "max_steps": 12,
             "continuous_actions": False, "scenario_kwargs": {}},
        discount_factor={"adversary_0": 0.9, "agent_0": 0.95, "agent_1": 0.99},
        learning_rate={"adversary": 3e-3, "agent": 1e-3},
        ratio_clip={"adversary": 0.1, "agent": 0.3},
    )
    t = MAPPOTrainer(cfg)
    assert t.group_map == {"adversary": ["adversary_0"], "agent": ["agent_0", "agent_1"]}
    adv, team = t.groups
    torch.testing.assert_close(adv.gae.gamma.flatten(), torch.tensor([0.9]))
    torch.testing.assert_close(team.gae.gamma.flatten(), torch.tensor([0.95, 0.99]))
    assert float(adv.optimizer.lr) == pytest.approx(3e-3) and float(team.optimizer.lr) == pytest.approx(1e-3)
    torch.testing.assert_close(adv.loss.ratio_clip.flatten(), torch.tensor([0.1]))
    torch.testing.assert_close(team.loss.ratio_clip.flatten(), torch.tensor([0.3, 0.3]))  # every agent of the group
    # the centralized critic of each group reads every group's observations
    assert set(adv.critic.in_keys) == set(team.critic.in_keys) == {("adversary", "observation"), ("agent", "observation")}
    before = {g.name: [p.detach().clone() for p in g.policy.parameters()] for g in t.groups}
    summary = t.train()
    for g in t.groups:
        moved = [not torch.equal(a, b) for a, b in zip(before[g.name], g.policy.parameters())]
        assert any(moved), f"group {g.name} was not updated"
        assert all(torch.isfinite(p).all() for p in g.policy.parameters())
    assert summary["episode/count"] > 0  # 12-step episodes ended and were counted
    assert "reward/adversary/episode_mean" in summary and "reward/agent/episode_mean" in summary


def _pz_config(timesteps, directory):
    return small_config(timesteps=timesteps, env={"backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": 2, "max_steps": 25,
                                                  "continuous_actions": False},
                        experiment={"directory": str(directory), "experiment_name": "r", "checkpoint_interval": 32, "write_interval": 16})


def test_pettingzoo_resume_is_exact(tmp_path):
    """32 timesteps + resume to 64 equals 64 straight, bit for bit (PettingZoo tasks keep numpy generators of their own)."""
    full = MAPPOTrainer(_pz_config(64, tmp_path / "a"))
    full.train()
    MAPPOTrainer(_pz_config(32, tmp_path / "b")).train()
    resumed = MAPPOTrainer.from_checkpoint(tmp_path / "b" / "r" / "checkpoints", {"timesteps": 64})
    resumed.train()
    for p, q in zip(full.state_dict()["models"].values(), resumed.state_dict()["models"].values()):
        for k in p:
            torch.testing.assert_close(p[k], q[k], rtol=0, atol=0, msg=k)
    timing = ("frames_per_s", "time_s")  # wall-clock columns differ between runs
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in csv.DictReader(open(tmp_path / d / "r" / "progress.csv"))]
            for d in ("a", "b")]
    assert rows[0] == rows[1] and len(rows[0]) == 4


def test_pettingzoo_tasks_do_not_get_the_vmas_default_kwargs():
    cfg = small_config(env={"backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": 2, "continuous_actions": False})
    assert cfg.env.scenario_kwargs is None
    assert MAPPOTrainer(cfg).group_map == {"agent": ["agent_0", "agent_1", "agent_2"]}


def test_recurrent_policies_on_two_pettingzoo_groups():
    """Regression: the state primer could not pick between PettingZoo's root and per-group reset keys."""
    cfg = small_config(timesteps=16, rollouts=8, data_chunk_length=4,
                       env={"backend": "pettingzoo", "scenario": "simple_adversary_v3", "num_envs": 2, "max_steps": 5,
                            "continuous_actions": False, "scenario_kwargs": {}},
                       model={"body": "gru", "rnn_hidden_size": 8})
    t = MAPPOTrainer(cfg)
    data = t.collect()
    init = data["is_init"][:, 1:, 0]
    assert init.any()  # 5-step episodes restart inside the 8-step rollout
    for g in ("adversary", "agent"):
        h, h_next = data[g, "rnn_state"], data["next", g, "rnn_state"]
        torch.testing.assert_close(h[:, 1:][~init], h_next[:, :-1][~init], rtol=0, atol=0)
        assert h[:, 1:][init].abs().max() == 0
    t.train()
    assert t.evaluate(2)["episodes"] == 2.0


README_PZ = ["--backend", "pettingzoo", "--scenario", "simple_adversary_v3", "--no-continuous-actions", "--scenario-kwargs", "{}"]


def test_the_readme_pettingzoo_command_logs_a_row_within_256_timesteps(tmp_path, capsys):
    from mappo_td.cli import main

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert main(["train", *README_PZ, "--timesteps", "256", "--no-progress", "--directory", str(tmp_path), "--experiment-name", "pz"]) == 0
    (row,) = csv.DictReader((tmp_path / "pz" / "progress.csv").open())
    assert row["timestep"] == "256" and row["frames"] == str(256 * 8)  # the PettingZoo default: 8 envs
    assert {"reward/adversary/episode_mean", "reward/agent/episode_mean"} <= set(row) and float(row["episode/count"]) > 0
    assert not [w for w in seen if "tested using version" in str(w.message)]  # TorchRL's version note is silenced


def test_a_missing_mpe2_says_how_to_install_it(monkeypatch):
    import sys

    from mappo_td.envs import EnvConfig, make_env

    for mod in ("mpe2", "mpe2.simple_adversary_v3", "pettingzoo.mpe", "pettingzoo.mpe.simple_adversary_v3"):
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ValueError, match=r"lives in the mpe2 package, not installed here: pip install -e \"\.\[pettingzoo\]\""):
        make_env(EnvConfig(backend="pettingzoo", scenario="simple_adversary_v3", num_envs=1))


def test_worker_processes_step_the_same_episodes_as_one_process(tmp_path):
    """env.num_workers >= 2 steps the envs in a pool of worker processes: the same seeds give the same run."""
    from mappo_td.cli import main

    out = {}
    for workers in (1, 2):
        d = tmp_path / f"w{workers}"
        flags = ["train", *README_PZ, "--num-envs", "2", "--num-workers", str(workers), "--timesteps", "64", "--write-interval", "32",
                 "--max-steps", "16", "--no-progress", "--directory", str(d), "--experiment-name", "r"]
        assert main(flags) == 0
        out[workers] = [(r["timestep"], r["reward/episode_mean"], r["adversary/loss_critic"]) for r in csv.DictReader((d / "r" / "progress.csv").open())]
    assert out[1] == out[2] and len(out[1]) == 2


def test_connect_four_trains_two_groups_and_never_moves_illegally():
    """An AEC board game through TorchRL's wrapper: (player_i, "action_mask") says which columns are open and
    (player_i, "mask") whose turn it is; the policy never picks a full column, random exploration included."""
    pytest.importorskip("pettingzoo.classic.connect_four_v3")
    cfg = small_config(timesteps=96, rollouts=24, random_timesteps=24,
                       env={"backend": "pettingzoo", "scenario": "connect_four_v3", "num_envs": 4, "num_workers": 1, "max_steps": 42})
    t = MAPPOTrainer(cfg)
    assert list(t.group_map) == ["player_0", "player_1"]
    assert all(g.policy.module[-1].distribution_class.__name__ == "MaskedCategorical" for g in t.groups)
    before = [p.detach().clone() for p in t.groups[0].policy.parameters()]
    summary = t.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, t.groups[0].policy.parameters()))
    assert summary["episode/count"] > 0
    full_columns = 0
    for _ in range(3):  # games long enough that columns fill up: the mask then really forbids something
        data = t.collect()
        for g in t.group_map:
            acting, legal = data[g, "mask"], data[g, "action_mask"]
            chosen = legal.gather(-1, data[g, "action"].unsqueeze(-1)).squeeze(-1)
            assert bool(chosen[acting].all()), f"{g} moved into a full column"
            full_columns += int((~legal[acting]).sum())
    assert full_columns > 0


def test_knights_archers_zombies_trains_and_its_losses_ignore_dead_agents():
    pytest.importorskip("pettingzoo.butterfly.knights_archers_zombies_v11")
    from mappo_td.train import compute_advantages

    cfg = small_config(timesteps=32, rollouts=16,
                       env={"backend": "pettingzoo", "scenario": "knights_archers_zombies_v11", "num_envs": 2, "num_workers": 1,
                            "max_steps": 40})
    t = MAPPOTrainer(cfg)
    assert t.group_map == {"archer": ["archer_0", "archer_1"], "knight": ["knight_0", "knight_1"]}
    t.train()
    g = t.groups[0]
    data = compute_advantages(g, t.collect()).reshape(-1)
    data[g.name, "mask"][: len(data) // 2, 1] = False  # archer_1 "dead" for the first half of the batch
    out = g.loss(data.clone())
    dead = ~data[g.name, "mask"]
    changed = data.clone()
    changed[g.name, "action"][dead] = (changed[g.name, "action"][dead] + 1) % 6
    changed[g.name, "advantage"][dead] = 1e3
    changed[g.name, "value_target"][dead] = -1e3
    out2 = g.loss(changed)
    for k in ("loss_objective", "loss_critic", "loss_entropy"):
        torch.testing.assert_close(out[k], out2[k])
        assert torch.isfinite(out[k])


@pytest.mark.parametrize("scenario, groups, competitive", [
    ("simple_speaker_listener_v4", {"speaker": ["speaker_0"], "listener": ["listener_0"]}, False),
    ("simple_world_comm_v3", {"leadadversary": ["leadadversary_0"], "adversary": ["adversary_0", "adversary_1", "adversary_2"],
                              "agent": ["agent_0", "agent_1"]}, True),
])
def test_heterogeneous_groups_train_with_a_centralized_critic_across_groups(scenario, groups, competitive):
    """Groups with different observation and action spaces: each group's critic reads every group's observations,
    every group is updated, and the log has each group's own episode reward."""
    cfg = small_config(timesteps=32, rollouts=16, env={"backend": "pettingzoo", "scenario": scenario, "num_envs": 2, "max_steps": 8,
                                                     "continuous_actions": False, "num_workers": 1, "scenario_kwargs": {}})
    t = MAPPOTrainer(cfg)
    assert t.group_map == groups
    sizes = {g: t.env.observation_spec[g, "observation"].shape[-1] for g in groups}
    assert len(set(sizes.values())) > 1  # the groups really differ
    every = {(g, "observation") for g in groups}
    before = {}
    for g in t.groups:
        assert set(g.critic.in_keys) == every
        before[g.name] = [p.detach().clone() for p in g.policy.parameters()]
    summary = t.train()
    for g in t.groups:
        assert any(not torch.equal(a, b) for a, b in zip(before[g.name], g.policy.parameters())), f"group {g.name} was not updated"
    rows = list(csv.DictReader(open(f"{summary['run_dir']}/progress.csv")))
    for g in groups:
        values = [float(r[f"reward/{g}/episode_mean"]) for r in rows]
        assert all(v == v for v in values), f"group {g}: no episode reward logged ({values})"
    last = {g: rows[-1][f"reward/{g}/episode_mean"] for g in groups}
    assert (last["adversary"] != last["agent"]) if competitive else len(set(last.values())) == 1, last  # shared or each its own


def test_num_workers_is_a_process_count_and_the_old_name_still_reads():
    from mappo_td.config import TrainConfig

    with pytest.raises(ValueError, match=r"num_workers=9 with num_envs=8: each worker process steps at least one env"):
        TrainConfig.from_dict({"env": {"backend": "pettingzoo", "num_envs": 8, "num_workers": 9}})
    with pytest.raises(ValueError, match="num_workers=2 is for PettingZoo"):
        TrainConfig.from_dict({"env": {"backend": "vmas", "num_workers": 2}})
    assert TrainConfig.from_dict({"env": {"backend": "pettingzoo", "num_workers": 3}}).env.num_envs == 8  # 3 processes, 8 envs
    assert TrainConfig.from_dict({"env": {"backend": "pettingzoo", "num_workers": 12}}).env.num_envs == 12
    assert TrainConfig.from_dict({"env": {"backend": "pettingzoo", "workers": 1}}).env.num_workers == 1
    with pytest.raises(ValueError, match="not both"):
        TrainConfig.from_dict({"env": {"workers": 1, "num_workers": 1}})


def test_pettingzoo_renders_while_training_and_in_eval(tmp_path, capsys):
    """--eval-render on an MPE task and mappo-td eval --render on an AEC board game: PettingZoo renders in its
    constructor's render_mode, one GIF of the first env's first episode."""
    pytest.importorskip("pettingzoo.classic.connect_four_v3")
    from PIL import Image

    from mappo_td.cli import main

    tiny = ["--num-envs", "2", "--num-workers", "1", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu",
            "--checkpoint-interval", "0", "--directory", str(tmp_path)]
    assert main(["train", *tiny, "--scenario", "simple_spread_v3", "--backend", "pettingzoo", "--max-steps", "8", "--timesteps", "16",
                 "--eval-interval", "16", "--eval-episodes", "2", "--eval-render", "--experiment-name", "mpe"]) == 0
    assert Image.open(tmp_path / "mpe" / "eval" / "eval_16.gif").n_frames == 7  # the 8th step ends the episode
    assert main(["train", *tiny, "--scenario", "connect_four_v3", "--backend", "pettingzoo", "--no-continuous-actions",
                 "--timesteps", "8", "--experiment-name", "c4"]) == 0
    gif = tmp_path / "c4.gif"
    assert main(["eval", str(tmp_path / "c4" / "checkpoints"), "--episodes", "2", "--render", str(gif)]) == 0
    frames = Image.open(gif)
    assert 3 <= frames.n_frames <= 42 and frames.size == (891, 774)  # one game: a board per move until it ends


def test_an_aec_task_needs_one_env_per_worker_process():
    pytest.importorskip("pettingzoo.classic.connect_four_v3")
    from mappo_td.envs import EnvConfig, make_env

    with pytest.raises(ValueError, match=r"num_workers=2 with num_envs=4: connect_four_v3 is stepped by TorchRL's ParallelEnv"):
        make_env(EnvConfig(backend="pettingzoo", scenario="connect_four_v3", num_envs=4, num_workers=2, continuous_actions=False))
