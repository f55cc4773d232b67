#!/usr/bin/env bash
# Create .venv and install optsched with everything it needs (idempotent).
# torch: pinned to the CPU build first (torch==2.13.0); a plain
# `torch` requirement would pull a multi-GB CUDA build. The ray extra lets the tests
# (tests/test_parallel.py) run the parallel path too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# Where the package index serves CUDA wheels (plain PyPI on Linux), set TORCH_INDEX_URL to
# https://download.pytorch.org/whl/cpu to keep the CPU build.
.venv/bin/python -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
.venv/bin/python -m pip install -q -e ".[dev,ray]"   # ray: --workers (optsched.parallel)
