"""The README's commands work as written: the quick start is on the first screen, its test command is the one CI
runs, every ``mappo-td`` command in the README parses with the real parser, the quick start's ``mappo-td train`` and
``mappo-td plot`` run (a tiny run), and the skrl-style snippet makes the calls of the example it summarizes."""

import ast
import builtins
import itertools
import re
import shlex
from pathlib import Path

import pytest

from mappo_td.cli import build_parser, main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
FIRST_SCREEN = 25  # lines


def section(heading: str) -> str:
    """The README from ``heading`` (a whole line) to the next heading of the same or a higher level."""
    start = README.index(f"\n{heading}\n") + 1
    level = len(heading.split()[0])
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(README, start + len(heading))
    return README[start:end.start() if end else len(README)]


def blocks(text: str, lang: str) -> list[str]:
    return [body.strip() for kind, body in FENCE.findall(text) if kind == lang]


def mappo_td_args(line: str) -> list[list[str]]:
    """The arguments of each ``mappo-td`` command in one shell line (also after ``&&`` and in ``$(which mappo-td)``)."""
    tokens = shlex.split(line, comments=True)
    return [list(itertools.takewhile(lambda t: t not in ("&&", "||", "|", ";"), tokens[i + 1:]))
            for i, t in enumerate(tokens) if t in ("mappo-td", "mappo-td)")]


def commands(text: str) -> list[list[str]]:
    """Every ``mappo-td`` command of ``text``: each line of its bash blocks, and its inline code that runs one (not
    the bare names ``mappo-td plot`` and the like)."""
    lines = [line for body in blocks(text, "bash") for line in body.splitlines()]
    inline = [code.replace("\n", " ") for code in re.findall(r"`([^`]+)`", FENCE.sub("", text))]
    return [args for line in lines for args in mappo_td_args(line)] + [
        args for code in inline if "mappo-td" in code for args in mappo_td_args(code) if len(args) > 1]


ALL = commands(README)


def test_the_readme_has_the_commands_this_file_checks():
    assert len(ALL) >= 25 and ["train"] in ALL and any(a[0] == "plot" for a in ALL) and any(a[0] == "eval" for a in ALL)


@pytest.mark.parametrize("args", ALL, ids=[shlex.join(a)[:70] for a in ALL])
def test_every_mappo_td_command_in_the_readme_parses(args, capsys):
    try:
        build_parser().parse_args(args)
    except SystemExit as stop:  # argparse's error (2), or --help (0)
        assert stop.code == 0, f"README: mappo-td {shlex.join(args)} does not parse: {capsys.readouterr().err}"


def test_the_quick_start_is_on_the_first_screen():
    head = "\n".join(README.splitlines()[:FIRST_SCREEN])
    train, tests = blocks(section("## Quick start"), "bash")[:2]
    assert f"```bash\n{train}\n```" in head and f"```bash\n{tests}\n```" in head
    assert mappo_td_args(train) == [["train"]]


def test_the_readme_test_command_is_the_one_ci_runs():
    """``.ci/run`` installs torch, then the project with its test extra (quietly), then runs the line after its
    comment about the README; the README's test command is those three, and its train command installs the same torch."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    pip = [line.replace(" -q", "") for line in ci if line.startswith("pip install")]
    after = next(ci[i + 1] for i, line in enumerate(ci) if line.startswith("# README test command"))
    train, tests = blocks(section("## Quick start"), "bash")[:2]
    assert tests == " && ".join([*pip, after])
    assert pip[0] == "pip install torch==2.13.0" and train == f"{pip[0]} && pip install -e . && mappo-td train"


def test_the_quick_start_trains_and_plots_as_written(tmp_path, monkeypatch, capsys):
    """The quick start's ``mappo-td train`` (a tiny run: fewer, shorter, smaller steps on the CPU) and each of its ``mappo-td
    plot runs/<name>`` on that run."""
    pytest.importorskip("matplotlib")
    quick = commands(section("## Quick start"))
    train = blocks(section("## Quick start"), "bash")[0]
    monkeypatch.chdir(tmp_path)
    tiny = ["--timesteps", "16", "--max-steps", "8", "--num-envs", "4", "--rollouts", "8", "--hidden-sizes", "16", "--write-interval", "8",
            "--device", "cpu", "--no-progress", "--experiment-name", "quick"]
    assert main([*mappo_td_args(train)[0], *tiny]) == 0
    plots = [[a.replace("runs/<name>", "runs/quick") for a in args] for args in quick if args[0] == "plot"]
    assert plots
    for args in plots:
        assert main(args) == 0
        assert capsys.readouterr().out.endswith(f"wrote {Path('runs/quick/reward.png')}\n")
    assert (tmp_path / "runs" / "quick" / "reward.png").stat().st_size > 10_000


def test_the_quick_start_pettingzoo_command_is_the_one_the_pettingzoo_test_runs():
    from tests.test_pettingzoo import README_PZ

    assert ["train", *README_PZ] in commands(section("## Quick start"))


def test_the_skrl_style_snippet_makes_the_examples_calls_and_defines_what_it_uses():
    (snippet,) = blocks(section("## Driving the agent from your own loop (skrl style)"), "python")
    example = (ROOT / "examples" / "skrl_style_loop.py").read_text()

    def calls(tree: ast.AST) -> list[tuple[str, int]]:
        return [(n.func.attr, len(n.args)) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                and isinstance(n.func.value, ast.Name) and n.func.value.id == "agent"]

    tree = ast.parse(snippet)
    expected = [(name, n) for name, n in calls(ast.parse(example)) if name != "record_transition"]
    assert [c for c in calls(tree) if c[0] != "record_transition"] == expected
    assert [c[0] for c in calls(tree)] == [c[0] for c in calls(ast.parse(example))]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    # what the elided env step ("...") produces; everything else is defined in the snippet
    assert used - defined - imported - set(dir(builtins)) == {"rewards", "next_states", "terminated", "truncated"}


def test_the_math_without_torchrl_snippet_runs_on_plain_tensors():
    """The README's plain-tensor example runs as written: GAE, standardized advantages, the loss terms and their gradients."""
    (snippet,) = blocks(section("### Using the math without TorchRL"), "python")
    assert "tensordict" not in snippet and "torchrl" not in snippet
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    out, adv = scope["out"], scope["adv"]
    assert set(out) >= {"loss_objective", "loss_critic", "loss_entropy", "kl_approx"} and adv.shape == (8, 16, 3, 1)
    assert scope["logits"].grad.abs().sum() > 0 and scope["new_value"].grad.abs().sum() > 0
