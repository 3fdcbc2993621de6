#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the telemetry tests export to, with the
# OpenTelemetry Collector Builder and the manifest beside this script, and
# caches the binary outside the clone so that later runs on the same machine
# reuse it. Prints the binary's path on stdout (progress goes to stderr).
#
#   tools/otelcol/build.sh            # build unless cached, print the path
#
# The cache key is the builder release plus a hash of the manifest, so a
# changed manifest builds a new binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
builder_version="v0.161.0"
manifest="$here/builder.yaml"
key="$(sha256sum "$manifest" | cut -c1-12)"
cache="${DRIFTWARDEN_CACHE:-$HOME/.cache/driftwarden}"
out="$cache/otelcol-${builder_version#v}-$key"
bin="$out/otelcol-driftwarden"

if [[ -x "$bin" ]]; then
    echo "$bin"
    exit 0
fi

# The official Go distribution installs to /usr/local/go; a non-login shell
# may not have it on PATH.
[[ -x /usr/local/go/bin/go ]] && PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build.sh: Go toolchain not found (needed to build the collector)" >&2; exit 1; }
gobin="$cache/go-bin"
mkdir -p "$gobin" "$out"
builder="$gobin/builder-$builder_version"
if [[ ! -x "$builder" ]]; then
    echo "== installing the OpenTelemetry Collector Builder $builder_version" >&2
    GOBIN="$gobin" go install "go.opentelemetry.io/collector/cmd/builder@$builder_version" >&2
    mv "$gobin/builder" "$builder"
fi

echo "== building the collector into $out (first run only: a few minutes)" >&2
start=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work" "$work.yaml"' EXIT
# The builder writes the generated sources and the binary to one directory;
# build in a scratch directory and move the binary into the cache only once
# it exists, so that an interrupted build is never taken for a cached one.
# The manifest leaves dist.output_path to this script.
sed "s|^  # output_path: set by build.sh.*|  output_path: $work|" "$manifest" >"$work.yaml"
"$builder" --config "$work.yaml" >&2
mv "$work/otelcol-driftwarden" "$bin.partial"
mv "$bin.partial" "$bin"
echo "== collector built in $((SECONDS - start)) s" >&2
echo "$bin"
