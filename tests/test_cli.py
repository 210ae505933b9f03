"""The command line writes and reads its outputs, reports bad input, and has a flag for every field."""

import csv
import importlib
import json

import pytest
import torch

from mappo_td.cli import main


def test_cli_train_writes_outputs_and_eval_reads_them(tmp_path, capsys):
    rc = main(["train", "--timesteps", "128", "--num-envs", "8", "--hidden-sizes", "16", "--device", "cpu", "--no-progress",
               "--directory", str(tmp_path), "--experiment-name", "cli", "--write-interval", "32", "--checkpoint-interval", "64",
               "--max-steps", "64",
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
    assert gif.n_frames >= 60 and gif.size[0] > 100  # one frame per step of the first 64-step episode


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


def _snapshot(folder):
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


def test_eval_writes_nothing(tmp_path, capsys):
    """Regression: eval made the checkpoint's grandparent a run folder and wrote config.json, tensorboard/ ... there."""
    proj = tmp_path / "proj"
    assert main(["train", "--timesteps", "32", "--num-envs", "4", "--hidden-sizes", "8", "--device", "cpu", "--no-progress",
                 "--directory", str(tmp_path), "--experiment-name", "proj"]) == 0
    ckpts = proj / "ckpts"
    (proj / "checkpoints").rename(ckpts)
    (proj / "config.json").write_text('{"mine": "a file of the user"}')
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(ckpts / "agent_32.pt"), "--episodes", "2"]) == 0
    assert "2 episodes: mean return" in capsys.readouterr().out
    assert _snapshot(tmp_path) == before


def test_flags_override_a_config_file_in_the_source_documents_form(tmp_path):
    """Regression: with a skrl-form config file, flags were silently ignored."""
    cfg = tmp_path / "skrl.yaml"
    cfg.write_text("rollouts: 16\nlearning_rate: 1e-3\nlambda: 0.9\nexperiment:\n  directory: ignored\n  write_interval: 8\n")
    assert main(["train", "--config", str(cfg), "--rollouts", "8", "--learning-rate", "0.0005", "--directory", str(tmp_path),
                 "--experiment-name", "Y", "--timesteps", "16", "--num-envs", "4", "--device", "cpu", "--no-progress"]) == 0
    saved = __import__("json").loads((tmp_path / "Y" / "config.json").read_text())
    assert saved["mappo"]["rollouts"] == 8 and saved["mappo"]["learning_rate"] == 0.0005  # flags win
    assert saved["mappo"]["lambda"] == 0.9 and saved["mappo"]["experiment"]["write_interval"] == 8  # the file over defaults
    assert [int(r["timestep"]) for r in csv.DictReader(open(tmp_path / "Y" / "progress.csv"))] == [8, 16]


