"""Resumes and saves that could write over another run's files (found by a hostile trial): each case failed before its fix."""

from pathlib import Path

import pytest

from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


# item 1 -- MAPPOTrainer.from_checkpoint(..., fork=NEW).save() writes into the ORIGINAL run's checkpoints/,
# replacing its agent_<t>.pt with a checkpoint that carries the resume's changed config (learning_rate, timesteps).
def test_save_of_a_forked_resume_leaves_the_earlier_run_untouched():
    cfg = small_config(experiment={"checkpoint_interval": 0})
    trainer = MAPPOTrainer(cfg)
    trainer.train()
    run = trainer.run_dir
    before = snapshot(run)
    forked = MAPPOTrainer.from_checkpoint(run / "checkpoints", {"learning_rate": 0.05, "timesteps": 64}, fork="forked")
    path = forked.save()
    assert snapshot(run) == before  # the earlier run's files, byte for byte
    assert path.parent.parent == run.parent / "forked"


# item 1 -- `mappo-td train --resume DIR/saved/agent_N.pt` (a checkpoint not in a run's checkpoints/ folder, e.g.
# a copied or downloaded one) takes DIR as the run folder and overwrites the user's DIR/config.json and progress.csv.
def test_resume_from_a_checkpoint_outside_a_run_folder_overwrites_no_file_there(tmp_path, capsys):
    from mappo_td.cli import main

    tiny = ["train", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]
    assert main([*tiny, "--directory", str(tmp_path), "--experiment-name", "run", "--timesteps", "8"]) == 0
    mine = tmp_path / "mine"
    (mine / "saved").mkdir(parents=True)
    (mine / "saved" / "agent_8.pt").write_bytes((tmp_path / "run" / "checkpoints" / "agent_8.pt").read_bytes())
    (mine / "config.json").write_text("my own config\n")
    (mine / "progress.csv").write_text("my,own\n1,2\n")
    before = snapshot(mine)
    capsys.readouterr()
    assert main([*tiny, "--resume", str(mine / "saved" / "agent_8.pt"), "--timesteps", "16"]) == 2
    assert "is not in a run's checkpoints/ folder" in capsys.readouterr().err
    assert snapshot(mine) == before  # the user's files, byte for byte, and nothing added
    assert main([*tiny, "--resume", str(mine / "saved" / "agent_8.pt"), "--timesteps", "16", "--fork", "again"]) == 0
    assert snapshot(mine) == before and (tmp_path / "again" / "checkpoints" / "agent_16.pt").exists()  # where a new run goes


def test_a_resume_cannot_move_to_another_folder_by_name_and_a_fork_is_a_plain_name(tmp_path, capsys):
    from mappo_td.cli import main

    tiny = ["train", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]
    assert main([*tiny, "--directory", str(tmp_path), "--experiment-name", "run", "--timesteps", "8"]) == 0
    before = snapshot(tmp_path)
    ckpts = str(tmp_path / "run" / "checkpoints")
    capsys.readouterr()
    assert main([*tiny, "--resume", ckpts, "--timesteps", "16", "--experiment-name", "other"]) == 2
    assert "experiment_name differ from the checkpoint's ('run'): a resumed run continues in its own run folder" in capsys.readouterr().err
    assert main([*tiny, "--resume", ckpts, "--timesteps", "16", "--fork", "../elsewhere"]) == 2
    assert "--fork '../elsewhere': give a plain folder name" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main([*tiny, "--resume", ckpts, "--timesteps", "16", "--fork", "taken"]) == 2
    out = capsys.readouterr()
    assert "taken already holds notes.txt" in out.err and "MAPPO on" not in out.out  # refused before the run starts
    assert snapshot(tmp_path) == {**before, "taken": None, "taken/notes.txt": b"mine"}


# item 3/13 -- a progress.csv row whose timestep is not a number (hand-edited; `mappo-td plot` skips it with a
# warning) makes a resume fail with Python's bare "invalid literal for int() with base 10: 'abc'".
def test_resume_with_an_unreadable_progress_row_says_what_is_wrong(tmp_path, capsys):
    from mappo_td.cli import main

    tiny = ["train", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]
    flags = [*tiny, "--directory", str(tmp_path), "--experiment-name", "run", "--write-interval", "8"]
    assert main([*flags, "--timesteps", "16"]) == 0
    csv = tmp_path / "run" / "progress.csv"
    lines = csv.read_text().splitlines(keepends=True)
    lines[1] = "abc" + lines[1][lines[1].index(","):]
    csv.write_text("".join(lines))
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"progress.csv: rows whose timestep is not a number are left out: line 2 \('abc'\)"):
        rc = main([*tiny, "--resume", str(tmp_path / "run" / "checkpoints"), "--timesteps", "24"])
    assert rc == 0 and "invalid literal" not in capsys.readouterr().err
