"""Each benchmark script runs (tiny budget) and prints its table: not a timing test."""

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
])
def test_benchmark_runs_and_prints_its_table(script, header, args):
    proc = subprocess.run([sys.executable, script, "--tiny", *args], cwd=BENCH, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(header, out), out[-2000:]
    assert "device:" in out and "torch 2." in out  # configuration, device and versions are printed
    table = out[re.search(header, out).end():]
    assert re.search(r"\d[\d,]*\.?\d*", table), "the table holds no numbers"
