"""A run folder belongs to one run: a new run never writes into a folder that holds one, runs started at once with
one name claim it once, and a run another process trains now cannot be resumed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mappo_td.cli import main
from mappo_td.train.run_folder import lock_run_dir
from mappo_td.trainer import MAPPOTrainer
from tests.helpers import small_config

ROOT = Path(__file__).parents[2]
TINY = ["train", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--no-progress", "--device", "cpu"]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_a_new_run_with_the_name_of_an_earlier_one_is_refused_and_writes_nothing(tmp_path, capsys):
    flags = [*TINY, "--directory", str(tmp_path), "--experiment-name", "again"]
    assert main([*flags, "--timesteps", "96", "--checkpoint-interval", "32", "--max-steps", "16"]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main([*flags, "--timesteps", "32", "--seed", "5"]) == 2
    err = capsys.readouterr().err
    run = tmp_path / "again"
    assert f"{run} already holds checkpoints/, config.json" in err and "agent_32.pt … agent_96.pt" in err
    assert "another --experiment-name" in err and f"--resume {run / 'checkpoints'}" in err
    assert snapshot(tmp_path) == before  # the first run's files, byte for byte


def test_seeds_are_refused_before_any_trains_when_one_folder_holds_a_run(tmp_path, capsys):
    flags = [*TINY, "--timesteps", "8", "--directory", str(tmp_path), "--experiment-name", "nav"]
    assert main([*flags, "--seeds", "3"]) == 0
    before = snapshot(tmp_path)
    assert main([*flags, "--seeds", "2", "3"]) == 2
    assert f"{tmp_path / 'nav_seed3'} already holds" in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # nav_seed2 was not trained either


def test_two_runs_started_at_once_with_one_name_claim_the_folder_once(tmp_path):
    cmd = [sys.executable, "-m", "mappo_td.cli", *TINY, "--timesteps", "64", "--write-interval", "8", "--directory", str(tmp_path),
           "--experiment-name", "same"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*cmd, "--seed", str(s)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (1, 2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert f"{tmp_path / 'same'} already holds" in loser and "Traceback" not in loser
    steps = (tmp_path / "same" / "progress.csv").read_text().split()[1:]
    assert [int(r.split(",")[0]) for r in steps] == list(range(8, 72, 8))  # one run's rows, none interleaved
    winner_seed = 1 if results[0][0] == 0 else 2
    assert f'"seed": {winner_seed}' in (tmp_path / "same" / "config.json").read_text()


def test_a_run_that_another_process_trains_now_cannot_be_resumed(tmp_path):
    cfg = small_config(env={"max_steps": 16}, experiment={"directory": str(tmp_path), "experiment_name": "r", "checkpoint_interval": 16})
    MAPPOTrainer(cfg).train()
    run = tmp_path / "r"
    held = lock_run_dir(run)  # as the process training it holds it
    before = snapshot(run)
    resumed = MAPPOTrainer.from_checkpoint(run / "checkpoints", {"timesteps": 64})
    with pytest.raises(ValueError, match=rf"{run} is being trained now by process {os.getpid()}"):
        resumed.train()
    assert snapshot(run) == before
    with pytest.raises(ValueError, match=rf"{run} already holds .* and is being trained now by process {os.getpid()}"):
        MAPPOTrainer(cfg).train()
    held.release()
    assert resumed.train()["timestep"] == 64  # once it is free
