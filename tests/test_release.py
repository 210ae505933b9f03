"""The release's metadata, without building: one version (``mappo_td.__version__``) that pyproject.toml, CHANGELOG.md
and ``mappo-td --version`` agree on; what a package index shows; CI runs the release smoke test (``.ci/release_smoke.sh``)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import mappo_td
from mappo_td.cli import build_parser, main

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SMOKE = ROOT / ".ci" / "release_smoke.sh"
REPO = "https://github.com/mappo-td/mappo_td"


def test_the_version_is_written_once_in_the_package():
    assert re.fullmatch(r"\d+\.\d+\.\d+", mappo_td.__version__), mappo_td.__version__
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "mappo_td.__version__"}
    written = [str(p.relative_to(ROOT)) for p in [ROOT / "pyproject.toml", *(ROOT / "mappo_td").rglob("*.py")]
               if re.search(r"""(version|__version__)\s*=\s*["']\d""", p.read_text())]
    assert written == ["mappo_td/__init__.py"], f"a version literal outside mappo_td/__init__.py: {written}"


def test_the_changelog_s_newest_release_is_the_version():
    text = (ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d{2}-\d{2})$", text, flags=re.M)
    assert releases and releases[0][0] == mappo_td.__version__, f"CHANGELOG.md's newest release {releases[:1]}, package {mappo_td.__version__}"
    assert f"[{mappo_td.__version__}]: {REPO}/releases/tag/v{mappo_td.__version__}" in text
    assert "## Versioning" in text and "semantic versioning" in text


def test_version_flag_prints_the_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"mappo-td {mappo_td.__version__}\n"


def test_version_flag_does_not_load_torch():
    code = ("import sys; from mappo_td.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out == f"mappo-td {mappo_td.__version__}\n0 False\n"


def test_the_index_page_metadata():
    assert PROJECT["name"] == "mappo-td" and PROJECT["readme"] == "README.md" and PROJECT["requires-python"] == ">=3.10"
    assert PROJECT["license"] == "MIT" and PROJECT["license-files"] == ["LICENSE"]
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n") and "Copyright (c) 2026 the mappo_td developers" in license_text
    assert PROJECT["authors"] == [{"name": "the mappo_td developers"}] and PROJECT["keywords"]
    assert set(PROJECT["classifiers"]) >= {
        "Development Status :: 3 - Alpha", "Intended Audience :: Science/Research", "Operating System :: POSIX",
        "Topic :: Scientific/Engineering :: Artificial Intelligence", "Typing :: Typed"}
    assert "Operating System :: OS Independent" not in PROJECT["classifiers"]  # mappo_td.train.run_folder locks with fcntl
    pythons = sorted(c.rsplit(" ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert pythons == ["3.10", "3.11", "3.12"] and PROJECT["requires-python"] == f">={pythons[0]}"
    assert PROJECT["urls"] == {"Homepage": REPO, "Repository": REPO, "Documentation": f"{REPO}/tree/main/docs",
                               "Changelog": f"{REPO}/blob/main/CHANGELOG.md", "Issues": f"{REPO}/issues"}


def test_typed_package_ships_its_marker():
    assert (ROOT / "mappo_td" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["mappo_td"]


def test_license_expression_needs_a_setuptools_that_reads_it():
    (requirement,) = PYPROJECT["build-system"]["requires"]
    major = int(re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requirement).group(1))
    assert major >= 77, f"{requirement}: license = 'MIT' (an SPDX expression) and license-files need setuptools >= 77"


def test_ci_runs_the_release_smoke_test_after_the_tests():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index("bash .ci/release_smoke.sh") == ci.index("python -m pytest -q") + 1
    script = SMOKE.read_text()
    assert script.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in script


def test_the_smoke_test_s_commands_parse():
    """Every ``"$MAPPO_TD" ...`` line of the smoke script (with its ``${TINY[@]}`` flags) is a valid ``mappo-td`` command."""
    script = SMOKE.read_text().replace("\\\n", " ")
    tiny = shlex.split(re.search(r"^TINY=\((.*)\)$", script, flags=re.M).group(1))
    commands = [shlex.split(m) for m in re.findall(r'^(?:OUT=\$\()?"\$MAPPO_TD" ([^\n)>]*)', script, flags=re.M)]
    assert len(commands) >= 5, commands
    for args in commands:
        args = [a for arg in args for a in (tiny if arg == "${TINY[@]}" else [arg])]
        if args in (["--version"], ["--help"]):
            continue
        ns = build_parser().parse_args(args)
        assert ns.command in ("train", "eval"), args


def test_the_smoke_test_installs_the_release_extra_s_tools():
    (line,) = [line for line in SMOKE.read_text().splitlines() if line.startswith("pip install") and "twine" in line]
    assert shlex.split(line, comments=True)[3:] == PROJECT["optional-dependencies"]["release"]
