"""The MAPPO paper's own task, MPE simple_spread (3 agents, 25-step episodes): the official MAPPO code vs mappo_td.

Rows, at equal env steps (an env step advances one env; 8 envs, so 200 env steps per 25-step rollout):

- ``onpolicy rmappo`` / ``onpolicy mappo``: the official code (marlbenchmark/on-policy, through the peer driver
  ``onpolicy/onpolicy_mappo.py`` in its own venv) with its spread script's settings: lr 7e-4, 10 epochs,
  1 minibatch, Tanh, 8 rollout processes, discrete actions, 1 training thread (its ``n_training_threads``).
- ``mappo_td preset``: ``--preset mappo-paper`` set to the same (lr 7e-4, 10 epochs, 1 minibatch, Tanh,
  25-step rollouts of 8 envs, chunks of ``--chunk``, 1 torch thread as the official's) on mpe2 ``simple_spread_v3``; ``mappo_td preset compile``:
  the same with ``--fast compile`` (torch.compile of acting and update; the same arithmetic).
- ``mappo_td skrl``: mappo_td with skrl's defaults (MAPPO_DEFAULT_CONFIG) on mpe2 ``simple_spread_v3``.
- ``mappo_td vmas``: the compiled preset's settings on VMAS ``simple_spread`` (the batched simulator route).

Every curve is put on the official code's scale (its ``average_episode_rewards``, a team return with
-1/agent/step of self-collision): ``6 x (mean per-agent mpe2 episode return) - 75`` and
``VMAS episode return - 75`` (the peer's README checks this on 2,000 states). The three tasks are close but
not identical (mpe2: integration order, landmark range; VMAS: actuation, observations).

Also a table of each task's random-policy return on that scale (the floor each curve rises from: mpe2's wider
landmark box starts lower), and a collection-only table: a plain loop over 8 mpe2 envs with random actions, mappo_td's
``BatchedPettingZooEnv`` (in this process, and a pool of 2 worker processes) and TorchRL's
``SerialEnv(PettingZooWrapper)``, interleaved in one process; then the trainer's collection with the preset's policy:
TorchRL's ``Collector`` against mappo_td's lean ``TensorRollout`` (why the lean rollout exists).

    python benchmarks/mpe.py --steps 300000 --seeds 1 2 --out benchmarks/mpe_300k.json --plot docs/mpe_spread.png
    python benchmarks/mpe.py --collect-only

The official code's venv: ``../shared/peers/onpolicy/README.md`` (``~/peers-op``; or ``MAPPO_TD_ONPOLICY_PYTHON``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from _common import PEERS, device_name, median, python, run, versions

ONPOLICY_PYTHON = os.environ.get("MAPPO_TD_ONPOLICY_PYTHON", str(Path.home() / "peers-op" / "bin" / "python"))
N_ENVS, EPISODE = 8, 25
PAPER = ["--preset", "mappo-paper", "--learning-rate", "7e-4", "--learning-epochs", "10", "--mini-batches", "1",
         "--activation", "tanh", "--rollouts", "25"]
ROWS = ("onpolicy rmappo", "onpolicy mappo", "mappo_td preset compile", "mappo_td preset", "mappo_td skrl", "mappo_td vmas")
FRACTIONS = (0.25, 0.5, 0.75)
# torch's intra-op threads of each mappo_td run, as the official script's n_training_threads=1: with 2 threads on 2
# cores, anything else running stalls every op on its second thread (seen here: 40-120 frames/s in bursts).
TRAINING_THREADS = 1


def mappo_td_flags(row: str, chunk: int) -> list[str]:
    """The ``mappo-td train`` flags of a mappo_td row (without run length, seed and folders)."""
    pz = ["--backend", "pettingzoo", "--scenario", "simple_spread_v3", "--no-continuous-actions", "--num-envs", str(N_ENVS),
          "--max-steps", str(EPISODE)]  # mpe2's own max_cycles, which mappo_td's max_steps (default 100) would replace
    if row.startswith("mappo_td preset"):
        return [*pz, *PAPER, "--data-chunk-length", str(chunk), *(["--fast", "compile"] if row.endswith("compile") else [])]
    if row == "mappo_td skrl":
        return pz
    return ["--backend", "vmas", "--scenario", "simple_spread", "--no-continuous-actions", "--num-envs", str(N_ENVS),
            "--max-steps", str(EPISODE), "--scenario-kwargs", "{}", *PAPER, "--data-chunk-length", str(chunk), "--fast", "compile"]


def official_scale(row: str, value: float) -> float:
    """A mappo_td log value (mean per-agent episode return) on the official code's scale."""
    return value - 75 if row == "mappo_td vmas" else 6 * value - 75


