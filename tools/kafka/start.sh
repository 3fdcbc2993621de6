#!/usr/bin/env bash
# Start a single-node Apache Kafka KRaft cluster (broker and controller in one JVM) on
# 127.0.0.1 for tests, in the background, and wait until it serves clients.
#
# Usage: tools/kafka/start.sh [--dir DIR] [--watch-pid PID]
#   --dir DIR        state dir: config, data, logs, pid files. Default: /tmp/driftwarden-kafka-$UID
#                    (or $DRIFTWARDEN_KAFKA_DIR). One broker per dir:
#                    - DIR holds a running broker: print its address and exit 0 (no second broker);
#                    - DIR holds a stopped one (stop.sh --keep): restart it on the same ports with
#                      the same data (topics, messages, committed offsets survive);
#                    - otherwise: a new broker on free ports.
#   --watch-pid PID  when process PID exits, stop the broker and delete DIR (tests pass their own
#                    pid, so that a crashed or killed test run leaves no broker behind).
#
# Prints one line on stdout, KAFKA_BOOTSTRAP=127.0.0.1:PORT (also in DIR/bootstrap), so
#   eval "$(tools/kafka/start.sh)"   sets $KAFKA_BOOTSTRAP. Progress goes to stderr.
# Environment: DRIFTWARDEN_KAFKA_HEAP (max heap, default 512m),
#              DRIFTWARDEN_KAFKA_JVM_OPTS (extra JVM options, appended),
#              DRIFTWARDEN_KAFKA_READY_TIMEOUT (seconds, default 90).
# Files in DIR: server.properties, data/, broker.log (Kafka's log), broker.out (JVM stdout/stderr),
#               broker.pid, bootstrap, watchdog.pid.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

dir="$KAFKA_DEFAULT_DIR"
watch_pid=""
while (($#)); do
    case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --watch-pid) watch_pid="${2:?--watch-pid needs a value}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
# One spelling per dir (absolute, no trailing slash): is_broker_pid matches the command line.
dir="$(realpath -m -- "$dir")"
heap="${DRIFTWARDEN_KAFKA_HEAP:-512m}"
ready_timeout="${DRIFTWARDEN_KAFKA_READY_TIMEOUT:-90}"

libs="$(bash "$KAFKA_TOOLS_DIR/fetch.sh")"

if [[ -d "$dir" && ! -e "$dir/$KAFKA_MARKER" && -n "$(ls -A "$dir")" ]]; then
    die "$dir is not empty and was not made by start.sh; refusing to use it (stop.sh deletes its dir)"
fi
mkdir -p "$dir"
touch "$dir/$KAFKA_MARKER"
# One start.sh/stop.sh at a time per dir. Every background child gets `9>&-` so that it
# does not inherit (and hold forever) this lock.
exec 9>"$dir/.lock"
flock -w 300 9 || die "timed out waiting for another start.sh/stop.sh on $dir"

jvm_opts=(
    -Xms64m "-Xmx$heap"
    # A test broker on a 2-core machine: serial GC has the least overhead in threads and memory.
    -XX:+UseSerialGC
    # C1 only: the broker is ready in about half the time (3 s instead of 6 s with cargo
    # building beside it) and uses less CPU; its peak throughput is lower, which tests do
    # not notice. DRIFTWARDEN_KAFKA_JVM_OPTS=-XX:TieredStopAtLevel=4 undoes it.
    -XX:TieredStopAtLevel=1
    -XX:+ExitOnOutOfMemoryError
    -XX:-UsePerfData            # no /tmp/hsperfdata_* files
    -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$KAFKA_TOOLS_DIR/log4j2.properties"
    "-Dkafka.logs.dir=$dir"
)
# Extra JVM options, last so that they override the ones above (word-split on spaces).
# shellcheck disable=SC2206
jvm_opts+=(${DRIFTWARDEN_KAFKA_JVM_OPTS:-})

# Kafka's Uuid is 16 bytes in URL-safe base64 without padding (22 chars). One that starts
# with '-' would be read as an option by the format command, so draw again.
new_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$id" != -* ]] && { echo "$id"; return; }
    done
}

