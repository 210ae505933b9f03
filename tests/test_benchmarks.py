"""Each benchmark script runs (tiny budget) and prints its table: not a timing test."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.mark.parametrize("script,header,args", [
    ("update_step.py", r"variant\s+ms/step \(median\)", []),
    ("throughput.py", r"workload\s+variant\s+frames/s \(median\)", ["--workloads", "W1-64", "R1"]),
    ("learning.py", r"peer\s+frames\s+seeds\s+final reward \(median\)", []),
    ("learning.py", r"peer\s+frames\s+seeds\s+final reward \(median\)", ["--gru", "8"]),
    ("gru_cell.py", r"variant\s+mode\s+ms/step \(median\)", []),
    ("scaling.py", r"processes x threads\s+frames/s \(median\)\s+speed-up\s+efficiency", []),
])
def test_benchmark_runs_and_prints_its_table(script, header, args):
    proc = subprocess.run([sys.executable, script, "--tiny", *args], cwd=BENCH, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(header, out), out[-2000:]
    assert "device:" in out and "torch 2." in out  # configuration, device and versions are printed
    table = out[re.search(header, out).end():]
    assert re.search(r"\d[\d,]*\.?\d*", table), "the table holds no numbers"


def test_gpu_suite_cpu_form_writes_its_tables(tmp_path):
    """The GPU suite's CPU form (what CI runs): gpu-marked tests, W2/W3 and the scaling table, to markdown and JSON."""
    env = {**os.environ, "PYTHON": sys.executable, "MAPPO_TD_PEER_PYTHON": str(tmp_path / "no-peer-python")}  # no BenchMARL
    proc = subprocess.run(["bash", str(BENCH / "gpu_suite.sh"), str(tmp_path / "out"), "--device", "cpu", "--tiny"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "out" / "gpu_suite.json").read_text())
    assert "torch 2." in res["versions"] and res["device"].startswith("CPU")
    assert res["gpu_tests"].get("skipped", 0) >= 3 and res["gpu_tests"].get("failed", 0) == 0  # no CUDA here: skipped
    fps = {(r["workload"], r["variant"]): r.get("fps") for r in res["workloads"]}
    assert fps[("W2", "mappo_td plain")] > 0 and fps[("W3", "mappo_td plain")] > 0
    assert [r["envs"] for r in res["scaling"]] == [64, 128] and all(r["fps"] > 0 for r in res["scaling"])
    md = (tmp_path / "out" / "gpu_suite.md").read_text()
    assert "| W2 | mappo_td plain |" in md and "Scaling" in md
