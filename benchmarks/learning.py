"""Learning curves: mappo_td vs BenchMARL's MAPPO on VMAS navigation, same hyperparameters and frames.

Both run BenchMARL's default on-policy work: 60 envs x 100 steps = 6,000 frames per iteration,
45 epochs x 15 minibatches of 400 frames, 256-256 tanh MLPs, shared parameters, centralized
critic, lr 5e-5, gamma 0.99, lambda 0.9, clip 0.2, grad-norm clip 5, CPU. Prints the final mean
episode reward and wall time of each (median over seeds) and writes a PNG of reward vs frames.

    python benchmarks/learning.py --frames 60000 --seeds 0 1 2
    python benchmarks/learning.py --frames 600000 --seeds 0 --plot benchmarks/learning_600k.png

``--gru 64``: the recurrent configuration: GRU(64) then the MLP as head, for policy and critic, in both
(BenchMARL's own ``GruConfig``, through ``benchmarl_gru.py``); mappo_td trains on chunks of ``--chunk`` steps.

    python benchmarks/learning.py --gru 64 --hidden 64 64 --epochs 4 --frames 60000 --seeds 0 1

``--task simple_spread``: PettingZoo MPE ``simple_spread_v3`` (3 agents, 25 steps, discrete actions) at equal
frames: mappo_td with skrl's defaults (per-agent models as skrl keeps them, grad-norm clip 5 as the peer
driver fixes it), mappo_td with ``--preset mappo-paper`` (25-step rollouts, chunks of 25), and skrl's own
MAPPO (``../shared/peers/skrl_mappo.py``, peers venv; its PettingZoo wrapper drives one env, so it collects
``8 x 16`` steps per update to update on the same 128 frames as mappo_td's 8 envs x 16 steps).

    python benchmarks/learning.py --task simple_spread --frames 100000 --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from _common import PEER_PYTHON, PEERS, device_name, median, run_benchmarl, versions

from mappo_td.config import TrainConfig
from mappo_td.trainer import MAPPOTrainer


def mappo_td_config(args: argparse.Namespace, seed: int, directory: str) -> TrainConfig:
    """BenchMARL's MAPPO work, in mappo_td's configuration."""
    rollouts = args.frames_per_batch // args.n_envs
    return TrainConfig.from_dict({
        "rollouts": rollouts, "learning_epochs": args.epochs, "mini_batches": args.frames_per_batch // args.minibatch_size,
        "discount_factor": 0.99, "lambda": 0.9, "learning_rate": args.lr, "grad_norm_clip": 5.0, "ratio_clip": 0.2,
        "entropy_loss_scale": 0.0, "value_loss_scale": 1.0,
        "timesteps": args.frames // args.n_envs, "device": args.device, "seed": seed, "progress": False,
        "env": {"num_envs": args.n_envs, "max_steps": 100, "scenario_kwargs": {
            "n_agents": 3, "collisions": True, "agents_with_same_goal": 1, "split_goals": False, "observe_all_goals": False,
            "shared_rew": False, "lidar_range": 0.35, "agent_radius": 0.1}},
        "model": {"hidden_sizes": args.hidden, "state_dependent_std": True,
                  **({"body": "gru", "rnn_hidden_size": args.gru} if args.gru else {})},
        "data_chunk_length": args.chunk,
        "experiment": {"directory": directory, "experiment_name": f"seed{seed}", "write_interval": rollouts, "checkpoint_interval": 0},
    })


def run_mappo_td(args: argparse.Namespace, seed: int) -> dict:
    directory = tempfile.mkdtemp(prefix="mappo_td_learning_")
    trainer = MAPPOTrainer(mappo_td_config(args, seed, directory))
    t0 = time.perf_counter()
    summary = trainer.train()
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(open(Path(summary["run_dir"]) / "progress.csv")))
    curve = [(int(r["frames"]), float(r["reward/episode_mean"])) for r in rows]
    return {"wall_s": wall, "final": curve[-1][1], "curve": curve, "frames": curve[-1][0]}


def run_peer(args: argparse.Namespace, seed: int) -> dict:
    res = run_benchmarl(["--frames", str(args.frames), "--frames-per-batch", str(args.frames_per_batch), "--n-envs", str(args.n_envs),
                         "--epochs", str(args.epochs), "--minibatch-size", str(args.minibatch_size), "--lr", str(args.lr),
                         "--hidden", *map(str, args.hidden), "--device", args.device, "--seed", str(seed)], gru_hidden=args.gru)
    if "error" in res:
        return res
    curve = [((r["iter"] + 1) * args.frames_per_batch, r["reward"]) for r in res["iters"]]
    return {"wall_s": res["wall_s"], "final": curve[-1][1], "curve": curve, "frames": res.get("frames"), "versions": res.get("versions")}


SPREAD_ENVS, SPREAD_ROLLOUTS = 8, 16  # mappo_td's PettingZoo default envs, skrl's default rollouts


def spread_config(name: str, frames: int, seed: int, directory: str) -> TrainConfig:
    """simple_spread_v3 in mappo_td: ``skrl`` (skrl's MAPPO_DEFAULT_CONFIG, per-agent models) or ``paper`` (the preset)."""
    from mappo_td.config import merge_config, preset

    env = {"backend": "pettingzoo", "scenario": "simple_spread_v3", "num_envs": SPREAD_ENVS, "max_steps": 25,
           "continuous_actions": False, "num_workers": 1}
    if name == "skrl":
        d = {"rollouts": SPREAD_ROLLOUTS, "grad_norm_clip": 5.0, "model": {"share_params": False}}
    else:
        d = merge_config(preset("mappo-paper"), {"rollouts": 25, "data_chunk_length": 25})
    rollouts = merge_config(d, {})["mappo"]["rollouts"]
    return TrainConfig.from_dict(merge_config(d, {
        "env": env, "timesteps": frames // SPREAD_ENVS, "device": "cpu", "seed": seed, "progress": False,
        "experiment": {"directory": directory, "experiment_name": f"{name}_seed{seed}", "write_interval": rollouts,
                       "checkpoint_interval": 0}}))


def run_spread(name: str, frames: int, seed: int) -> dict:
    """One mappo_td run: wall time, and the mean episode reward (per agent) over the last 5% of frames."""
    trainer = MAPPOTrainer(spread_config(name, frames, seed, tempfile.mkdtemp(prefix="mappo_td_spread_")))
    t0 = time.perf_counter()
    summary = trainer.train()
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader(open(Path(summary["run_dir"]) / "progress.csv")))
    curve = [(int(r["frames"]), float(r["reward/episode_mean"])) for r in rows if r["reward/episode_mean"] != "nan"]
    tail = [r for f, r in curve if f > 0.95 * curve[-1][0]]
    return {"wall_s": wall, "final": sum(tail) / len(tail), "first": curve[0][1], "curve": curve}


