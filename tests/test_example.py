"""The hand-written TorchRL loops of examples/: custom_loop.py and recurrent_loop.py must learn VMAS navigation;
masked_loop.py must never move illegally in connect_four_v3."""

import importlib.util
from pathlib import Path

import pytest


def load_example(name: str):
    path = Path(__file__).parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,iterations,rise", [("custom_loop", 12, 1.5), ("recurrent_loop", 10, 1.0)])
def test_example_loop_learns_navigation(name, iterations, rise):
    rewards = load_example(name).main(iterations=iterations, n_envs=32, seed=0)
    assert len(rewards) == iterations
    first, last = rewards[0], sum(rewards[-3:]) / 3
    assert last > first + rise, f"mean episode reward did not rise clearly: first {first:.3f}, last three {last:.3f}"


def test_masked_example_never_moves_illegally():
    pytest.importorskip("pettingzoo.classic.connect_four_v3")
    result = load_example("masked_loop").main(iterations=3, n_envs=4, seed=0)
    assert result["illegal"] == 0
    assert result["forbidden"] > 0  # full columns came up: the mask had something to forbid
    assert sum(result["wins"].values()) > 0  # games finished
