#!/usr/bin/env bash
# Stop the daemons that start.sh started under STATE_DIR, newest first, and wait for each.
#   tests/cluster/stop.sh STATE_DIR
# Safe to run more than once and after a start that failed halfway: a daemon without a pid
# file, or whose process is gone, is skipped. STATE_DIR itself is left for its logs.
set -uo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
state=$(realpath -m "$1")

# A zombie (state Z: exited, but its parent has not reaped it) counts as stopped, because
# kill -0 still finds it.
is_running() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

stop_daemon() {
    local name=$1 pidfile=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if [ -z "$pid" ] || ! is_running "$pid"; then
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 30); do
        is_running "$pid" || { echo "stop.sh: stopped $name ($pid)"; return 0; }
        sleep 1
    done
    echo "stop.sh: $name ($pid) still running 30 s after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null
}

stop_daemon slurmd "$state/slurmd.pid"
stop_daemon slurmctld "$state/slurmctld.pid"
stop_daemon slurmdbd "$state/slurmdbd.pid"
stop_daemon mariadbd "$state/mariadb.pid"
stop_daemon munged "$state/munged.pid"

# The link that start.sh made from SLURM's default configuration path, if it points here.
system_conf=/etc/slurm/slurm.conf
if [ -L "$system_conf" ] && [ "$(readlink "$system_conf")" = "$state/slurm.conf" ]; then
    rm -f "$system_conf"
fi