def run_skrl_spread(frames: int, seed: int) -> dict:
    driver = PEERS / "skrl_mappo.py"
    if not driver.exists() or not Path(PEER_PYTHON).exists():
        return {"error": f"skrl not available (driver {driver}, python {PEER_PYTHON}): python3 -m venv ~/peers && "
                         "~/peers/bin/pip install torch==2.13.0 skrl mpe2 vmas"}
    cmd = [PEER_PYTHON, str(driver), "--env", "mpe", "--discrete", "--timesteps", str(frames), "--rollouts",
           str(SPREAD_ENVS * SPREAD_ROLLOUTS), "--epochs", "8", "--mini-batches", "2", "--lr", "1e-3", "--lmbda", "0.95",
           "--hidden", "64", "64", "--max-cycles", "25", "--seed", str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    if proc.returncode:
        return {"error": f"skrl failed (rc {proc.returncode}): {proc.stderr[-2000:]}"}
    grab = {k: re.search(p, proc.stdout, re.M) for k, p in {
        "wall_s": r"trainer.train\(\) wall s\s+:\s+([\d.]+)", "first": r"first 10% of episodes : ([-\d.]+)",
        "final": r"last update's rollout : ([-\d.naN]+)", "versions": r"^(python .* skrl .*)$"}.items()}
    return {k: (m[1] if k == "versions" else float(m[1])) for k, m in grab.items() if m}


def spread_main(args: argparse.Namespace) -> None:
    print("benchmark: PettingZoo MPE simple_spread_v3 (3 agents, 25 steps, discrete): mappo_td (skrl's defaults), "
          "mappo_td (--preset mappo-paper), skrl MAPPO; equal frames")
    print(f"config: frames {args.frames}, seeds {args.seeds}, mappo_td {SPREAD_ENVS} envs; skrl 1 env, "
          f"{SPREAD_ENVS * SPREAD_ROLLOUTS} steps per update, 8 epochs x 2 minibatches, lr 1e-3, 64-64 tanh, grad-norm clip 5")
    print(f"device: {device_name('cpu')}")
    print(f"mappo_td: {versions()}")
    results: dict[str, list[dict]] = {"mappo_td skrl-defaults": [], "mappo_td mappo-paper": [], "skrl MAPPO": []}
    for seed in args.seeds:  # interleaved: the machine's noise falls on every entry alike
        for name, fn in (("mappo_td skrl-defaults", lambda s: run_spread("skrl", args.frames, s)),
                         ("mappo_td mappo-paper", lambda s: run_spread("paper", args.frames, s)),
                         ("skrl MAPPO", lambda s: run_skrl_spread(args.frames, s))):
            if name == "skrl MAPPO" and args.no_peer:
                continue
            r = fn(seed)
            if "error" in r:
                print(f"  {name}: {r['error']}")
                continue
            results[name].append(r)
            print(f"  {name:<24} seed {seed}: first {r.get('first', float('nan')):+.2f}  final {r['final']:+.2f}  "
                  f"wall {r['wall_s']:.1f}s  {r.get('versions', '')}", flush=True)
    print(f"\n{'run':<24}{'frames':>9}{'seeds':>7}{'final reward (median)':>23}{'wall s (median)':>17}")
    for name, rs in results.items():
        if rs:
            print(f"{name:<24}{args.frames:>9}{len(rs):>7}{median([r['final'] for r in rs]):>+23.2f}"
                  f"{median([r['wall_s'] for r in rs]):>17.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=60_000)
    p.add_argument("--frames-per-batch", type=int, default=6_000)
    p.add_argument("--n-envs", type=int, default=60)
    p.add_argument("--epochs", type=int, default=45)
    p.add_argument("--minibatch-size", type=int, default=400)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--gru", type=int, default=None, help="GRU hidden size: the recurrent configuration (default: MLPs)")
    p.add_argument("--chunk", type=int, default=10, help="mappo_td's data_chunk_length with --gru")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--no-peer", action="store_true", help="skip BenchMARL")
    p.add_argument("--plot", default=None, help="PNG path for reward vs frames")
    p.add_argument("--json", default=None, help="write all numbers here")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run without the peer (CI)")
    p.add_argument("--task", choices=("navigation", "simple_spread"), default="navigation",
                   help="navigation: vs BenchMARL (VMAS); simple_spread: skrl defaults vs --preset mappo-paper vs skrl (PettingZoo MPE)")
    args = p.parse_args()
    if args.task == "simple_spread":
        args.frames = 800 if args.tiny else args.frames
        args.no_peer = args.no_peer or args.tiny
        return spread_main(args)
    if args.tiny:
        args.frames, args.frames_per_batch, args.n_envs, args.epochs, args.minibatch_size, args.hidden = 160, 80, 8, 1, 40, [16]
        args.gru, args.chunk = (8, 5) if args.gru else (None, args.chunk)
        args.no_peer, args.seeds = True, [0]

    print(f"benchmark: learning curve, VMAS navigation (3 agents), mappo_td vs BenchMARL MAPPO{' (GRU)' if args.gru else ''}")
    print(f"config: {json.dumps({k: v for k, v in vars(args).items() if k not in ('plot', 'json')})}")
    print(f"device: {device_name(args.device)}")
    print(f"mappo_td: {versions()}")
    results: dict[str, list[dict]] = {"mappo_td": [], "benchmarl": []}
    for seed in args.seeds:
        r = run_mappo_td(args, seed)
        results["mappo_td"].append(r)
        print(f"  mappo_td  seed {seed}: final reward {r['final']:+.3f}  wall {r['wall_s']:.1f}s", flush=True)
        if not args.no_peer:
            r = run_peer(args, seed)
            if "error" in r:
                print(f"  benchmarl: {r['error']}")
                args.no_peer = True
            else:
                results["benchmarl"].append(r)
                print(f"  benchmarl seed {seed}: final reward {r['final']:+.3f}  wall {r['wall_s']:.1f}s", flush=True)
    if results["benchmarl"]:
        print(f"benchmarl: {results['benchmarl'][0].get('versions')}")
    print(f"\n{'peer':<11}{'frames':>9}{'seeds':>7}{'final reward (median)':>23}{'wall s (median)':>17}{'frames/s':>10}")
    for name, rs in results.items():
        if rs:
            wall = median([r["wall_s"] for r in rs])
            print(f"{name:<11}{args.frames:>9}{len(rs):>7}{median([r['final'] for r in rs]):>+23.3f}{wall:>17.1f}{args.frames / wall:>10,.0f}")
    if len(results["benchmarl"]) == len(results["mappo_td"]):
        ratio = median([r["wall_s"] for r in results["benchmarl"]]) / median([r["wall_s"] for r in results["mappo_td"]])
        print(f"speed ratio (BenchMARL wall / mappo_td wall): {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for name, color in (("mappo_td", "tab:blue"), ("benchmarl", "tab:orange")):
            for i, r in enumerate(results[name]):
                xs, ys = zip(*r["curve"])
                ax.plot(xs, ys, color=color, alpha=0.9 if i == 0 else 0.4, label=name if i == 0 else None)
        ax.set_xlabel("frames")
        ax.set_ylabel("mean episode reward")
        ax.set_title(f"VMAS navigation, {args.frames:,} frames, BenchMARL's MAPPO settings{', GRU' if args.gru else ''}\n{device_name(args.device)}", fontsize=10)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