def run_mappo_td(row: str, steps: int, seed: int, chunk: int) -> dict:
    """One ``mappo-td train`` run in a subprocess; its curve (env steps, official-scale return) from progress.csv."""
    folder = tempfile.mkdtemp(prefix="mpe_bench_")
    cmd = [python(), "-m", "mappo_td.cli", "train", *mappo_td_flags(row, chunk), "--timesteps", str(steps // N_ENVS),
           "--seed", str(seed), "--write-interval", str(1000 // N_ENVS), "--checkpoint-interval", "0", "--no-progress",
           "--directory", folder, "--experiment-name", "run", "--device", "cpu"]
    t0 = time.perf_counter()
    proc = run(cmd, env={**os.environ, "OMP_NUM_THREADS": str(TRAINING_THREADS)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"rc {proc.returncode}: {proc.stderr[-1500:]}", "cmd": cmd}
    rows = list(csv.DictReader(open(Path(folder) / "run" / "progress.csv")))
    curve = [(int(r["frames"]), official_scale(row, float(r["reward/episode_mean"]))) for r in rows if r["reward/episode_mean"] not in ("", "nan")]
    return {"wall_s": wall, "env_steps": int(rows[-1]["frames"]), "curve": curve, "cmd": " ".join(cmd[2:])}


def run_onpolicy(algo: str, steps: int, seed: int) -> dict:
    """The official code through its peer driver (own venv); its logged curve is already on its scale."""
    driver = PEERS / "onpolicy" / "onpolicy_mappo.py"
    if not driver.exists() or not Path(ONPOLICY_PYTHON).exists():
        return {"error": f"the official MAPPO code is not available (driver {driver}, python {ONPOLICY_PYTHON}); "
                         "make its venv as ../shared/peers/onpolicy/README.md says"}
    out = Path(tempfile.mkdtemp(prefix="onpolicy_")) / "r.json"
    cmd = [ONPOLICY_PYTHON, str(driver), "--steps", str(steps), "--threads", str(N_ENVS), "--algo", algo, "--seed", str(seed),
           "--out", str(out), "--train-log", str(out.with_suffix(".log"))]
    t0 = time.perf_counter()
    proc = run(cmd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"rc {proc.returncode}: {proc.stderr[-1500:]}", "cmd": cmd}
    res = json.loads(out.read_text())
    curve = [(p["env_steps"], p["average_episode_rewards"]) for p in res["curve"]]
    return {"wall_s": wall, "env_steps": res["env_steps"], "curve": curve, "cmd": " ".join(cmd[1:])}


def at(curve: list[tuple[int, float]], steps: int) -> float:
    """The curve's value at ``steps``: the mean of its points within 5% of the budget before it (at least one point)."""
    near = [v for s, v in curve if steps - 0.05 * curve[-1][0] <= s <= steps]
    return sum(near) / len(near) if near else float("nan")


def summarize(res: dict, steps: int) -> dict:
    """Return at 25/50/75% of the budget, the end (mean of the last 10 points), wall time and env-steps/s."""
    c = res["curve"]
    return {**{f"at_{int(f * 100)}": at(c, int(f * steps)) for f in FRACTIONS},
            "final": sum(v for _, v in c[-10:]) / len(c[-10:]), "wall_s": res["wall_s"], "steps_per_s": res["env_steps"] / res["wall_s"]}


def collection(steps: int, repeats: int) -> dict[str, list[float]]:
    """env-steps/s of random-action stepping over 8 mpe2 simple_spread envs: plain loop, batched, pool of 2, TorchRL."""
    import numpy as np
    import torch
    from mpe2 import simple_spread_v3
    from torchrl.envs import PettingZooWrapper, SerialEnv

    from mappo_td.batched_pettingzoo import BatchedPettingZooEnv

    def make():
        return simple_spread_v3.parallel_env(continuous_actions=False)

    def plain() -> float:
        envs = [make() for _ in range(N_ENVS)]
        for i, e in enumerate(envs):
            e.reset(seed=i)
        rng = np.random.default_rng(0)
        t = time.perf_counter()
        for _ in range(steps):
            for e in envs:
                if not e.agents:
                    e.reset()
                e.step({a: int(rng.integers(5)) for a in e.agents})
        return N_ENVS * steps / (time.perf_counter() - t)

    def torchrl_loop(env) -> float:
        env.set_seed(0)
        td = env.reset()
        t = time.perf_counter()
        for _ in range(steps):
            td["agent", "action"] = torch.randint(0, 5, (N_ENVS, 3))
            _, td = env.step_and_maybe_reset(td)
        return N_ENVS * steps / (time.perf_counter() - t)

    envs = {"mappo_td batched (this process)": BatchedPettingZooEnv(make, N_ENVS),
            "mappo_td pool (2 workers)": BatchedPettingZooEnv(make, N_ENVS, num_workers=2),
            "TorchRL SerialEnv(PettingZooWrapper)": SerialEnv(N_ENVS, lambda: PettingZooWrapper(make(), categorical_actions=True, use_mask=True))}
    out: dict[str, list[float]] = {"plain mpe2 loop": [], **{k: [] for k in envs}}
    for _ in range(repeats):
        out["plain mpe2 loop"].append(plain())
        for k, env in envs.items():
            out[k].append(torchrl_loop(env))
    for env in envs.values():
        env.close()
    return out


def acting_collection(rollouts: int, repeats: int) -> dict[str, list[float]]:
    """env-steps/s of the trainer's collection with the ``mappo-paper`` policy (GRU actor and critic, eager) over 8
    batched mpe2 envs: TorchRL's ``Collector`` against mappo_td's lean :class:`~mappo_td.train.rollout.TensorRollout`
    (the same tensors; a test checks it), interleaved, ``rollouts`` 25-step rollouts per measurement."""
    from torchrl.collectors import Collector

    from mappo_td import TrainConfig
    from mappo_td.config import merge_config, preset
    from mappo_td.train import build_learner

    cfg = TrainConfig.from_dict(merge_config(preset("mappo-paper"), {
        "device": "cpu", "seed": 1, "mappo": {"rollouts": EPISODE, "data_chunk_length": 5}, "model": {"activation": "tanh"},
        "env": {"backend": "pettingzoo", "scenario": "simple_spread_v3", "continuous_actions": False, "num_envs": N_ENVS,
                "max_steps": EPISODE}}))
    lean, ref = build_learner(cfg), build_learner(cfg)
    collectors = {"TorchRL Collector": Collector(ref.env, ref.acting, frames_per_batch=cfg.frames_per_iteration, total_frames=-1,
                                                 auto_register_policy_transforms=False, trust_policy=True),
                  "mappo_td TensorRollout": lean.collector}
    out: dict[str, list[float]] = {k: [] for k in collectors}
    for c in collectors.values():
        c.rollout()  # warm-up
    for _ in range(repeats):
        for k, c in collectors.items():
            t = time.perf_counter()
            for _ in range(rollouts):
                c.rollout()
            out[k].append(N_ENVS * EPISODE * rollouts / (time.perf_counter() - t))
    return out


OFFICIAL_RANDOM = """
import sys, types, numpy as np
sys.path.insert(0, sys.argv[1])
from onpolicy.envs.mpe.MPE_env import MPEEnv
env = MPEEnv(types.SimpleNamespace(scenario_name="simple_spread", episode_length=25, num_agents=3, num_landmarks=3))
env.seed(int(sys.argv[3]))
rng, out = np.random.default_rng(int(sys.argv[3])), []
for _ in range(int(sys.argv[2])):
    env.reset()
    out.append(sum(float(env.step([np.eye(5)[k] for k in rng.integers(0, 5, 3)])[1][0][0]) for _ in range(25)))
print(sum(out) / len(out))
"""


def random_baselines(episodes: int, seed: int = 0) -> dict[str, float]:
    """The mean episode return of uniform random actions on each task, on the official scale: how hard each task's
    start is (mpe2 spawns landmarks over a wider box than the official MPE), the floor each learning curve rises from."""
    import numpy as np
    import torch
    import vmas
    from mpe2 import simple_spread_v3

    out: dict[str, float] = {}
    src = PEERS / "onpolicy" / "src"
    if src.exists() and Path(ONPOLICY_PYTHON).exists():
        proc = run([ONPOLICY_PYTHON, "-c", OFFICIAL_RANDOM, str(src), str(episodes), str(seed)])
        out["official MPE simple_spread"] = float(proc.stdout.split()[-1]) if proc.returncode == 0 else float("nan")
    env, rng, returns = simple_spread_v3.parallel_env(continuous_actions=False, max_cycles=EPISODE), np.random.default_rng(seed), []
    for i in range(episodes):
        env.reset(seed=seed + i)
        total = 0.0
        while env.agents:
            total += float(np.mean(list(env.step({a: int(rng.integers(5)) for a in env.agents})[1].values())))
        returns.append(6 * total - 75)
    out["mpe2 simple_spread_v3"] = float(np.mean(returns))
    venv = vmas.make_env("simple_spread", num_envs=episodes, device="cpu", continuous_actions=False, max_steps=EPISODE, seed=seed)
    venv.reset()
    total = torch.zeros(episodes)
    for _ in range(EPISODE):
        _, rews, _, _ = venv.step([torch.randint(0, 5, (episodes,)) for _ in venv.agents])
        total += rews[0]
    out["VMAS simple_spread"] = float(total.mean()) - 75
    return out


def plot(results: dict, steps: int, path: str) -> None:
    """Mean curve per row (min-max band over seeds), on the official scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.5))
    grid = np.linspace(steps * 0.02, steps, 100)
    for row, runs in results.items():
        runs = [r for r in runs.values() if "curve" in r]
        if not runs:
            continue
        ys = np.stack([np.interp(grid, [s for s, _ in r["curve"]], [v for _, v in r["curve"]]) for r in runs])
        ax.plot(grid, ys.mean(0), label=f"{row} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return (official MAPPO code's scale)")
    ax.set_title("MPE simple_spread: the official MAPPO code vs mappo_td (2 CPU cores)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300_000, help="env steps per run (default 300,000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS, metavar="ROW", help=f"rows to run (default: all of {ROWS})")
    p.add_argument("--single-seed-rows", nargs="*", default=["onpolicy mappo", "mappo_td preset"],
                   help="rows run with the first seed only (default: the official mappo, and the eager preset whose learning the "
                        "compiled one repeats)")
    p.add_argument("--chunk", type=int, default=5, help="the preset rows' data_chunk_length (25 or 5)")
    p.add_argument("--collect-only", action="store_true", help="only the collection table")
    p.add_argument("--collect-steps", type=int, default=400, help="steps per collection measurement")
    p.add_argument("--repeats", type=int, default=5, help="collection repeats (median)")
    p.add_argument("--random-episodes", type=int, default=400, help="episodes of the random-policy baselines")
    p.add_argument("--out", default=None, help="write all results as JSON")
    p.add_argument("--plot", default=None, help="write the curves as a PNG")
    a = p.parse_args()
    print(f"# MPE simple_spread benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {device_name('cpu')}\n# {versions()}")
    print(f"# {N_ENVS} envs, {EPISODE}-step episodes; runs: {a.steps:,} env steps, seeds {a.seeds}, chunk {a.chunk}")
    report: dict = {"config": vars(a), "versions": versions()}
    col = collection(a.collect_steps, a.repeats)
    report["collection"] = col
    base = median(col["plain mpe2 loop"])
    print("\n| collection, random actions, 8 envs | env-steps/s (median) | of the plain loop |\n|---|---|---|")
    for k, v in col.items():
        print(f"| {k} | {median(v):,.0f} | {median(v) / base:.2f} |")
    acting = acting_collection(max(a.collect_steps // EPISODE, 1), a.repeats)
    report["acting_collection"] = acting
    print("\n| collection with the preset's GRU policy, 8 batched envs | env-steps/s (median) | of the plain loop |\n|---|---|---|")
    for k, v in acting.items():
        print(f"| {k} | {median(v):,.0f} | {median(v) / base:.2f} |")
    base_returns = random_baselines(a.random_episodes)
    report["random_policy"] = base_returns
    print("\n| uniform random actions, official scale | mean episode return |\n|---|---|")
    for k, v in base_returns.items():
        print(f"| {k} | {v:.1f} |")
    if not a.collect_only:
        results: dict = {row: {} for row in a.rows}
        for i, seed in enumerate(a.seeds):  # interleaved: every row for one seed, then the next seed
            for row in a.rows:
                if i > 0 and row in a.single_seed_rows:
                    continue
                res = run_onpolicy(row.split()[1], a.steps, seed) if row.startswith("onpolicy") else run_mappo_td(row, a.steps, seed, a.chunk)
                results[row][seed] = res
                print(f"# {row} seed {seed}: " + (res["error"] if "error" in res else
                      f"{res['env_steps']:,} env steps in {res['wall_s']:.0f} s, final {summarize(res, a.steps)['final']:.1f}"), flush=True)
        report["runs"] = results
        print(f"\n| {a.steps:,} env steps | seeds | " + " | ".join(f"at {int(f * 100)}%" for f in FRACTIONS)
              + " | end (last 10) | wall s | env-steps/s |\n|---|---|" + "---|" * (len(FRACTIONS) + 3))
        for row, runs in results.items():
            ok = {s: summarize(r, a.steps) for s, r in runs.items() if "error" not in r}
            if not ok:
                print(f"| {row} | - | not available |")
                continue
            cols = [*(f"at_{int(f * 100)}" for f in FRACTIONS), "final"]
            cells = [" / ".join(f"{ok[s][c]:.1f}" for s in ok) for c in cols]
            print(f"| {row} | {', '.join(map(str, ok))} | " + " | ".join(cells)
                  + f" | {median([o['wall_s'] for o in ok.values()]):.0f} | {median([o['steps_per_s'] for o in ok.values()]):,.0f} |")
        if a.plot:
            plot(results, a.steps, a.plot)
            print(f"\nplot: {a.plot}")
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1))
        print(f"results: {a.out}")


if __name__ == "__main__":
    main()
