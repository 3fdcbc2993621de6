#!/usr/bin/env bash
# driftwarden side by side with scipy's ks_2samp and river's KSWIN on one
# stream, in one run; prints a markdown table. Not part of CI (minutes).
#
#   benches/compare/run.sh [EVENTS]
#
# Sets up its own Python (a venv under target/ with the pinned versions of
# requirements.txt), builds driftwarden and the workload in release mode,
# writes the stream to target/bench-data/compare/ and runs compare.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-200000}"
target="${CARGO_TARGET_DIR:-target}"
venv="$target/compare-venv"
data="$target/bench-data/compare"

if [[ ! -x "$venv/bin/python" ]] || ! cmp -s benches/compare/requirements.txt "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet -r benches/compare/requirements.txt >&2
    cp benches/compare/requirements.txt "$venv/requirements.txt"
fi

cargo build --release --locked --quiet --bin driftwarden --example workload >&2
mkdir -p "$data"
"$target/release/examples/workload" "$data" "$events" > "$data.meta.json"
mv "$data.meta.json" "$data/meta.json"

# numpy's OpenBLAS settings tuned for old processors slow it down; scipy's
# KS does not use BLAS, but keep the comparison on the library's defaults.
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
    "$venv/bin/python" benches/compare/compare.py \
    --data "$data" --binary "$target/release/driftwarden"
