#!/usr/bin/env bash
# Regenerates the scipy reference vectors under tests/vectors/ with the
# pinned scipy and numpy, installed from PyPI into target/oracle-venv.
# The vectors are committed; the Rust tests only read them.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/oracle-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet -r tools/oracle/requirements.txt
"$venv/bin/python" tools/oracle/ks_vectors.py
"$venv/bin/python" tools/oracle/categorical_vectors.py
git status --short tests/vectors
