"""The GPU suite: everything the GPU path needs measured, in one process tree, within a time budget.

1. the ``gpu``-marked tests (CUDA-graph correctness, captured acting, a short cudagraphs run);
2. W2 and W3 (``throughput.py``'s workloads) with each fast variant, next to BenchMARL's MAPPO and the raw
   simulator (TorchRL's ``VmasEnv``, random actions) at the same number of envs;
3. the scaling table: W3's update over 64 → 65,536 envs: frames/s, peak GPU memory, % of the raw simulator.

Writes ``gpu_suite.md`` and ``gpu_suite.json`` to the output folder. Steps run in that order while the
budget lasts; what does not fit is listed as skipped. Start it with ``benchmarks/gpu_suite.sh`` (installs
carried wheels first); the CPU form ``--device cpu --tiny`` runs in CI.

    bash benchmarks/gpu_suite.sh gpu_out
    bash benchmarks/gpu_suite.sh /tmp/suite --device cpu --tiny
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, device_name, versions
from throughput import WORKLOADS, benchmarl, measure, raw_sim

TINY = {"n_envs": 8, "steps": 10, "epochs": 1, "minibatch": 40, "hidden": [16], "iters": 1}


class Budget:
    """Seconds left of the suite's budget."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def gpu_tests(budget: Budget) -> dict:
    """Run ``pytest -m gpu``; its pass/skip/fail counts (skips on a machine without CUDA)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"], cwd=ROOT,
                              capture_output=True, text=True, timeout=max(30.0, min(240.0, budget.left())))
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail)}
    return {"summary": tail, **counts, "rc": proc.returncode}


def workload(name: str, variants: list[str], device: str, tiny: bool, budget: Budget) -> list[dict]:
    """One workload: each variant, BenchMARL, the raw simulator; rows with ratios."""
    w = {**WORKLOADS[name], **(TINY if tiny else {})}
    rows = []
    sim = raw_sim(w["n_envs"], device)
    for v in variants:
        if budget.left() < 30:
            rows.append({"workload": name, "variant": f"mappo_td {v}", "skipped": "out of time budget"})
            continue
        r = measure({**w, "device": device, "fast": "off" if v == "plain" else v}, 1)
        rows.append({"workload": name, "variant": f"mappo_td {v}", **r})
    peer = benchmarl(w, device, 1) if budget.left() > 60 else {"error": "skipped: out of time budget"}
    rows.append({"workload": name, "variant": "benchmarl", **peer})
    rows.append({"workload": name, "variant": "raw VmasEnv (random actions)", **sim})
    for r in rows:
        if "fps" in r:
            r["vs_benchmarl"] = r["fps"] / peer["fps"] if "fps" in peer else None
            r["vs_raw"] = r["fps"] / sim["fps"] if "fps" in sim else None
    return rows


def scaling(envs: list[int], variant: str, device: str, tiny: bool, budget: Budget) -> list[dict]:
    """W3's update (16 rollouts, 8 epochs x 2 minibatches, 64-64) over ``envs`` environments."""
    base = {**WORKLOADS["W3"], **(TINY if tiny else {})}
    rows = []
    for n in envs:
        if budget.left() < 30:
            rows.append({"envs": n, "skipped": "out of time budget"})
            continue
        spec = {**base, "n_envs": n, "minibatch": max(1, n * base["steps"] // 2), "device": device,
                "fast": "off" if variant == "plain" else variant}
        r, sim = measure(spec, 1), raw_sim(n, device)
        rows.append({"envs": n, "variant": variant, **r, "raw_fps": sim.get("fps"),
                     "pct_of_raw": 100 * r["fps"] / sim["fps"] if "fps" in r and "fps" in sim else None})
    return rows


def _num(x: float | None, fmt: str) -> str:
    return format(x, fmt) if isinstance(x, (int, float)) else "-"


def markdown(res: dict) -> str:
    """The suite's results as markdown tables."""
    out = [f"# GPU suite: {res['device']}", "", f"{res['date']} · `{res['command']}`", "", f"`{res['versions']}`", "",
           f"gpu-marked tests: {res['gpu_tests'].get('summary', res['gpu_tests'])}", "",
           "| workload | variant | frames/s | vs BenchMARL | vs raw sim | peak MB |", "|---|---|---:|---:|---:|---:|"]
    for r in res["workloads"]:
        note = r.get("skipped") or r.get("error", "")
        out.append(f"| {r['workload']} | {r['variant']} | {_num(r.get('fps'), ',.0f') if 'fps' in r else note[:60]} | "
                   f"{_num(r.get('vs_benchmarl'), '.2f')} | {_num(r.get('vs_raw'), '.2f')} | {_num(r.get('peak_mb'), ',.0f')} |")
    out += ["", f"Scaling (W3's update, variant {res['scaling_variant']}):", "",
            "| envs | frames/s | peak MB | raw sim frames/s | % of raw |", "|---:|---:|---:|---:|---:|"]
    for r in res["scaling"]:
        if "skipped" in r or "error" in r:
            out.append(f"| {r['envs']} | {(r.get('skipped') or r.get('error', ''))[:60]} | | | |")
        else:
            out.append(f"| {r['envs']} | {_num(r.get('fps'), ',.0f')} | {_num(r.get('peak_mb'), ',.0f')} | "
                       f"{_num(r.get('raw_fps'), ',.0f')} | {_num(r.get('pct_of_raw'), '.0f')} |")
    out += ["", f"total wall time: {res['wall_s']:.0f} s"]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="folder for gpu_suite.md and gpu_suite.json (created)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="seconds-long sizes (the CPU form run in CI)")
    p.add_argument("--budget-s", type=float, default=540.0, help="stop starting new measurements after this many seconds")
    p.add_argument("--variants", nargs="+", default=None, help="default: plain compile cudagraphs on CUDA, plain on CPU")
    p.add_argument("--envs", type=int, nargs="+", default=None, help="scaling table sizes (default 64 .. 65,536)")
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    variants = args.variants or (["plain", "compile", "cudagraphs"] if cuda else ["plain"])
    envs = args.envs or ([64, 128] if args.tiny else [64, 256, 1024, 4096, 16384, 65536])
    budget = Budget(args.budget_s)
    t0 = time.perf_counter()
    res = {"device": device_name(args.device), "versions": versions(), "date": datetime.date.today().isoformat(),
           "command": "bash benchmarks/gpu_suite.sh " + " ".join(sys.argv[1:]), "config": vars(args)}
    print(f"gpu suite: {res['device']}\n{res['versions']}\nconfig: {json.dumps(vars(args))}", flush=True)
    res["gpu_tests"] = gpu_tests(budget)
    print(f"gpu-marked tests: {res['gpu_tests'].get('summary', res['gpu_tests'])}", flush=True)
    res["workloads"] = [row for name in ("W2", "W3") for row in workload(name, variants, args.device, args.tiny, budget)]
    res["scaling_variant"] = variants[-1]
    res["scaling"] = scaling(envs, variants[-1], args.device, args.tiny, budget)
    res["wall_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(res)
    (out / "gpu_suite.json").write_text(json.dumps(res, indent=1, default=str))
    (out / "gpu_suite.md").write_text(text)
    print("\n" + text)
    print(f"written: {out / 'gpu_suite.md'}, {out / 'gpu_suite.json'}")


if __name__ == "__main__":
    main()
