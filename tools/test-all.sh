#!/usr/bin/env bash
# The whole test suite, as the README gives it and as CI runs it:
# formatting, lints, then every test (unit, property, scipy reference
# vectors, integration tests against a real Kafka broker, a real SMTP
# server and real HTTP receivers). Installs what the tests need by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== rustfmt"
cargo fmt --all -- --check

echo "== clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== Kafka 4.4.0 (KRaft, 127.0.0.1)"
# start.sh fetches Kafka from Maven Central on a cold cache, formats a
# single-node cluster on free ports and waits until it serves.
# The assignment stands alone so that `set -e` stops on a failed start
# (`eval ""` would succeed).
kafka_dir="${TMPDIR:-/tmp}/driftwarden-ci-kafka-$$"
kafka_env="$(tools/kafka/start.sh --dir "$kafka_dir" --watch-pid $$)"
eval "$kafka_env"
trap 'tools/kafka/stop.sh --dir "$kafka_dir" || true' EXIT
export DRIFTWARDEN_TEST_KAFKA="$KAFKA_BOOTSTRAP"

echo "== Chromium (headless browser for tests/dashboard_browser.rs)"
# The dashboard test loads the page in Debian's Chromium and reads the DOM;
# install it once if the machine lacks it (the test fails without it).
command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

echo "== Prometheus (scrapes /metrics in tests/metrics_prometheus.rs)"
command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

echo "== OpenTelemetry Collector (receives OTLP in tests/otlp_collector.rs)"
# Built once with the Collector Builder and cached under ~/.cache; later
# runs reuse the binary.
DRIFTWARDEN_TEST_OTELCOL="$(tools/otelcol/build.sh)"
export DRIFTWARDEN_TEST_OTELCOL

echo "== tests (release: the calibration and stream tests push millions of events)"
cargo test --release --locked --all-targets
# Doc tests are not part of --all-targets.
cargo test --release --locked --doc