@pytest.mark.parametrize("content,name,match", [
    ("rollouts: [1, 2\n", "bad.yaml", "is not valid YAML"),
    ('{"rollouts": 1,}', "bad.json", "is not valid JSON"),
    ("- 1\n- 2\n", "list.yaml", "must hold a mapping of config keys, got a list"),
    (None, "folder", "is a folder; pass a .yaml, .yml or .json file"),
    (None, "missing.yaml", "no such file"),
    ("env:\n  continuous_actions: 'no'\n", "bool.yaml", "env.continuous_actions must be true or false, got 'no'"),
])
def test_config_file_errors_name_the_file(tmp_path, capsys, content, name, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    elif name == "folder":
        path.mkdir()
    assert main(["train", "--config", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mappo-td: error:") and match in err and "Traceback" not in err


def test_eval_episodes_must_be_positive(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["eval", "somewhere", "--episodes", "0"])
    assert exit_.value.code == 2 and "must be an integer >= 1, got '0'" in capsys.readouterr().err


def test_library_errors_keep_their_context():
    from mappo_td.cli import describe

    try:
        import torch

        torch.zeros(2).view(3)
    except RuntimeError as err:
        text = describe(err)
    assert text.startswith("RuntimeError from ") and "shape '[3]' is invalid" in text and "MAPPO_TD_DEBUG" in text


def test_import_and_help_do_not_load_torch():
    import subprocess
    import sys

    code = "import sys, mappo_td, mappo_td.cli; mappo_td.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("flags,match", [
    (["--scenario", "navigaton"], "unknown VMAS scenario 'navigaton'"),
    (["--scenario-kwargs", '{"n_agent": 3}'], "are not read by VMAS scenario 'navigation'"),
    (["--learning-rate-scheduler", "ReduceLROnPlateau"], "steps on a metric"),
    (["--learning-rate-scheduler", "StepLR"], "do not fit StepLR"),
    (["--num-envs", "1", "--rollouts", "1"], "env.num_envs x rollouts must be >= 2"),
    (["--log-std-init", "nan"], "model.log_std_init must be a finite number"),
    (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "device"),
    (["--backend", "pettingzoo", "--scenario", "simple_nothing_v1"], "unknown PettingZoo task"),
])
def test_bad_input_ends_with_one_clear_message(flags, match, capsys, tmp_path):
    assert main(["train", *flags, "--no-progress", "--directory", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mappo-td: error:") and match in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_resume_flags_need_resume(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--fork", "x"])
    assert "--fork and --overwrite-later go with --resume" in capsys.readouterr().err


def test_recurrent_run_from_the_command_line_then_eval(tmp_path, capsys):
    rc = main(["train", "--body", "gru", "--rnn-hidden-size", "8", "--rnn-layers", "2", "--rollouts", "8", "--data-chunk-length", "4",
               "--timesteps", "16", "--num-envs", "4", "--hidden-sizes", "8", "--device", "cpu", "--no-progress",
               "--directory", str(tmp_path), "--experiment-name", "gru"])
    assert rc == 0
    ckpt = tmp_path / "gru" / "checkpoints" / "agent_16.pt"
    from mappo_td.train import load_checkpoint

    models = load_checkpoint(ckpt)["models"]
    assert any("cells.1.weight_hh" in k for k in models["agents/policy"]) and any("cells" in k for k in models["agents/critic"])  # 2 GRU layers
    capsys.readouterr()
    assert main(["eval", str(ckpt), "--episodes", "3"]) == 0
    assert "3 episodes: mean return" in capsys.readouterr().out
    assert main(["train", "--body", "gru", "--no-progress"]) == 2
    assert "data_chunk_length=10 must divide rollouts=16" in capsys.readouterr().err


def test_help_shows_readable_defaults_and_typed_metavars(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "null" not in out and '(default: "")' not in out and " V " not in out and "[--tanh-squash V]" not in out
    assert "--learning-rate-scheduler NAME" in out and "(default: none)" in out and "--directory TEXT" in out
    assert "--rollouts N" in out and "--learning-rate X|JSON" in out and "--tanh-squash, --no-tanh-squash" in out


def test_seeds_train_sibling_runs_and_plot_overlays_them(tmp_path, capsys):
    flags = ["train", "--device", "cpu", "--num-envs", "4", "--rollouts", "8", "--timesteps", "48", "--max-steps", "12",
             "--hidden-sizes", "16", "--write-interval", "8", "--no-progress", "--directory", str(tmp_path), "--experiment-name", "nav"]
    assert main([*flags, "--seeds", "3", "4"]) == 0
    runs = [tmp_path / "nav_seed3", tmp_path / "nav_seed4"]
    assert [json.loads((r / "config.json").read_text())["seed"] for r in runs] == [3, 4]
    times = [float(r["time_s"]) for r in csv.DictReader((runs[0] / "progress.csv").open())]
    assert len(times) == 6 and times == sorted(times) and times[0] > 0
    assert f"mappo-td plot {runs[0]} {runs[1]}" in capsys.readouterr().out
    out = tmp_path / "curves.png"
    assert main(["plot", str(runs[0]), str(runs[1]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert main(["plot", str(tmp_path / "missing")]) == 2 and "has no progress.csv" in capsys.readouterr().err


def test_preset_under_config_file_under_flags(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("learning_epochs: 3\n")
    assert main(["train", "--preset", "mappo-paper", "--config", str(cfg), "--rollouts", "10", "--data-chunk-length", "5",
                 "--directory", str(tmp_path), "--experiment-name", "P", "--timesteps", "10", "--num-envs", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    saved = json.loads((tmp_path / "P" / "config.json").read_text())
    m = saved["mappo"]
    assert (m["value_loss"], m["huber_delta"], m["value_preprocessor"], m["value_clip_form"]) == ("huber", 10.0, "ValueNorm", "max")
    assert saved["model"]["body"] == "gru" and m["mini_batches"] == 1 and m["entropy_loss_scale"] == 0.01  # the preset
    assert m["learning_epochs"] == 3  # the config file over the preset
    assert (m["rollouts"], m["data_chunk_length"]) == (10, 5)  # flags over both


def test_unknown_preset_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "mappo-papers"])
    assert "invalid choice: 'mappo-papers' (choose from 'mappo-paper')" in capsys.readouterr().err


TINY = ["--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]


def test_a_checkpoint_interval_under_which_no_episode_finishes_is_refused_before_anything_is_written(tmp_path, capsys):
    """Each checkpoint restarts every episode (exact resume): 40-step intervals and 100-step episodes would log no episode ever."""
    assert main(["train", *TINY, "--checkpoint-interval", "40", "--timesteps", "240", "--directory", str(tmp_path / "runs")]) == 2
    assert ("checkpoint_interval=40 is shorter than an episode (100 steps): each checkpoint restarts every episode (so that a "
            "resumed run is exact), so no episode would ever finish. Use checkpoint_interval >= 104 (a multiple of 200 cuts no "
            "episode short) or 0 (a checkpoint only at the end).") in capsys.readouterr().err
    # 100 with rollouts 8: checkpoints fall on updates at 104, 200, 304 ...: 96 steps apart, still too short
    assert main(["train", *TINY, "--checkpoint-interval", "100", "--timesteps", "240", "--directory", str(tmp_path / "runs")]) == 2
    assert "puts checkpoints as little as 96 steps apart (they fall on updates, every rollouts=8 steps: at 104, 200" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_eval_and_resume_refuse_a_checkpoint_with_non_finite_parameters(tmp_path, capsys):
    assert main(["train", *TINY, "--timesteps", "16", "--checkpoint-interval", "0", "--state-preprocessor", "RunningStandardScaler",
                 "--directory", str(tmp_path), "--experiment-name", "r"]) == 0
    path = tmp_path / "r" / "checkpoints" / "agent_16.pt"
    state = torch.load(path, weights_only=True)
    name = next(k for k in state["models"]["agents/policy"] if k.endswith("weight"))
    state["models"]["agents/policy"][name].view(-1)[:3] = float("nan")
    state["preprocessors"]["agents/state_preprocessor"]["running_variance"][0] = float("inf")
    torch.save(state, path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(path), "--episodes", "2", "--render", str(tmp_path / "ep.gif")]) == 2
    err = capsys.readouterr().err
    assert f"agents/policy: {name} has 3 non-finite values" in err and "earlier checkpoint" in err
    assert "agents/state_preprocessor: running_variance has 1 non-finite value" in err
    assert main(["train", "--resume", str(path), "--timesteps", "32"]) == 2
    assert f"agents/policy: {name} has 3 non-finite values" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before  # no GIF, the run folder as it was


def test_a_renderer_that_fails_is_reported_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from mappo_td.train import RenderError

    def no_display(*args, **kwargs):
        raise RenderError("the environment cannot render frames here (no display).")

    monkeypatch.setattr(importlib.import_module("mappo_td.train.render"), "render_frame", no_display)
    monkeypatch.setattr(importlib.import_module("mappo_td.train.evaluate"), "render_frame", no_display)
    flags = ["train", *TINY, "--timesteps", "16", "--checkpoint-interval", "0", "--directory", str(tmp_path / "runs"), "--experiment-name", "r"]
    assert main([*flags, "--eval-interval", "8", "--eval-render"]) == 2
    assert ("navigation: the environment cannot render frames here (no display). Train without --eval-render "
            "(experiment.eval_render=false).") in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    assert main(flags) == 0
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "runs" / "r" / "checkpoints"), "--episodes", "2", "--render", str(tmp_path / "ep.gif")]) == 2
    assert "navigation: the environment cannot render frames here (no display). Evaluate without --render" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


TRAIN_TINY = ["train", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize("argv,usage,hint", [
    (["train", "--num-env", "4"], "usage: mappo-td train", "unrecognized arguments: --num-env 4 (did you mean '--num-envs'?)"),
    (["--timestep", "5"], "usage: mappo-td train", "(did you mean '--timesteps'?)"),  # no command: train
    (["eval", "x", "--episode", "3"], "usage: mappo-td eval", "(did you mean '--episodes'?)"),
])
def test_an_unknown_flag_gets_its_commands_usage_and_close_matches(argv, usage, hint, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(usage) and hint in err  # regression: the top-level usage, no hint


def test_duplicate_seeds_are_refused_at_parse(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*TRAIN_TINY, "--seeds", "3", "3", "--directory", str(tmp_path), "--experiment-name", "x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("usage: mappo-td train") and "--seeds 3 3: seed(s) [3] given twice" in err
    assert not any(tmp_path.iterdir())


def test_a_run_shorter_than_an_episode_says_no_episode_finished(tmp_path, capsys):
    assert main([*TRAIN_TINY, "--timesteps", "8", "--directory", str(tmp_path), "--experiment-name", "short"]) == 0
    out = capsys.readouterr().out
    assert "done: no episode finished yet (an episode lasts up to max_steps=100 timesteps) at timestep 8" in out and "nan" not in out


def test_a_run_ending_past_timesteps_says_so_evaluates_and_resumes(tmp_path, capsys):
    flags = [*TRAIN_TINY, "--directory", str(tmp_path), "--experiment-name", "r"]
    assert main([*flags, "--timesteps", "12"]) == 0
    assert "12 timesteps (the run ends at timestep 16: updates come in rollouts=8 steps)" in capsys.readouterr().out
    ckpts = str(tmp_path / "r" / "checkpoints")
    assert main(["eval", ckpts, "--episodes", "1"]) == 0  # regression: "timesteps=12 is below the checkpoint's timestep 16"
    assert main(["train", "--resume", ckpts]) == 2
    assert "the run is finished: it reached timestep 16 (timesteps=12" in capsys.readouterr().err
    assert main(["train", "--resume", ckpts, "--timesteps", "24", "--learning-rate", "0.05"]) == 0
    out = capsys.readouterr().out
    assert f"resuming {ckpts} at timestep 16; changed from the checkpoint: learning_rate 0.001 -> 0.05, timesteps 12 -> 24" in out


def test_a_stop_under_torchrun_prints_the_torchrun_command(tmp_path, monkeypatch, capsys):
    import mappo_td.train.distributed as distributed
    from mappo_td.train.interrupt import Interrupted
    from mappo_td.trainer import MAPPOTrainer

    ckpt = tmp_path / "r" / "checkpoints" / "agent_8.pt"

    def stopped(self):
        raise Interrupted(8, ckpt)

    monkeypatch.setattr(MAPPOTrainer, "train", stopped)
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))  # rank 0 of 2, as under torchrun --nproc-per-node 2
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert main([*TRAIN_TINY, "--timesteps", "8", "--directory", str(tmp_path), "--experiment-name", "r"]) == 130
    err = capsys.readouterr().err
    assert f"Continue with:\n  torchrun --nproc-per-node 2 $(which mappo-td) train --resume {ckpt}\n" in err


def test_eval_takes_a_run_folder_and_checks_the_gif_folder_before_evaluating(tmp_path, capsys):
    """`mappo-td eval runs/<name>` (the folder training prints) reads its checkpoints/; a GIF into a missing folder is
    refused before any episode is played, naming the folder (it used to fail at the end, naming a temporary file)."""
    assert main([*TRAIN_TINY, "--timesteps", "8", "--directory", str(tmp_path), "--experiment-name", "r"]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "r"), "--episodes", "1", "--device", "cpu"]) == 0
    assert "1 episodes: mean return" in capsys.readouterr().out
    missing = tmp_path / "nowhere" / "x.gif"
    assert main(["eval", str(tmp_path / "r"), "--episodes", "1", "--render", str(missing)]) == 2
    assert f"the folder {missing.parent} does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_writing_off_leaves_no_log_rows_and_the_summary_reports_the_whole_session(tmp_path, capsys):
    """skrl's write_interval 0 (here as "auto" for a run under 100 timesteps: int(64 / 100) = 0) writes no TensorBoard or
    CSV row; the printed summary is then the session's mean episode reward, the one a single row at the end logs."""
    common = ["train", "--timesteps", "64", "--rollouts", "16", "--num-envs", "4", "--hidden-sizes", "8", "--max-steps", "16",
              "--device", "cpu", "--no-progress", "--directory", str(tmp_path)]
    capsys.readouterr()
    assert main([*common, "--experiment-name", "off", "--write-interval", "auto", "--checkpoint-interval", "0"]) == 0
    said = capsys.readouterr().out
    assert main([*common, "--experiment-name", "one_row", "--write-interval", "64", "--checkpoint-interval", "0"]) == 0
    off = tmp_path / "off"
    assert json.loads((off / "config.json").read_text())["mappo"]["experiment"]["write_interval"] == 0
    assert not (off / "tensorboard").exists() and not (off / "progress.csv").exists()
    assert [p.name for p in (off / "checkpoints").glob("*.pt")] == ["agent_64.pt"]
    row, = csv.DictReader(open(tmp_path / "one_row" / "progress.csv"))
    reward = float(row["reward/episode_mean"])
    assert f"done: mean episode reward {reward:.4f} (every episode of the session: write_interval=0, no log rows) at timestep 64" in said
    assert "mappo-td plot" not in said  # nothing to plot
    assert main([*common, "--experiment-name", "bad", "--write-interval", "-1"]) == 2
    assert "write_interval must be an integer >= 0" in capsys.readouterr().err
