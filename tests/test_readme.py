"""The README's commands work as written: it is short (the rest is in docs/), the quick start is on the first screen,
its test command is the one CI runs, every ``mappo-td`` command in it and in the docs parses with the real parser, the
quick start's ``mappo-td train`` and ``mappo-td plot`` run (a tiny run), its Python examples run (the agent's makes
the calls of the example it summarizes), and its links are absolute (the package index shows it) and name files that
exist."""

import ast
import builtins
import shlex
from pathlib import Path

import pytest

from mappo_td.cli import build_parser, main
from tests.markdown import DOCS, PAGES, REPO_URL, ROOT, blocks, commands, links, mappo_td_args, read, section

README = read(ROOT / "README.md")
FIRST_SCREEN = 25  # lines
MAX_LINES = 150
ALL = commands(README) + [args for page in PAGES for args in commands(read(page))]


def test_the_readme_is_short_and_its_links_work_on_the_package_index():
    """At most 150 lines; every link and image is absolute (PyPI renders no relative one), and one into this
    repository names a file that exists."""
    assert len(README.splitlines()) <= MAX_LINES
    targets = links(README)
    assert targets and all(t.startswith("https://") for t in targets), [t for t in targets if not t.startswith("https://")]
    repo = [m.group(1) for t in targets if (m := REPO_URL.match(t))]
    assert len(repo) >= 10 and all((ROOT / path).exists() for path in repo), [p for p in repo if not (ROOT / p).exists()]


def test_the_readme_and_docs_have_the_commands_this_file_checks():
    assert len(ALL) >= 25 and ["train"] in ALL and any(a[0] == "plot" for a in ALL) and any(a[0] == "eval" for a in ALL)


@pytest.mark.parametrize("args", ALL, ids=[shlex.join(a)[:70] for a in ALL])
def test_every_mappo_td_command_in_the_readme_and_docs_parses(args, capsys):
    try:
        build_parser().parse_args(args)
    except SystemExit as stop:  # argparse's error (2), or --help (0)
        assert stop.code == 0, f"README: mappo-td {shlex.join(args)} does not parse: {capsys.readouterr().err}"


def test_the_quick_start_is_on_the_first_screen():
    head = "\n".join(README.splitlines()[:FIRST_SCREEN])
    train, tests = blocks(section(README, "## Quick start"), "bash")[:2]
    assert f"```bash\n{train}\n```" in head and f"```bash\n{tests}\n```" in head
    assert mappo_td_args(train) == [["train"]]


def test_the_readme_test_command_is_the_one_ci_runs():
    """``.ci/run`` installs torch, then the project with its test extra (quietly), then runs the line after its
    comment about the README; the README's test command is those three, and its train command installs the same torch."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    pip = [line.replace(" -q", "") for line in ci if line.startswith("pip install")][:2]
    after = next(ci[i + 1] for i, line in enumerate(ci) if line.startswith("# README test command"))
    train, tests = blocks(section(README, "## Quick start"), "bash")[:2]
    assert tests == " && ".join([*pip, after])
    assert pip[0] == "pip install torch==2.13.0" and train == f"{pip[0]} && pip install -e . && mappo-td train"


def test_the_quick_start_trains_and_plots_as_written(tmp_path, monkeypatch, capsys):
    """The quick start's ``mappo-td train`` (a tiny run: fewer, shorter, smaller steps on the CPU) and each of its ``mappo-td
    plot runs/<name>`` on that run."""
    pytest.importorskip("matplotlib")
    quick = commands(section(README, "## Quick start"))
    train = blocks(section(README, "## Quick start"), "bash")[0]
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


def test_the_getting_started_pettingzoo_command_is_the_one_the_pettingzoo_test_runs():
    from tests.test_pettingzoo import README_PZ

    assert ["train", *README_PZ] in commands(read(DOCS / "getting-started.md"))


def agent_calls(tree: ast.AST) -> list[tuple[str, int]]:
    return [(n.func.attr, len(n.args)) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "agent"]


# what the elided parts ("...") give each snippet; everything else is defined in the snippet
AGENT_SNIPPETS = {
    "README.md": ({"rewards", "next_states", "terminated", "truncated", "names", "observation_spaces", "action_spaces", "states",
                   "timesteps"}, lambda: blocks(README, "python")[-1]),
    "docs/agent.md": ({"rewards", "next_states", "terminated", "truncated"}, lambda: blocks(read(DOCS / "agent.md"), "python")[0]),
}


@pytest.mark.parametrize("where", AGENT_SNIPPETS)
def test_the_skrl_style_snippets_make_the_examples_calls_and_define_what_they_use(where):
    elided, snippet = AGENT_SNIPPETS[where][0], AGENT_SNIPPETS[where][1]()
    example = (ROOT / "examples" / "skrl_style_loop.py").read_text()
    tree = ast.parse(snippet)
    expected = [(name, n) for name, n in agent_calls(ast.parse(example)) if name != "record_transition"]
    assert [c for c in agent_calls(tree) if c[0] != "record_transition"] == expected
    assert [c[0] for c in agent_calls(tree)] == [c[0] for c in agent_calls(ast.parse(example))]
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    defined = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    imported = {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    assert used - defined - imported - set(dir(builtins)) == elided


def test_the_readme_python_examples_run(monkeypatch, tmp_path):
    """The modules example (a TorchRL rollout, GAE, one loss step that changes the parameters) and the plain-tensor
    example (gradients reach the policy's logits and the critic's values) run as written."""
    monkeypatch.chdir(tmp_path)
    modules, math = blocks(README, "python")[:2]
    scope: dict = {}
    exec(compile(modules, "README.md", "exec"), scope)
    assert scope["data"].batch_size == (8, 50) and ("agents", "advantage") in scope["data"].keys(True)
    assert all(p.grad is not None for p in scope["policy"].parameters())
    assert "tensordict" not in math and "torchrl" not in math
    scope = {}
    exec(compile(math, "README.md", "exec"), scope)
    assert scope["adv"].shape == (8, 16, 3, 1) and scope["new_value"].grad.abs().sum() > 0
    assert set(scope["out"]) >= {"loss_objective", "loss_critic", "loss_entropy", "kl_approx"}
