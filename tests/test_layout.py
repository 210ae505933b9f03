"""The layout holds: data flows one way, no import cycle, files and functions stay small, tests and benchmarks use public names."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
PKG = ROOT / "mappo_td"
# Lower layers never import higher ones; models and objectives do not import each other.
LAYERS = {"defaults": 0, "functional": 0, "_moved": 0, "atomic": 0, "config": 0, "plot": 0, "keys": 1, "multiagent": 1, "transforms": 1,
          "envs": 1, "pettingzoo_arrays": 1, "pettingzoo_pool": 1, "batched_pettingzoo": 1, "pettingzoo_tasks": 1, "fast": 1, "models": 2,
          "objectives": 2, "train": 3, "trainer": 4, "agent": 4, "cli_parser": 4, "cli": 5, "reference_pages": 5, "__main__": 6}
# The core (the math, its TensorDict modules, the models and the layer-1 modules they use) stands without these.
NOT_CORE = ("mappo_td.config", "mappo_td.schema", "mappo_td.validation", "mappo_td.presets", "mappo_td.skrl_compat", "mappo_td.env_section",
            "mappo_td.train", "mappo_td.agent", "mappo_td.envs", "mappo_td.pettingzoo", "mappo_td.batched_pettingzoo", "mappo_td.trainer",
            "mappo_td.cli")
CORE = ("functional", "objectives", "models", "multiagent.py", "keys.py", "fast.py", "defaults.py", "transforms.py")
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """mappo_td modules imported at run time (``if TYPE_CHECKING:`` blocks left out)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body for n in ast.walk(child)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mappo_td"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mappo_td")}
    return out


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_import_cycle_and_one_way_flow():
    graph = {module_name(p): runtime_imports(p) for p in PKG.rglob("*.py")}
    for mod, deps in graph.items():
        for dep in deps:
            if layer(mod) is None or layer(dep) is None:
                continue  # the package __init__ re-exports everything
            assert layer(dep) <= layer(mod), f"{mod} (layer {layer(mod)}) imports {dep} (layer {layer(dep)}): data flows one way"
            if layer(mod) == layer(dep) == 2:
                assert mod.split(".")[1] == dep.split(".")[1], f"{mod} imports {dep}: models and objectives are siblings"
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            d = d if d in graph else d.rsplit(".", 1)[0]
            assert state.get(d) != 1, f"import cycle: {' -> '.join([*stack, m, d])}"
            if d in graph and d not in state:
                visit(d, [*stack, m])
        state[m] = 2

    for m in graph:
        if m not in state and m != "mappo_td":
            visit(m, [])


def test_every_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert names - {"__init__"} == set(LAYERS), "give each mappo_td module or package a layer in LAYERS (and drop the gone ones)"


def test_no_file_grows_past_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"split these by concern: {long}"


def test_no_function_grows_past_60_lines():
    """Every function and method of mappo_td/, its docstring included, fits on a screen."""
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in sorted(PKG.rglob("*.py")) for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"split these into named steps: {long}"


def test_every_exported_name_resolves():
    import mappo_td

    missing = [name for name in mappo_td.__all__ if getattr(mappo_td, name, None) is None]
    assert not missing and set(mappo_td.__all__) <= set(dir(mappo_td)), f"mappo_td.__all__ names no module holds: {missing}"


def test_tests_and_benchmarks_use_public_names_only():
    bad = []
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("benchmarks").glob("*.py")]:
        tree = ast.parse(path.read_text())
        local = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{path.name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mappo_td"):
                bad += [f"{path.name}:{node.lineno} import {a.name}" for a in node.names if a.name.startswith("_") and a.name not in local]
    assert not bad, f"private names used: {bad}"


def test_every_package_module_has_a_layer():
    """A new top-level module must be placed in LAYERS, or the one-way check above silently skips it."""
    names = {p.relative_to(PKG).parts[0].removesuffix(".py") for p in PKG.glob("*") if p.suffix == ".py" or p.is_dir()}
    assert names - {"__init__", "__pycache__"} <= set(LAYERS), sorted(names - {"__init__", "__pycache__"} - set(LAYERS))


def test_the_core_imports_nothing_of_the_configuration_or_the_trainer():
    code = (f"import sys, mappo_td.objectives, mappo_td.functional, mappo_td.models; "
            f"bad = [m for m in sys.modules if m.startswith({NOT_CORE!r})]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_functional_math_needs_neither_tensordict_nor_torchrl():
    for path in PKG.joinpath("functional").rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        bad = [m for m in names if m.split(".")[0] in ("tensordict", "torchrl")
               or (m.startswith("mappo_td") and not m.startswith(("mappo_td.functional", "mappo_td.defaults")))]
        assert not bad, f"{path.name} imports {bad}"


def test_no_core_function_grows_past_60_lines():
    long = []
    for entry in CORE:
        for path in [PKG / entry] if entry.endswith(".py") else sorted(PKG.joinpath(entry).rglob("*.py")):
            long += [f"{path.relative_to(ROOT)}:{n.name} ({n.end_lineno - n.lineno + 1})" for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.end_lineno - n.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"split these by concern: {long}"
