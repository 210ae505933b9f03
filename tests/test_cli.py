"""The command line writes and reads its outputs, reports bad input, and has a flag for every field."""

import csv

import pytest

from mappo_td.cli import main


def test_cli_train_writes_outputs_and_eval_reads_them(tmp_path, capsys):
    rc = main(["train", "--timesteps", "128", "--num-envs", "8", "--hidden-sizes", "16", "--device", "cpu", "--no-progress",
               "--directory", str(tmp_path), "--experiment-name", "cli", "--write-interval", "32", "--checkpoint-interval", "64",
               "--discount-factor", '{"agent_0": 0.9, "agent_1": 0.95, "agent_2": 0.99}'])
    assert rc == 0
    run = tmp_path / "cli"
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = list(csv.DictReader(open(run / "progress.csv")))
    assert [int(r["timestep"]) for r in rows] == [32, 64, 96, 128]
    assert {"agents/loss_objective", "agents/kl_approx", "agents/clip_fraction", "agents/learning_rate", "frames_per_s"} <= set(rows[0])
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["agent_128.pt", "agent_64.pt"]
    assert '"discount_factor": {' in (run / "config.json").read_text() and (run / "config.yaml").exists()
    capsys.readouterr()
    assert main(["eval", str(run / "checkpoints"), "--episodes", "4", "--render", str(tmp_path / "ep.gif")]) == 0
    out = capsys.readouterr().out
    assert "4 episodes: mean return" in out
    from PIL import Image

    gif = Image.open(tmp_path / "ep.gif")
    assert gif.n_frames >= 90 and gif.size[0] > 100  # one frame per step of the first 100-step episode


def test_cli_reports_bad_input(tmp_path, capsys):
    assert main(["train", "--rollouts", "-3", "--no-progress"]) == 2
    assert "rollouts must be an integer >= 1" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", str(tmp_path / "bad.pt")]) == 2
    assert "corrupt, truncated" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--help"])
def test_every_config_field_has_a_flag(flag, capsys):
    with pytest.raises(SystemExit):
        main(["train", flag])
    text = capsys.readouterr().out
    for name in ("--rollouts", "--lambda", "--kl-threshold", "--time-limit-bootstrap", "--checkpoint-interval", "--store-separately",
                 "--num-envs", "--share-params", "--centralized-critic", "--timesteps", "--compile"):
        assert name in text


def test_rollouts_equal_to_the_number_of_agents_trains(tmp_path):
    """Regression: with T == n_agents (3 rollouts, 3 agents) team-shared flags [N, T, 1] were taken for per-agent ones."""
    rc = main(["train", "--rollouts", "3", "--timesteps", "6", "--num-envs", "4", "--device", "cpu", "--no-progress",
               "--directory", str(tmp_path), "--experiment-name", "t3"])
    assert rc == 0
    rows = list(csv.DictReader(open(tmp_path / "t3" / "progress.csv")))
    assert [int(r["timestep"]) for r in rows] == [6]
