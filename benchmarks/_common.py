"""Shared helpers for the benchmarks: versions, the BenchMARL driver, result parsing."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("MAPPO_TD_PEERS", ROOT.parent / "shared" / "peers"))
PEER_PYTHON = os.environ.get("MAPPO_TD_PEER_PYTHON", str(Path.home() / "peers" / "bin" / "python"))
# MAPPO_TD_PEER_PYTHONPATH: the PYTHONPATH of the peer interpreter (set by gpu_suite.sh for BenchMARL's wheel target)


def versions() -> str:
    """One line of library versions and thread count."""
    import tensordict
    import torch
    import torchrl
    import vmas

    return (f"python {platform.python_version()} torch {torch.__version__} torchrl {torchrl.__version__} "
            f"tensordict {tensordict.__version__} vmas {vmas.__version__} threads {torch.get_num_threads()}")


def device_name(device: str) -> str:
    """A human name of the device (GPU model, or CPU with its core count)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def run_benchmarl(args: list[str], timeout: int = 7200, gru_hidden: int | None = None) -> dict:
    """Run ``../shared/peers/benchmarl_mappo.py`` in its own venv (through ``benchmarl_gru.py`` with BenchMARL's GRU model
    when ``gru_hidden`` is set); parse its result block and per-iteration rows."""
    driver = PEERS / "benchmarl_mappo.py"
    if not driver.exists() or not Path(PEER_PYTHON).exists():
        return {"error": f"BenchMARL not available (driver {driver}, python {PEER_PYTHON}); "
                         "create it with: python3 -m venv ~/peers && ~/peers/bin/pip install torch==2.13.0 benchmarl vmas"}
    if gru_hidden is not None:
        cmd = [PEER_PYTHON, str(Path(__file__).parent / "benchmarl_gru.py"), "--gru-hidden", str(gru_hidden), *args]
    else:
        cmd = [PEER_PYTHON, str(driver), *args]
    env = {**os.environ, "MAPPO_TD_PEERS": str(PEERS)}
    if os.environ.get("MAPPO_TD_PEER_PYTHONPATH"):  # a GPU machine: BenchMARL's wheels in their own target (gpu_suite.sh)
        env["PYTHONPATH"] = os.environ["MAPPO_TD_PEER_PYTHONPATH"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    out = proc.stdout
    if proc.returncode != 0:
        return {"error": f"BenchMARL failed (rc {proc.returncode}): {proc.stderr[-2000:]}"}
    res: dict = {"iters": []}
    for m in re.finditer(r"iter\s+(\d+):\s+([\d.]+)\s+([\d.]+)\s+([-+\d.naif]+)", out):
        res["iters"].append({"iter": int(m[1]), "collect_s": float(m[2]), "train_s": float(m[3]), "reward": float(m[4])})
    for key, pat in {"frames": r"frames collected\s+:\s+(\d+)", "wall_s": r"experiment.run\(\) wall s\s+:\s+([\d.]+)",
                     "fps": r"frames/s end-to-end \(run\)\s+:\s+([\d,]+)", "train_s": r"training s total\s+:\s+([\d.]+)",
                     "versions": r"^(python .*)$"}.items():
        m = re.search(pat, out, re.M)
        if m:
            res[key] = m[1] if key == "versions" else float(m[1].replace(",", ""))
    return res


def median(xs: list[float]) -> float:
    """Median (of repeated runs)."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def python() -> str:
    """This interpreter (mappo_td's venv)."""
    return sys.executable


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """subprocess.run with text output."""
    return subprocess.run(cmd, capture_output=True, text=True, **kw)
