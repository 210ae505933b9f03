"""The hand-written loops of examples/: custom_loop.py and recurrent_loop.py must learn VMAS navigation;
masked_loop.py (TorchRL) and turn_based_loop.py (the agent API) must never move illegally in connect_four_v3."""

import importlib.util
import json
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


def test_turn_based_example_plays_connect_four_through_the_agent_without_an_illegal_move(tmp_path):
    pytest.importorskip("pettingzoo.classic.connect_four_v3")
    result = load_example("turn_based_loop").main(games=6, num_envs=2, seed=0, directory=str(tmp_path))
    assert result["games"] >= 6 and result["illegal"] == 0
    assert result["forbidden"] > 0 and sum(result["wins"].values()) > 0  # the masks forbade moves; games were won


@pytest.mark.parametrize("body", ["mlp", "gru"])
def test_skrl_style_example_prints_the_run_folder_it_wrote(tmp_path, capsys, body):
    pytest.importorskip("mpe2")
    returns = load_example("skrl_style_loop").main(timesteps=30, num_envs=2, seed=0, directory=str(tmp_path), body=body)
    assert len(returns) == 2  # each env's first 25-step episode
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("run folder (config, progress.csv, TensorBoard): ")
    run = Path(last.split(": ", 1)[1])
    assert run.parent == tmp_path and (run / "config.json").is_file() and list((run / "tensorboard").iterdir())
    assert json.loads((run / "config.json").read_text())["model"]["body"] == body


def test_masked_example_names_the_one_package_connect_four_needs(monkeypatch):
    import sys

    import pettingzoo

    module = load_example("masked_loop")
    monkeypatch.setattr(pettingzoo, "classic", getattr(pettingzoo, "classic", None), raising=False)
    for name in [m for m in sys.modules if m.startswith("pettingzoo.classic")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pygame", None)  # as if pygame were not installed
    with pytest.raises(ModuleNotFoundError, match=r"connect_four_v3 imports pygame .*: pip install pygame-ce$"):
        module.make_env(1)
