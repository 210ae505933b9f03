"""Data parallelism (torchrun, gloo on CPU): N processes with 1/N of the data each are one process with all of it."""

import csv
import functools
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from mappo_td import TrainConfig
from mappo_td.multiagent import standardize_per_agent
from mappo_td.objectives import RunningStandardScaler
from mappo_td.train import build_learner, collect, flat_batch, update
from mappo_td.train.checkpoint import load_checkpoint
from tests.train.dist_worker import minibatch_steps, result

WORKER = Path(__file__).with_name("dist_worker.py")
ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(mode: str, cfg: dict, batch: str, out: str, n: int = 2, timeout: float = 300) -> list[dict]:
    """Start ``n`` ranks of the worker with torchrun's environment; returns each rank's saved result."""
    port = free_port()
    procs = []
    for rank in range(n):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(n), "LOCAL_WORLD_SIZE": str(n),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, json.dumps(cfg), batch, f"{out}.{rank}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    results = []
    for rank, p in enumerate(procs):
        if not os.path.exists(f"{out}.{rank}"):
            assert mode == "die" and rank == 1, f"rank {rank} failed (exit {p.returncode}):\n{logs[rank][-3000:]}"
            continue
        results.append(torch.load(f"{out}.{rank}", weights_only=False))
    return results


def update_config(share_params: bool) -> dict:
    return {
        "device": "cpu", "progress": False, "seed": 3, "rollouts": 8, "learning_epochs": 3, "mini_batches": 1,
        "learning_rate": 3e-3, "grad_norm_clip": 0.05, "kl_threshold": 0.0095,
        "learning_rate_scheduler": "KLAdaptiveLR", "learning_rate_scheduler_kwargs": {"kl_threshold": 0.004},
        "state_preprocessor": "RunningStandardScaler", "value_preprocessor": "RunningStandardScaler",
        "env": {"num_envs": 8, "max_steps": 5}, "model": {"hidden_sizes": [16], "share_params": share_params},
    }


@functools.cache
def two_ranks(share_params: bool) -> tuple:
    """The fixed batch (8 envs x 8 steps) and what each of 2 ranks made of its half (run once per setting)."""
    d = update_config(share_params)
    tmp = Path(tempfile.mkdtemp())
    whole = collect(build_learner(TrainConfig.from_dict(d)))
    torch.save(whole, tmp / "batch.pt")
    return whole, launch("update", d, str(tmp / "batch.pt"), str(tmp / "out"))


@pytest.mark.parametrize("share_params", [True, False], ids=["shared", "per-agent"])
def test_two_processes_with_half_the_batch_each_equal_one_with_all_of_it(share_params):
    cfg = TrainConfig.from_dict(update_config(share_params))
    whole, ranks = two_ranks(share_params)

    ref = build_learner(cfg)  # one process, the whole batch, the same steps
    data = whole.clone()
    update(ref, data)
    expect = result(ref)
    expect["advantage"] = data.get(("agents", "advantage"))
    flat = flat_batch(ref, data)
    half = flat.shape[0] // 2  # env-major: rank r holds the r-th half
    m = half // 4  # the single process's minibatch i is both ranks' minibatch i together
    ordered = torch.cat([torch.cat([flat[:half][i * m:(i + 1) * m], flat[half:][i * m:(i + 1) * m]]) for i in range(4)])
    seen = minibatch_steps(ref, ordered, k=4, epochs=2)
    expect.update({f"after_steps/{k}": v for k, v in {**result(ref), **seen}.items()})

    # the steps did stop early and adapt the rate (else the comparison would not cover them); the ranks decided alike
    masks, lrs = expect["after_steps/agents/masks"], expect["after_steps/agents/lrs"]
    assert not masks.all(), f"the KL early stop never fired: {masks.tolist()}"
    assert not torch.allclose(lrs, torch.full_like(lrs, 3e-3)), f"KLAdaptiveLR never moved the rate: {lrs.tolist()}"
    for rank, got in enumerate(ranks):
        adv = expect["advantage"][rank * 4:(rank + 1) * 4].reshape(-1)  # global standardization of this rank's share
        torch.testing.assert_close(got["advantage"], adv, atol=1e-5, rtol=0)
        for k, v in expect.items():
            if k != "advantage":
                torch.testing.assert_close(got[k].to(v.dtype), v, atol=1e-5, rtol=1e-5, msg=lambda s, k=k, r=rank: f"rank {r} {k}: {s}")
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]) or k in ("advantage", "standardized"), f"ranks differ in {k}"


