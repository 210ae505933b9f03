"""Weak scaling of data-parallel MAPPO under torchrun: 1, 2, ... processes, each with the same environments and update.

Every process steps ``--num-envs`` VMAS navigation envs and runs the same epochs x minibatches on its own share;
gradients are averaged every step (gloo on CPU, nccl on CUDA). We time ``--iters`` whole iterations (collect +
advantages + update) after ``--warmup``, between barriers, and report frames/s of all processes together and

    efficiency(N) = frames/s(N) / (N x frames/s(1))

On CPU two more rows show the machine's own limits: N *independent* processes (no process group, no
all-reduce) doing the same work at once — the ceiling data parallelism can reach — and one process on
as many threads (does one process already fill the cores?). Repeats are interleaved (1, 2, 1, 2, ...) because these machines are noisy; medians are reported. The extra row
``1 process x T threads`` shows whether one process already fills the cores (then N processes cannot scale).

    python benchmarks/scaling.py                          # CPU, gloo, 1 thread per process, 1 and 2 processes
    python benchmarks/scaling.py --device cuda --procs 1 2 4 8 --num-envs 4096   # one GPU per process
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import device_name, median, versions


def worker(args: argparse.Namespace) -> None:
    """One rank: build, warm up, time ``iters`` iterations between barriers; rank 0 prints a JSON line."""
    import torch
    import torch.distributed as dist

    from mappo_td import TrainConfig
    from mappo_td.train import build_learner, collect, update
    from mappo_td.train.distributed import world

    torch.set_num_threads(args.threads)
    cfg = TrainConfig.from_dict({
        "device": args.device, "progress": False, "rollouts": args.rollouts, "learning_epochs": args.epochs,
        "mini_batches": args.mini_batches, "env": {"num_envs": args.num_envs, "max_steps": 100},
        "model": {"hidden_sizes": args.hidden}, "experiment": {"directory": tempfile.mkdtemp()},
    })
    lrn = build_learner(cfg)
    rank, n = world()

    def barrier() -> None:
        if lrn.device.type == "cuda":
            torch.cuda.synchronize(lrn.device)
        if n > 1:
            dist.barrier()

    for _ in range(args.warmup):
        update(lrn, collect(lrn))
    barrier()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        update(lrn, collect(lrn))
    barrier()
    seconds = time.perf_counter() - t0
    if rank == 0:
        frames = args.iters * args.rollouts * args.num_envs * n
        print("RESULT " + json.dumps({"procs": n, "threads": args.threads, "seconds": seconds, "fps": frames / seconds}), flush=True)
    if n > 1:
        dist.destroy_process_group()


def launch(args: argparse.Namespace, procs: int, threads: int, independent: bool = False) -> dict:
    """One torchrun launch of this script's worker mode (``independent``: ``procs`` plain processes at once, no
    process group: what the machine itself allows N processes, the ceiling for data parallelism)."""
    passed = ["--device", args.device, "--num-envs", str(args.num_envs), "--rollouts", str(args.rollouts), "--epochs", str(args.epochs),
              "--mini-batches", str(args.mini_batches), "--iters", str(args.iters), "--warmup", str(args.warmup),
              "--threads", str(threads), "--hidden", *map(str, args.hidden)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if independent:
        plain = [subprocess.Popen([sys.executable, __file__, "--worker", *passed], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(procs)]
        outs = [p.communicate(timeout=3600) for p in plain]
        found = [json.loads(line[7:]) for out, _ in outs for line in out.splitlines() if line.startswith("RESULT ")]
        if len(found) != procs:
            raise RuntimeError(f"independent processes failed:\n{outs[0][1][-3000:]}")
        return {"fps": sum(r["fps"] for r in found)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", __file__, "--worker", *passed]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"torchrun with {procs} process(es) failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu")
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="threads per process (default 1)")
    p.add_argument("--num-envs", type=int, default=60, help="environments per process")
    p.add_argument("--rollouts", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--mini-batches", type=int, default=15)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="a few seconds per launch (what the tests run)")
    args = p.parse_args()
    if args.tiny:
        args.num_envs, args.rollouts, args.epochs, args.mini_batches, args.iters, args.repeats, args.hidden = 4, 8, 1, 2, 1, 1, [16]
    if args.worker:
        worker(args)
        return
    print(f"weak scaling: {args.num_envs} envs x {args.rollouts} steps per process per iteration, {args.epochs} epochs x "
          f"{args.mini_batches} minibatches, MLP {args.hidden}, {args.threads} thread(s) per process, {args.iters} timed iterations "
          f"after {args.warmup}, {args.repeats} interleaved repeats")
    print(f"device: {device_name(args.device)} (backend {'nccl' if args.device.startswith('cuda') else 'gloo'})")
    print(versions())
    runs: dict[tuple[str, int, int], list[float]] = {}
    cores = os.cpu_count() or 1
    cases = [("data parallel", n, args.threads) for n in args.procs]
    if args.device == "cpu":  # the machine's own ceiling: N unrelated processes; and one process on every core
        cases += [("independent", n, args.threads) for n in args.procs if n > 1]
        cases += [("one process", 1, min(cores, args.threads * max(args.procs)))] if cores > args.threads else []
    for r in range(args.repeats):
        for kind, procs, threads in cases:
            res = launch(args, procs, threads, independent=kind == "independent")
            runs.setdefault((kind, procs, threads), []).append(res["fps"])
            print(f"  repeat {r + 1}: {kind}, {procs} process(es) x {threads} thread(s): {res['fps']:,.0f} frames/s", flush=True)
    base = median(runs[("data parallel", 1, args.threads)])
    print(f"\n{'':>14} {'processes x threads':>20} {'frames/s (median)':>18} {'speed-up':>9} {'efficiency':>10} {'of independent':>15}")
    for (kind, procs, threads), fps in runs.items():
        m = median(fps)
        eff = m / (procs * base) if threads == args.threads else float("nan")
        alone = runs.get(("independent", procs, threads))
        of = f"{m / median(alone):.2f}" if kind == "data parallel" and alone else ""
        print(f"{kind:>14} {f'{procs} x {threads}':>20} {m:>18,.0f} {m / base:>9.2f} {eff:>10.2f} {of:>15}")


if __name__ == "__main__":
    main()
