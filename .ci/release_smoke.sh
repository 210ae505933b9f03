#!/usr/bin/env bash
# Release smoke test: build the wheel and sdist, check them as a package index would, install the wheel into a
# fresh venv and run the installed `mappo-td` from outside the tree. Run from the repository root, CI's venv active.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
step() { echo "release smoke [$((SECONDS - START))s]: $*"; }

step "build and twine"
pip install -q "build>=1" "twine>=6.1"  # the release extra's pins (tests/test_release.py)
# From a clean copy: setuptools reads an existing mappo_td.egg-info/SOURCES.txt (pip install -e . writes one) into the sdist,
# which would hide a file MANIFEST.in leaves out. The copy leaves out what .gitignore does.
mkdir "$TMP/src"
tar -c --exclude=.git --exclude=.venv --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache \
    --exclude=./build --exclude=./dist --exclude=./runs --exclude=./.whl --exclude=./.whl-peers --exclude=./.peers --exclude=./gpu_out . \
    | tar -x -C "$TMP/src"
python -m build --outdir "$TMP/dist" "$TMP/src" > "$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
WHEEL=$(ls "$TMP"/dist/mappo_td-*.whl)
SDIST=$(ls "$TMP"/dist/mappo_td-*.tar.gz)
VERSION=$(python -c "import mappo_td; print(mappo_td.__version__)")  # the tree's (cwd first on sys.path; imports no torch)
[[ "$WHEEL" == *"mappo_td-$VERSION-py3-none-any.whl" && "$SDIST" == *"mappo_td-$VERSION.tar.gz" ]] \
    || { echo "built $WHEEL, $SDIST; expected version $VERSION"; exit 1; }

step "twine check --strict (the README renders on the index)"
twine check --strict "$WHEEL" "$SDIST"

step "contents: the sdist's files, the wheel's modules and license"
python - "$WHEEL" "$SDIST" "$VERSION" <<'PY'
import sys, tarfile, zipfile
from pathlib import Path

wheel, sdist, version = sys.argv[1:]
source = sorted(str(p) for p in Path("mappo_td").rglob("*.py") if "__pycache__" not in p.parts)
in_sdist = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
missing = [f for f in ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "mappo_td/py.typed", "docs/conf.py", "docs/index.md",
                        "tests/test_docs.py", "examples/custom_loop.py", "benchmarks/RESULTS.md", ".ci/run", *source] if f not in in_sdist]
assert not missing, f"the sdist lacks {missing}"
in_wheel = zipfile.ZipFile(wheel).namelist()
modules = sorted(n for n in in_wheel if n.startswith("mappo_td/") and n.endswith(".py"))
assert modules == source, f"wheel and tree differ: only in the tree {sorted(set(source) - set(modules))}, only in the wheel {sorted(set(modules) - set(source))}"
assert "mappo_td/py.typed" in in_wheel, "the wheel lacks mappo_td/py.typed"
assert f"mappo_td-{version}.dist-info/licenses/LICENSE" in in_wheel, f"the wheel lacks its LICENSE: {[n for n in in_wheel if 'dist-info' in n]}"
print(f"sdist: {len(in_sdist)} files; wheel: {len(modules)} modules (as in the tree), py.typed, LICENSE")
PY

step "install the wheel into a fresh venv"
python -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q torch==2.13.0  # first: a newer torch would pull CUDA builds
"$TMP/venv/bin/pip" install -q "$WHEEL"
mkdir "$TMP/work"
cd "$TMP/work"  # outside the tree: only the installed package can be imported
MAPPO_TD="$TMP/venv/bin/mappo-td"

step "mappo-td --version"
OUT=$("$MAPPO_TD" --version)
[[ "$OUT" == "mappo-td $VERSION" ]] || { echo "mappo-td --version printed '$OUT', expected 'mappo-td $VERSION'"; exit 1; }
"$TMP/venv/bin/python" -c "import mappo_td; assert mappo_td.__version__ == '$VERSION', mappo_td.__version__"

step "the installed package is the wheel's, not the tree"
"$TMP/venv/bin/python" -c "import mappo_td, mappo_td.agent; assert '$TMP/venv' in mappo_td.__file__, mappo_td.__file__"

step "mappo-td --help"
"$MAPPO_TD" --help > /dev/null

TINY=(--timesteps 32 --num-envs 4 --max-steps 8 --device cpu --no-progress --directory runs)
step "mappo-td train (32 timesteps)"
"$MAPPO_TD" train "${TINY[@]}" --rollouts 8 --hidden-sizes 16 --experiment-name smoke
ls runs/smoke/checkpoints/*.pt > /dev/null

step "mappo-td eval"
OUT=$("$MAPPO_TD" eval runs/smoke/checkpoints --episodes 1)
echo "$OUT"
[[ "$OUT" == *"mean return "* ]] || { echo "mappo-td eval printed no mean return"; exit 1; }

step "mappo-td train --preset mappo-paper (32 timesteps)"
"$MAPPO_TD" train --preset mappo-paper "${TINY[@]}" --rollouts 8 --data-chunk-length 8 --rnn-hidden-size 16 --rnn-encoder 16 \
    --learning-epochs 2 --experiment-name smoke_paper
ls runs/smoke_paper/checkpoints/*.pt > /dev/null

step "passed in $((SECONDS - START))s"