# A port nothing listens on, below Linux's ephemeral range (32768+) so that outgoing
# connections do not take it between now and the broker's bind. Races with other
# processes are still possible: a failed bind is retried with new ports.
pick_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        [[ "$p" != "${1:-}" ]] && ! port_open "$p" && { echo "$p"; return; }
    done
}

write_config() {
    local port="$1" cport="$2"
    cat >"$dir/server.properties" <<EOF
# Written by tools/kafka/start.sh: single-node KRaft test broker for driftwarden.
process.roles=broker,controller
node.id=1
# Static single-voter quorum: no dynamic-quorum bootstrap needed, the plain format works.
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data

# One broker: every internal topic with replication factor 1 (the defaults of 3 would
# leave consumer groups, transactions and share groups unavailable), and one partition
# each so that the first consumer group does not wait for 50 __consumer_offsets partitions.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
default.replication.factor=1
min.insync.replicas=1
num.partitions=1
auto.create.topics.enable=true

# Tests: no 3 s wait before the first rebalance, and allow short consumer session
# timeouts (a test that kills a consumer should not wait 45 s).
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
# After a crash (stop.sh --keep --kill) the restarted broker cannot register until the
# session of its previous incarnation expires (DUPLICATE_BROKER_REGISTRATION): 9 s by
# default. 3 s keeps a restart quick without fencing a busy broker by mistake.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500

# Small: few threads, small log-cleaner buffer (compaction stays on: driftwarden's
# checkpoint topic is compacted).
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
EOF
}

listener_port() { # NAME -> port from DIR/server.properties
    sed -n "s|^listeners=.*$1://127\.0\.0\.1:\([0-9]*\).*|\1|p" "$dir/server.properties"
}

# Start the JVM, wait until it serves. Returns 0 ready, 1 the JVM exited, 2 timed out.
launch_and_wait() {
    local port="$1" t0 pid
    t0=$(now_ms)
    # The ready check reads broker.log, so it must hold only this run's lines.
    [[ -f "$dir/broker.log" ]] && mv -f "$dir/broker.log" "$dir/broker.log.prev"
    # setsid: own session, so signals meant for the caller's terminal or process group do not
    # reach the broker; stop.sh or the watchdog stop it.
    setsid java "${jvm_opts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >"$dir/broker.out" 2>&1 9>&- &
    pid=$!
    launched="$pid"
    echo "$pid" >"$dir/broker.pid"
    while :; do
        # pid_alive, not is_broker_pid: right after the fork the child is still bash
        # (not yet exec'd into java), so its command line does not match yet.
        if ! pid_alive "$pid"; then
            return 1
        fi
        # "Kafka Server started" is logged by KafkaRaftServer after the broker has caught up
        # with the metadata log and been unfenced, i.e. when it can serve produce/fetch.
        if grep -q 'Kafka Server started' "$dir/broker.log" 2>/dev/null && port_open "$port"; then
            log "broker pid $pid ready on 127.0.0.1:$port in $(( $(now_ms) - t0 )) ms (log: $dir/broker.log)"
            return 0
        fi
        if (( $(now_ms) - t0 > ready_timeout * 1000 )); then
            return 2
        fi
        sleep 0.1
    done
}

show_failure() {
    log "broker did not start; last lines of $dir/broker.log and broker.out:"
    tail -n 25 "$dir/broker.log" >&2 2>/dev/null || true
    tail -n 25 "$dir/broker.out" >&2 2>/dev/null || true
}

kill_broker() {
    local pid
    # broker.pid holds either a pid checked with is_broker_pid or one this run started
    # (maybe not yet exec'd into java), so pid_alive is enough here.
    pid="$(cat "$dir/broker.pid" 2>/dev/null || true)"
    if pid_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        while pid_alive "$pid"; do sleep 0.05; done
    fi
    rm -f "$dir/broker.pid"
}

