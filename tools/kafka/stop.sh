#!/usr/bin/env bash
# Stop a broker started by tools/kafka/start.sh.
#
# Usage: tools/kafka/stop.sh [--dir DIR] [--keep] [--kill]
#   --dir DIR  the state dir given to start.sh (default: /tmp/driftwarden-kafka-$UID or
#              $DRIFTWARDEN_KAFKA_DIR).
#   (neither)  kill the broker at once (SIGKILL: its data is deleted anyway), stop its
#              watchdog, delete DIR.
#   --keep     stop it cleanly (SIGTERM: controlled shutdown, up to 30 s) and keep DIR:
#              `start.sh --dir DIR` then restarts the same broker, same port and data.
#   --keep --kill  SIGKILL and keep DIR: a crash; the restart recovers the logs.
# Idempotent: a DIR with no running broker, or no DIR at all, is fine.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

dir="$KAFKA_DEFAULT_DIR"
keep=false
hard=false
while (($#)); do
    case "$1" in
        --dir) dir="${2:?--dir needs a value}"; shift 2 ;;
        --keep) keep=true; shift ;;
        --kill) hard=true; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
# One spelling per dir (absolute, no trailing slash): is_broker_pid matches the command line.
dir="$(realpath -m -- "$dir")"
$keep || hard=true

[[ -d "$dir" ]] || { log "no broker dir $dir: nothing to stop"; exit 0; }
[[ -e "$dir/$KAFKA_MARKER" ]] || die "$dir was not made by start.sh; not touching it"
exec 9>"$dir/.lock"
flock -w 300 9 || die "timed out waiting for another start.sh/stop.sh on $dir"

pid="$(cat "$dir/broker.pid" 2>/dev/null || true)"
if is_broker_pid "$pid" "$dir"; then
    t0=$(now_ms)
    if $hard; then
        kill -KILL "$pid" 2>/dev/null || true
    else
        kill -TERM "$pid" 2>/dev/null || true
    fi
    # Not our child, so no `wait`. is_broker_pid is false for a zombie too (empty cmdline):
    # the process has exited and its ports are closed even if nobody has reaped it yet.
    while is_broker_pid "$pid" "$dir"; do
        if (( $(now_ms) - t0 > 30000 )); then
            log "pid $pid still running 30 s after SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.05
    done
    log "stopped broker pid $pid ($($hard && echo SIGKILL || echo SIGTERM), $(( $(now_ms) - t0 )) ms)"
fi
rm -f "$dir/broker.pid"

if $keep; then
    exit 0
fi

wd="$(cat "$dir/watchdog.pid" 2>/dev/null || true)"
# The watchdog itself ends by exec'ing this script: then $$ is its pid.
if [[ -n "$wd" && "$wd" != "$$" ]] &&
    tr '\0' ' ' <"/proc/$wd/cmdline" 2>/dev/null | grep -q driftwarden-kafka-watchdog; then
    kill "$wd" 2>/dev/null || true
fi
rm -rf "$dir"
log "removed $dir"