def test_global_standardization_equals_the_single_process_one():
    """The reductions alone (in the same two workers as above): masked advantage standardization and a running standardizer."""
    _, ranks = two_ranks(True)
    gen = torch.Generator().manual_seed(5)
    x, keep = torch.randn(10, 3, 1, generator=gen) * 4 + 1, torch.rand(10, 3, 1, generator=gen) > 0.3
    whole = standardize_per_agent(x, keep)
    torch.testing.assert_close(torch.cat([r["standardized"] for r in ranks]), whole, atol=1e-6, rtol=0)
    s = RunningStandardScaler(3)
    s.update(x.squeeze(-1))
    for r in ranks:
        torch.testing.assert_close(r["running"], torch.cat([s.running_mean, s.running_variance, s.current_count.reshape(1)]))


def torchrun(*args: str, cwd: Path, n: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", "-m", "mappo_td.cli", "train", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_torchrun_trains_writes_one_set_of_outputs_and_resumes_exactly(tmp_path):
    tiny = ["--device", "cpu", "--num-envs", "4", "--rollouts", "8", "--mini-batches", "2", "--learning-epochs", "2",
            "--hidden-sizes", "16", "--max-steps", "8", "--write-interval", "8", "--no-progress", "--directory", "runs"]
    full = torchrun(*tiny, "--timesteps", "32", "--checkpoint-interval", "16", "--experiment-name", "full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "runs" / "full"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["full"]  # one run folder, not one per rank
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["agent_16.pt", "agent_32.pt"]
    assert len(list((run / "tensorboard").iterdir())) == 1
    rows = list(csv.DictReader((run / "progress.csv").open()))
    assert [r["frames"] for r in rows] == ["64", "128", "192", "256"]  # frames of both ranks: 2 x 4 envs x 8 steps
    assert [float(r["episode/count"]) for r in rows] == [8.0] * 4  # episodes of 8 steps end in every env of both ranks
    assert full.stdout.count("done:") == 1  # rank 0 speaks for the run
    ckpt = load_checkpoint(run / "checkpoints" / "agent_32.pt")
    assert ckpt["world_size"] == 2 and not torch.equal(ckpt["rng_ranks"][0]["torch"], ckpt["rng_ranks"][1]["torch"])

    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = torchrun(*tiny, "--timesteps", "16", "--experiment-name", "full", cwd=tmp_path)  # a new run, an existing name
    assert again.returncode != 0 and "done:" not in again.stdout
    for rank in (0, 1):  # rank 0 decides; every rank stops with its reason
        assert f"mappo-td: error (rank {rank} of 2): {Path('runs/full')} already holds" in again.stderr, again.stderr[-3000:]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    half = torchrun(*tiny, "--timesteps", "16", "--experiment-name", "half", cwd=tmp_path)
    assert half.returncode == 0, half.stderr[-3000:]
    resumed = torchrun("--resume", "runs/half/checkpoints/agent_16.pt", "--timesteps", "32", "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = ckpt["models"], load_checkpoint(tmp_path / "runs" / "half" / "checkpoints" / "agent_32.pt")["models"]
    for name in a:
        for k in a[name]:
            torch.testing.assert_close(b[name][k], a[name][k], atol=0, rtol=0, msg=f"resumed run differs in {name}.{k}")

    one = subprocess.run([sys.executable, "-m", "mappo_td.cli", "train", "--resume", "runs/full/checkpoints", "--timesteps", "48"],
                         cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert one.returncode == 2 and "written by a run of 2 process(es); this run has 1" in one.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["agent_16.pt", "agent_32.pt"]  # nothing written


def test_a_dead_rank_stops_the_others_with_a_clear_error_within_the_timeout(tmp_path):
    cfg = {"device": "cpu", "progress": False, "rollouts": 4, "timesteps": 400, "dist_timeout": 20,
           "env": {"num_envs": 2}, "model": {"hidden_sizes": [8]},
           "experiment": {"directory": str(tmp_path / "runs"), "experiment_name": "x", "checkpoint_interval": 0}}
    (got,) = launch("die", cfg, "-", str(tmp_path / "out"), timeout=120)
    assert got["error"] is not None and "rank 0 of 2: a collective failed" in got["error"] and "Another rank" in got["error"]
    assert got["seconds"] < 60
    assert not list((tmp_path / "runs" / "x" / "checkpoints").glob("*.pt*"))  # nothing half written

