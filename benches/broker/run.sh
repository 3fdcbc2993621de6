#!/usr/bin/env bash
# Events per second through a real broker: the benchmark workload produced
# to a topic of a local Kafka 4.4.0 (tools/kafka), consumed by one
# `driftwarden run` pinned to one core. Not part of CI; run by hand:
#
#   benches/broker/run.sh [EVENTS]      (PERF=1 also records a perf profile)
#
# Prints the rate over the whole topic and over the part after the first
# full windows (the calibration of the thresholds runs once, at the first
# full window, and is excluded there), wall clock and the service's CPU
# time, then the rate of `driftwarden replay` over the same file on the same
# core and the ratio of the two. Starts and stops its own broker under
# target/.
set -euo pipefail
cd "$(dirname "$0")/../.."
events="${1:-200000}"
target="${CARGO_TARGET_DIR:-target}"
work="$(realpath -m "$target/bench-data/broker")"
rm -rf "$work" && mkdir -p "$work"

cargo build --release --locked --quiet --bin driftwarden --example workload --example produce >&2
"$target/release/examples/workload" "$work" "$events" >/dev/null

kafka_dir="$work/kafka"
kafka_env="$(tools/kafka/start.sh --dir "$kafka_dir" --watch-pid $$)"
eval "$kafka_env"
service_pid=""
cleanup() {
    [[ -n "$service_pid" ]] && kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null
    tools/kafka/stop.sh --dir "$kafka_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

topic="bench-$$"
produce_start=$(date +%s.%N)
"$target/release/examples/produce" "$KAFKA_BOOTSTRAP" "$topic" "$work/events.jsonl" >/dev/null
produce_end=$(date +%s.%N)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/driftwarden.toml" <<TOML
[service]
http_listen = "127.0.0.1:$port"
log_level = "warn"

[kafka]
bootstrap_servers = "$KAFKA_BOOTSTRAP"
group_id = "$topic"
prediction_topics = ["$topic"]

[checkpoint]
dir = "$work/state"

[[models]]
name = "bench"
baseline = "$work/baseline.json"
TOML

taskset -c 0 "$target/release/driftwarden" run --config "$work/driftwarden.toml" \
    >"$work/service.log" 2>&1 &
service_pid=$!

# Applied events and the service's CPU seconds (utime + stime).
applied() {
    curl -sf "http://127.0.0.1:$port/api/v1/models/bench" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])' 2>/dev/null || echo 0
}
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$service_pid/stat"; }

# PERF=1: profile the service over the measured part (perf report -i).
perf_pid=""
warm=$(( events / 10 ))
start="" start_cpu="" start_events=""
first="" first_cpu=""
deadline=$(( $(date +%s) + 600 ))
while :; do
    n=$(applied)
    now=$(date +%s.%N)
    if [[ -z "$first" && "$n" -gt 0 ]]; then first=$now first_cpu=$(cpu); fi
    if [[ -z "$start" && "$n" -ge "$warm" ]]; then
        start=$now start_cpu=$(cpu) start_events=$n
        if [[ "${PERF:-0}" == 1 ]]; then
            perf record -o "$work/perf.data" -p "$service_pid" >/dev/null 2>&1 &
            perf_pid=$!
        fi
    fi
    if [[ "$n" -ge "$events" ]]; then break; fi
    if (( $(date +%s) > deadline )); then echo "timed out at $n events" >&2; exit 1; fi
    sleep 0.05
done
end=$now end_cpu=$(cpu)
if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid" && wait "$perf_pid" || true
    echo "profile: $work/perf.data" >&2
fi

# The same events through `driftwarden replay` on the same core, in the same
# run: what the monitor and decoding alone manage here, calibration included
# as in the whole-topic rate above, so the ratio shows what consuming from
# the broker costs.
kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true
service_pid=""
replay_start=$(date +%s.%N)
taskset -c 0 "$target/release/driftwarden" replay --config "$work/driftwarden.toml" \
    --timeline-only "$work/events.jsonl" >"$work/replay.log" 2>&1
replay_end=$(date +%s.%N)

python3 - "$events" "$first" "$first_cpu" "$start" "$start_cpu" "$start_events" "$end" "$end_cpu" \
    "$produce_start" "$produce_end" "$replay_start" "$replay_end" <<'PY'
import sys
(events, first, first_cpu, start, start_cpu, start_events, end, end_cpu, p0, p1,
 r0, r1) = map(float, sys.argv[1:])
whole = events / (end - first)
steady = (events - start_events) / (end - start)
cpu_steady = (end_cpu - start_cpu) / (events - start_events)
print(f"produced {events:,.0f} events in {p1 - p0:.1f} s")
print(f"consumed + monitored, whole topic:           {whole:>10,.0f} events/s (wall, calibration included)")
print(f"consumed + monitored, after {start_events:,.0f} events: {steady:>10,.0f} events/s (wall)")
print(f"service CPU time after that:                {cpu_steady * 1e6:>10.2f} us/event "
      f"({1 / cpu_steady:,.0f} events per CPU second)")
replay = events / (r1 - r0)
print(f"driftwarden replay of the same file, same core: {replay:>7,.0f} events/s (wall, calibration and start-up included)")
print(f"broker whole topic / replay:                {whole / replay:>10.2f}")
PY
