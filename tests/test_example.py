"""The hand-written TorchRL loops of examples/ (custom_loop.py, recurrent_loop.py) must learn VMAS navigation."""

import importlib.util
from pathlib import Path


def test_custom_loop_learns_navigation():
    path = Path(__file__).parents[1] / "examples" / "custom_loop.py"
    spec = importlib.util.spec_from_file_location("custom_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rewards = module.main(iterations=12, n_envs=32, seed=0)
    assert len(rewards) == 12
    first, last = rewards[0], sum(rewards[-3:]) / 3
    assert last > first + 1.5, f"mean episode reward did not rise clearly: first {first:.3f}, last three {last:.3f}"


def test_recurrent_loop_learns_navigation():
    path = Path(__file__).parents[1] / "examples" / "recurrent_loop.py"
    spec = importlib.util.spec_from_file_location("recurrent_loop", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rewards = module.main(iterations=10, n_envs=32, seed=0)
    assert len(rewards) == 10
    first, last = rewards[0], sum(rewards[-3:]) / 3
    assert last > first + 1.0, f"mean episode reward did not rise clearly: first {first:.3f}, last three {last:.3f}"
