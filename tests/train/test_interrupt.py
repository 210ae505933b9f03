"""A graceful Ctrl-C: checkpoint at the interrupted timestep, exit 130, exact resume with no log step twice; evaluation
during training keeps best_agent.pt."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mappo_td.train.checkpoint import load_checkpoint

ROOT = Path(__file__).parents[2]
TINY = ["--device", "cpu", "--num-envs", "4", "--rollouts", "8", "--mini-batches", "2", "--learning-epochs", "2",
        "--hidden-sizes", "16", "--max-steps", "12", "--write-interval", "8", "--checkpoint-interval", "0", "--no-progress",
        "--directory", "runs"]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mappo_td.cli", "train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def rows(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "progress.csv").open()))


def test_sigint_checkpoints_exits_130_and_resumes_exactly_without_a_step_twice(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "mappo_td.cli", "train", *TINY, "--timesteps", "100000", "--experiment-name", "a"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    csv_path = tmp_path / "runs" / "a" / "progress.csv"
    deadline = time.time() + 300
    while (not csv_path.exists() or len(csv_path.read_text().splitlines()) < 4) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    (ckpt,) = (tmp_path / "runs" / "a" / "checkpoints").glob("agent_*.pt")
    t = load_checkpoint(ckpt)["counters"]["timestep"]
    assert ckpt.name == f"agent_{t}.pt" and int(rows(ckpt.parent.parent)[-1]["timestep"]) == t  # the interrupted timestep
    assert f"mappo-td train --resume {Path('runs/a/checkpoints') / ckpt.name}" in err and "Traceback" not in err

    resumed = cli("--resume", str(ckpt.relative_to(tmp_path)), "--timesteps", str(t + 16), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [int(r["timestep"]) for r in rows(tmp_path / "runs" / "a")]
    assert steps == sorted(set(steps)) and steps[-1] == t + 16  # no CSV row twice
    tb = EventAccumulator(str(tmp_path / "runs" / "a" / "tensorboard"))
    tb.Reload()
    tb_steps = [e.step for e in tb.Scalars("agents/loss_critic")]
    assert tb_steps == sorted(set(tb_steps)) and tb_steps[-1] == t + 16  # no TensorBoard step twice

    # exact: the same as a run that stopped at t by itself, then resumed to t + 16
    assert cli(*TINY, "--timesteps", str(t), "--experiment-name", "b", cwd=tmp_path).returncode == 0
    assert cli("--resume", "runs/b/checkpoints", "--timesteps", str(t + 16), cwd=tmp_path).returncode == 0
    a = load_checkpoint(tmp_path / "runs" / "a" / "checkpoints")["models"]
    b = load_checkpoint(tmp_path / "runs" / "b" / "checkpoints")["models"]
    for name in a:
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), f"{name}.{k} differs from the uninterrupted run"


def test_eval_interval_keeps_the_best_agent_and_logs_eval_returns(tmp_path):
    res = cli(*TINY, "--timesteps", "64", "--eval-interval", "16", "--eval-episodes", "4", "--experiment-name", "e", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "runs" / "e"
    evals = [(int(r["timestep"]), float(r["eval/return_mean"])) for r in rows(run) if r["eval/return_mean"] != "nan"]
    assert [t for t, _ in evals] == [16, 32, 48, 64]
    best = load_checkpoint(run / "checkpoints" / "best_agent.pt")
    assert best["eval_return"] == max(r for _, r in evals)
    assert best["counters"]["timestep"] == max(evals, key=lambda e: e[1])[0]
    assert load_checkpoint(run / "checkpoints")["path"].endswith("agent_64.pt")  # the newest checkpoint, not best_agent


def test_resuming_from_an_older_checkpoint_shows_no_tensorboard_step_twice(tmp_path):
    """A run killed after its last checkpoint logged rows past it; the resumed run hides them (TensorBoard's purge_step)."""
    flags = [a for a in TINY if a not in ("--checkpoint-interval", "0")]
    assert cli(*flags, "--checkpoint-interval", "16", "--timesteps", "32", "--experiment-name", "c", cwd=tmp_path).returncode == 0
    res = cli("--resume", "runs/c/checkpoints/agent_16.pt", "--overwrite-later", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    tb = EventAccumulator(str(tmp_path / "runs" / "c" / "tensorboard"))
    tb.Reload()
    steps = [e.step for e in tb.Scalars("agents/loss_critic")]
    assert steps == [8, 16, 24, 32], steps
    assert [int(r["timestep"]) for r in rows(tmp_path / "runs" / "c")] == [8, 16, 24, 32]


def test_eval_render_writes_gifs_to_the_run_and_a_filmstrip_to_tensorboard(tmp_path):
    res = cli(*TINY, "--timesteps", "32", "--eval-interval", "16", "--eval-episodes", "2", "--eval-render", "--experiment-name", "g",
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    run = tmp_path / "runs" / "g"
    gifs = sorted(p.name for p in (run / "eval").iterdir())
    assert gifs == ["eval_16.gif", "eval_32.gif"] and all((run / "eval" / g).read_bytes()[:6] == b"GIF89a" for g in gifs)
    tb = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    tb.Reload()
    assert [e.step for e in tb.Images("eval/episode")] == [16, 32]
