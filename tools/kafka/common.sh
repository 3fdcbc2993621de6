# shellcheck shell=bash disable=SC2034  # the variables are used by the scripts that source this
# Shared settings for tools/kafka/*.sh. Sourced, not executed.
#
# Environment (all optional):
#   DRIFTWARDEN_CACHE      cache root (default: $HOME/.cache/driftwarden)
#   DRIFTWARDEN_KAFKA_DIR  state dir of the broker that start.sh/stop.sh manage when
#                          --dir is not given (default: /tmp/driftwarden-kafka-$UID)
#   DRIFTWARDEN_M2_REPO    Maven local repository for fetch.sh (default: Maven's own, ~/.m2)

KAFKA_VERSION=4.4.0
KAFKA_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_HOME="${DRIFTWARDEN_CACHE:-$HOME/.cache/driftwarden}/kafka-$KAFKA_VERSION"
KAFKA_LIBS="$KAFKA_HOME/libs"
# fetch.sh writes this stamp last; it holds the hash of pom.xml, so editing the pom
# (another version, another jar) makes the next fetch.sh download again.
KAFKA_STAMP="$KAFKA_HOME/libs.complete"
KAFKA_DEFAULT_DIR="${DRIFTWARDEN_KAFKA_DIR:-${TMPDIR:-/tmp}/driftwarden-kafka-$(id -u)}"
# A file in every state dir that start.sh made. stop.sh deletes a dir only if it holds
# this marker, so a mistyped --dir can never remove anything else.
KAFKA_MARKER=".driftwarden-kafka"

log() { printf '[kafka] %s\n' "$*" >&2; }
die() { printf '[kafka] error: %s\n' "$*" >&2; exit 1; }

pom_hash() { sha256sum "$KAFKA_TOOLS_DIR/pom.xml" | cut -d' ' -f1; }

libs_complete() {
    [[ -f "$KAFKA_STAMP" && "$(cat "$KAFKA_STAMP")" == "$(pom_hash)" ]]
}

# True if PID is alive and is the broker of state dir DIR (guards against a reused pid).
is_broker_pid() {
    local pid="$1" dir="$2"
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "kafka.Kafka $dir/server.properties"
}

# True if PID exists and has not exited (a zombie has exited: its ports are closed).
pid_alive() {
    local stat
    [[ -n "$1" ]] && stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

now_ms() { date +%s%3N; }
