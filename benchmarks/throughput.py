"""End-to-end training throughput: mappo_td (plain / compile / compile + CUDA graphs) vs BenchMARL's MAPPO vs the
raw VMAS simulator, on the issue's workloads, as ratios from one run.

Workloads (VMAS navigation, 3 agents, shared parameters, centralized critic, tanh MLPs):
  W1     CPU: 60 envs x 100 steps, 45 epochs x 15 minibatches of 400, 256-256, lr 5e-5 (BenchMARL's defaults)
  W1-64  CPU: W1 with 64-64 MLPs
  W2     GPU: 600 envs x 100 steps, 45 epochs, minibatch 4,096, 256-256
  W3     GPU: 4,096 envs, skrl's default update (16 rollouts, 8 epochs x 2 minibatches), 64-64
  R1     CPU, recurrent: W1-64's collection with GRU(64) + 64-64 head for policy and critic, 4 epochs x 15 minibatches
         of 400; mappo_td on chunks of 10 steps (the reference's) and of 100 (BenchMARL's: whole rollouts) vs
         BenchMARL's GRU model (benchmarl_gru.py)
Each configuration runs in its own process; frames/s counts warm iterations only (the first iteration, with any
compilation, is dropped), median over --repeats processes. ``--scaling`` adds a table over the number of envs.

    python benchmarks/throughput.py --workloads W1 W1-64 --repeats 3
    python benchmarks/throughput.py --workloads W2 W3 --device cuda
    python benchmarks/throughput.py --scaling 64 256 1024 4096 --workloads W1-64
    python benchmarks/throughput.py --workloads R1 --repeats 3
    python benchmarks/throughput.py --tiny      # a seconds-long smoke run (CI)
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import resource
import sys
import tempfile
from pathlib import Path

from _common import PEERS, device_name, median, run, run_benchmarl, versions

WORKLOADS = {
    "W1": dict(n_envs=60, steps=100, epochs=45, minibatch=400, hidden=[256, 256], lr=5e-5, iters=3, gpu=False),
    "W1-64": dict(n_envs=60, steps=100, epochs=45, minibatch=400, hidden=[64, 64], lr=5e-5, iters=3, gpu=False),
    "W2": dict(n_envs=600, steps=100, epochs=45, minibatch=4096, hidden=[256, 256], lr=5e-5, iters=3, gpu=True),
    "W3": dict(n_envs=4096, steps=16, epochs=8, minibatch=4096 * 16 // 2, hidden=[64, 64], lr=1e-3, iters=5, gpu=True),
    "R1": dict(n_envs=60, steps=100, epochs=4, minibatch=400, hidden=[64, 64], lr=5e-5, iters=2, gpu=False, gru=64, chunks=[10, 100]),
}


def worker(spec: dict) -> dict:
    """Train one configuration in this process; frames/s over warm iterations, peak memory."""
    import torch

    from mappo_td import MAPPOTrainer, TrainConfig

    frames = spec["n_envs"] * spec["steps"]
    cfg = TrainConfig.from_dict({
        "rollouts": spec["steps"], "learning_epochs": spec["epochs"], "mini_batches": max(1, frames // spec["minibatch"]),
        "lambda": 0.9, "learning_rate": spec["lr"], "grad_norm_clip": 5.0, "timesteps": spec["steps"] * (1 + spec["iters"]),
        "device": spec["device"], "progress": False, "fast": spec["fast"],
        "env": {"num_envs": spec["n_envs"], "max_steps": 100}, "model": {"hidden_sizes": spec["hidden"], "state_dependent_std": True,
                                                                         **({"body": "gru", "rnn_hidden_size": spec["gru"]} if spec.get("gru") else {})},
        "data_chunk_length": spec.get("chunk", 10),
        "experiment": {"directory": tempfile.mkdtemp(), "experiment_name": "tp", "write_interval": spec["steps"], "checkpoint_interval": 0},
    })
    if spec["device"].startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer = MAPPOTrainer(cfg)
    summary = trainer.train()
    rows = list(csv.DictReader(open(Path(summary["run_dir"]) / "progress.csv")))[1:]  # drop the warm-up iteration
    n = sum(frames for _ in rows)
    secs = sum(frames / float(r["frames_per_s"]) for r in rows)
    peak = (torch.cuda.max_memory_allocated() if spec["device"].startswith("cuda") else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"fps": n / secs, "peak_mb": peak / 2**20, "reward": float(rows[-1]["reward/episode_mean"]) if rows else float("nan")}


def measure(spec: dict, repeats: int) -> dict:
    out = []
    for _ in range(repeats):
        proc = run([sys.executable, __file__, "--worker", json.dumps(spec)], cwd=Path(__file__).parent)
        m = re.search(r"^RESULT (.*)$", proc.stdout, re.M)
        if not m:
            return {"error": proc.stderr[-1500:]}
        out.append(json.loads(m[1]))
    return {"fps": median([o["fps"] for o in out]), "runs": [o["fps"] for o in out], "peak_mb": max(o["peak_mb"] for o in out)}


def benchmarl(w: dict, device: str, repeats: int) -> dict:
    frames = w["n_envs"] * w["steps"]
    fps = []
    for _ in range(repeats):
        r = run_benchmarl(["--frames", str(frames * (1 + w["iters"])), "--frames-per-batch", str(frames), "--n-envs", str(w["n_envs"]),
                           "--epochs", str(w["epochs"]), "--minibatch-size", str(w["minibatch"]), "--lr", str(w["lr"]),
                           "--hidden", *map(str, w["hidden"]), "--device", device], gru_hidden=w.get("gru"))
        if "error" in r:
            return r
        warm = r["iters"][1:]
        fps.append(frames * len(warm) / sum(i["collect_s"] + i["train_s"] for i in warm))
    return {"fps": median(fps), "runs": fps}


def raw_sim(n_envs: int, device: str) -> dict:
    driver = PEERS / "raw_vmas.py"
    if not driver.exists():
        return {"error": f"no {driver}"}
    proc = run([sys.executable, str(driver), "--num-envs", str(n_envs), "--device", device, "--mode", "torchrl-rollout", "--steps", "100"])
    m = re.search(r"VmasEnv.rollout\s+\d+\s+\d+\s+[\d.]+\s+([\d,]+)", proc.stdout)
    return {"fps": float(m[1].replace(",", ""))} if m else {"error": proc.stderr[-500:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", nargs="+", default=["W1", "W1-64"], choices=list(WORKLOADS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=None, help="plain compile cudagraphs (default: plain compile, + cudagraphs on CUDA)")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--chunks", type=int, nargs="+", default=None, help="recurrent workloads: data_chunk_length values to run")
    p.add_argument("--scaling", type=int, nargs="*", default=None, help="numbers of envs for the scaling table")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    cuda = args.device.startswith("cuda")
    variants = args.variants or (["plain", "compile", "cudagraphs"] if cuda else ["plain", "compile"])
    if args.tiny:
        WORKLOADS.update({k: {**w, "n_envs": 8, "steps": 10, "epochs": 1, "minibatch": 40, "hidden": [16], "iters": 1,
                              **({"gru": 8, "chunks": [5]} if w.get("gru") else {})} for k, w in WORKLOADS.items()})
        args.repeats, args.no_peer, variants = 1, True, ["plain"]
    print("benchmark: end-to-end MAPPO training throughput on VMAS navigation (frames = env steps x envs)")
    print(f"config: {json.dumps({k: v for k, v in vars(args).items() if k != 'worker'})}")
    print(f"device: {device_name(args.device)}")
    print(versions())
    print(f"workloads: {json.dumps({k: WORKLOADS[k] for k in args.workloads})}")
    rows = []
    for name in args.workloads:
        w = WORKLOADS[name]
        if w["gpu"] and not cuda:
            print(f"{name}: needs a CUDA device (--device cuda); skipped")
            continue
        peer = {"error": "skipped"} if args.no_peer else benchmarl(w, args.device, args.repeats)
        sim = raw_sim(w["n_envs"], args.device)
        for v in variants:
            for chunk in (args.chunks or w["chunks"]) if w.get("gru") else [None]:
                spec = {**w, "device": args.device, "fast": "off" if v == "plain" else v, **({"chunk": chunk} if chunk else {})}
                label = f"mappo_td {v}" + (f" chunk {chunk}" if chunk else "")
                r = measure(spec, args.repeats)
                if "error" in r:
                    print(f"{name} {label}: failed: {r['error']}")
                    continue
                rows.append((name, label, r["fps"], r["fps"] / peer["fps"] if "fps" in peer else None,
                             r["fps"] / sim["fps"] if "fps" in sim else None, r["peak_mb"], r["runs"]))
        if "fps" in peer:
            rows.append((name, "benchmarl" + (" GRU" if w.get("gru") else ""), peer["fps"], 1.0, peer["fps"] / sim["fps"] if "fps" in sim else None, None, peer["runs"]))
        elif not args.no_peer:
            print(f"{name} benchmarl: {peer['error'][:300]}")
        if "fps" in sim:
            rows.append((name, "raw VmasEnv (random actions)", sim["fps"], None, 1.0, None, []))
    print(f"\n{'workload':<9}{'variant':<30}{'frames/s (median)':>18}{'vs BenchMARL':>14}{'vs raw sim':>12}{'peak MB':>9}  runs")
    for name, v, fps, rb, rs, mb, runs in rows:
        print(f"{name:<9}{v:<30}{fps:>18,.0f}{(f'{rb:.2f}x' if rb else '-'):>14}{(f'{rs:.2f}' if rs else '-'):>12}"
              f"{(f'{mb:,.0f}' if mb else '-'):>9}  {', '.join(f'{x:,.0f}' for x in runs)}")
    if args.scaling:
        base = WORKLOADS["W3"]  # skrl's default update: 16 rollouts, 8 epochs x 2 minibatches, 64-64
        print(f"\nscaling (W3's update: rollouts {base['steps']}, {base['epochs']} epochs x 2 minibatches, 64-64; variant {variants[-1]}):")
        print(f"{'envs':>7}{'frames/s':>12}{'peak MB':>10}{'raw sim frames/s':>18}")
        for n in args.scaling:
            spec = {**base, "n_envs": n, "minibatch": max(1, n * base["steps"] // 2), "device": args.device,
                    "fast": "off" if variants[-1] == "plain" else variants[-1]}
            r = measure(spec, 1)
            sim = raw_sim(n, args.device)
            print(f"{n:>7}{r.get('fps', float('nan')):>12,.0f}{r.get('peak_mb', float('nan')):>10,.0f}{sim.get('fps', float('nan')):>18,.0f}", flush=True)


if __name__ == "__main__":
    main()
