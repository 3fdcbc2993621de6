#!/usr/bin/env bash
# Fetch Apache Kafka (kafka_2.13) and every jar a KRaft broker needs at run time from
# Maven Central into $KAFKA_HOME/libs (see common.sh). Idempotent: returns at once when
# the libs for the current pom.xml are already there. Safe to run concurrently (flock).
#
# Usage: tools/kafka/fetch.sh            prints the libs directory on stdout
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if libs_complete; then
    echo "$KAFKA_LIBS"
    exit 0
fi

command -v mvn >/dev/null || die "mvn not found (apt-get install -y maven)"
command -v java >/dev/null || die "java not found (Kafka $KAFKA_VERSION needs Java 17+)"

mkdir -p "$KAFKA_HOME"
# Parallel test binaries may all call this on a cold cache: one downloads, the others
# wait for it and then find the stamp.
exec 9>"$KAFKA_HOME/.fetch.lock"
flock -w 900 9 || die "timed out waiting for another fetch.sh"
if libs_complete; then
    echo "$KAFKA_LIBS"
    exit 0
fi

log "fetching kafka_2.13 $KAFKA_VERSION and its runtime dependencies from Maven Central"
start=$(now_ms)
staging="$KAFKA_HOME/libs.tmp.$$"
rm -rf "$staging"
trap 'rm -rf "$staging"' EXIT

mvn_args=(-B --no-transfer-progress -Dstyle.color=never -f "$KAFKA_TOOLS_DIR/pom.xml")
if [[ -n "${DRIFTWARDEN_M2_REPO:-}" ]]; then
    mvn_args+=("-Dmaven.repo.local=$DRIFTWARDEN_M2_REPO")
fi
# includeScope=runtime = compile + runtime scopes: exactly what the broker loads.
# Maven's output goes to a log, shown only when it fails.
mvn "${mvn_args[@]}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$staging" >"$KAFKA_HOME/fetch.log" 2>&1 ||
    { tail -n 40 "$KAFKA_HOME/fetch.log" >&2; die "mvn failed (full log: $KAFKA_HOME/fetch.log)"; }

[[ -f "$staging/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"

rm -rf "$KAFKA_LIBS"
mv "$staging" "$KAFKA_LIBS"
pom_hash >"$KAFKA_STAMP"
log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1)) in $(( $(now_ms) - start )) ms"
echo "$KAFKA_LIBS"
