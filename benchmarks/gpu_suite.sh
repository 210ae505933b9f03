#!/usr/bin/env bash
# The GPU path, measured in one command: gpu-marked tests, W2/W3 (plain / compile / cudagraphs) next to
# BenchMARL and the raw simulator, and the scaling table; a markdown table and a JSON file land in OUT_DIR.
#
# On a GPU machine with no package index, from the project root, with these ignored folders carried along:
#   .whl/ and .whl-peers/   made here by:  bash ../shared/gpu/wheels.sh
#   .peers/                 the peer drivers:  mkdir -p .peers && cp ../shared/peers/*.py .peers/
# run:   bash benchmarks/gpu_suite.sh gpu_out                      (about 9 minutes; --budget-s to change)
# CPU form (CI):   bash benchmarks/gpu_suite.sh OUT_DIR --device cpu --tiny
set -euo pipefail
out=${1:?usage: bash benchmarks/gpu_suite.sh OUT_DIR [--device cpu] [--tiny] [--budget-s S]}
shift
out=$(realpath -m "$out")  # relative to where the command was given
cd "$(dirname "$0")/.."
tmp=${TMPDIR:-/tmp}
python=${PYTHON:-$(command -v python 2>/dev/null || command -v python3)}  # PYTHON: an interpreter to use instead
# The GPU machine: no project stack in the interpreter, the carried wheels (made for its Python 3.12) are used.
# Elsewhere (a venv with mappo_td installed) the wheels are left alone, even if present.
if [ -d .whl ] && ! "$python" -c "import torchrl" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --target "$tmp/site" .whl/*.whl
  export PYTHONPATH="$PWD:$tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  if [ -d .whl-peers ]; then  # BenchMARL with its own torchrl 0.11 stack, in a separate target (never mixed)
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$tmp/peers" .whl-peers/*.whl
    export MAPPO_TD_PEER_PYTHON="$python" MAPPO_TD_PEER_PYTHONPATH="$tmp/peers"
  fi
fi
if [ -d .peers ]; then export MAPPO_TD_PEERS="$PWD/.peers"; fi
cd benchmarks
exec "$python" gpu_suite.py "$out" "$@"