start_watchdog() {
    [[ -n "$watch_pid" ]] || return 0
    kill -0 "$watch_pid" 2>/dev/null || die "--watch-pid $watch_pid is not running"
    local wd
    wd="$(cat "$dir/watchdog.pid" 2>/dev/null || true)"
    if [[ -n "$wd" ]] && tr '\0' ' ' <"/proc/$wd/cmdline" 2>/dev/null | grep -q driftwarden-kafka-watchdog; then
        return 0 # a restart: the first start's watchdog still watches
    fi
    # $0 of the inline script is "driftwarden-kafka-watchdog": that name is how stop.sh and
    # this function recognise it. It polls once a second (cheap) and then execs stop.sh.
    # shellcheck disable=SC2016  # $1.. are the inline script's own arguments
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec bash "$3" --dir "$2"' \
        driftwarden-kafka-watchdog "$watch_pid" "$dir" "$KAFKA_TOOLS_DIR/stop.sh" \
        </dev/null >/dev/null 2>&1 9>&- &
    echo $! >"$dir/watchdog.pid"
}

ready() {
    echo "127.0.0.1:$1" >"$dir/bootstrap"
    echo "KAFKA_BOOTSTRAP=127.0.0.1:$1"
    launched="" # handed over: from now on stop.sh or the watchdog stop it
    exit 0
}

# A broker this run launched but did not hand over (its address was not printed) is
# killed when the script fails or is interrupted: nobody else knows about it. The
# signal traps make bash run the EXIT trap; SIGPIPE comes when the caller went away
# and a log line meets a closed stderr.
launched=""
# shellcheck disable=SC2317  # called by the EXIT trap
on_exit() {
    if [[ -n "$launched" ]]; then
        kill_broker
    fi
}
trap on_exit EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# Before anything is launched, so that a caller killed while waiting for the start
# leaves no broker behind either.
start_watchdog

# 1. Already running in this dir: the same broker again.
pid="$(cat "$dir/broker.pid" 2>/dev/null || true)"
if is_broker_pid "$pid" "$dir"; then
    port="$(listener_port PLAINTEXT)"
    if port_open "$port"; then
        log "already running: pid $pid on 127.0.0.1:$port ($dir)"
        ready "$port"
    fi
    log "pid $pid in $dir does not answer on $port; killing it and starting again"
    kill_broker
fi

# 2. Stopped with `stop.sh --keep`: restart on the same ports and data.
if [[ -f "$dir/server.properties" && -f "$dir/data/meta.properties" ]]; then
    port="$(listener_port PLAINTEXT)"
    log "restarting the broker of $dir on 127.0.0.1:$port"
    rc=0; launch_and_wait "$port" || rc=$?
    if ((rc == 0)); then ready "$port"; fi
    show_failure; kill_broker
    die "restart failed (rc $rc); if another process took port $port, stop.sh --dir $dir and start anew"
fi

# 3. A new broker: format the storage, then start; on a port clash, again with new ports.
log "starting Kafka $KAFKA_VERSION in $dir"
for attempt in 1 2 3; do
    port="$(pick_port)"
    cport="$(pick_port "$port")"
    write_config "$port" "$cport"
    if [[ ! -f "$dir/data/meta.properties" ]]; then
        # kafka-storage.sh format: writes meta.properties and the bootstrap metadata
        # checkpoint (metadata.version and feature levels) into the empty log dir.
        java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData \
            "-Dlog4j2.configurationFile=$KAFKA_TOOLS_DIR/log4j2.properties" \
            "-Dkafka.logs.dir=$dir" -Dkafka.log.name=format-kafka.log \
            -cp "$libs/*" kafka.tools.StorageTool format \
            -t "$(new_cluster_id)" -c "$dir/server.properties" >"$dir/format.log" 2>&1 9>&- ||
            { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
    fi
    rc=0; launch_and_wait "$port" || rc=$?
    if ((rc == 0)); then ready "$port"; fi
    if ((rc == 1)) && grep -q -i 'address already in use' "$dir/broker.log" "$dir/broker.out" 2>/dev/null; then
        log "port $port or $cport was taken meanwhile (attempt $attempt); trying other ports"
        kill_broker
        continue
    fi
    show_failure; kill_broker
    die "broker failed to start (rc $rc: 1 = JVM exited, 2 = not ready after ${ready_timeout}s)"
done
die "no free ports after 3 attempts"
