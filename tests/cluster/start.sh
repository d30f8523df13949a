#!/usr/bin/env bash
# Start a single-node SLURM for tests: munged, MariaDB, slurmdbd, slurmctld and slurmd, as root.
#   tests/cluster/start.sh STATE_DIR
# Every file (configs, sockets, databases, logs, pid files) goes under STATE_DIR, which must be
# new or empty. Use a short path, because unix socket paths are limited to about 100 characters.
# Nothing listens beyond this machine: MariaDB has no TCP port (--skip-networking), slurmctld
# and slurmd bind 127.0.0.1, and slurmdbd 22.05, which has no option for it, listens on every
# address. Afterwards, point the SLURM commands at the cluster with
#   export SLURM_CONF=STATE_DIR/slurm.conf
# and stop it with tests/cluster/stop.sh STATE_DIR. Jobs' own srun calls read the SLURM default
# /etc/slurm/slurm.conf, which becomes a link to STATE_DIR/slurm.conf until stop.sh removes it.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 STATE_DIR" >&2
    exit 2
fi
state=$(realpath -m "$1")
if [ -e "$state" ] && [ -n "$(ls -A "$state")" ]; then
    echo "start.sh: $state is not empty; stop the cluster there (stop.sh) and remove it first" >&2
    exit 1
fi
mkdir -p "$state"/{log,slurmctld,slurmd,mysql}

# Wait up to $1 seconds for the command in the remaining arguments to succeed.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    echo "start.sh: timed out after ${seconds} s waiting for: $*; see the logs in $state/log" >&2
    return 1
}

# munge on its default socket, because sacctmgr 22.05 was seen to ignore AuthInfo=socket=...
# and connect to this one. So only one such cluster can run per machine.
munge_socket=/run/munge/munge.socket.2
if [ -S "$munge_socket" ] && munge -n --socket="$munge_socket" >/dev/null 2>&1; then
    echo "start.sh: a munged already serves $munge_socket; stop it (or that cluster) first" >&2
    exit 1
fi
mkdir -p "$(dirname "$munge_socket")"
mungekey --create --keyfile="$state/munge.key" --force
chmod 600 "$state/munge.key"
# --force: munged refuses to run as root without it.
munged --force --key-file="$state/munge.key" --socket="$munge_socket" \
    --pid-file="$state/munged.pid" --log-file="$state/log/munged.log" --seed-file="$state/munge.seed"
wait_for 10 munge -n --socket="$munge_socket"

# MariaDB on a unix socket only; --no-defaults ignores the system's /etc/mysql settings.
mariadb-install-db --no-defaults --user=root --datadir="$state/mysql" \
    --auth-root-authentication-method=socket --skip-test-db >"$state/log/mariadb-install.log" 2>&1
nohup mariadbd --no-defaults --user=root --datadir="$state/mysql" --socket="$state/mysql.sock" \
    --pid-file="$state/mariadb.pid" --skip-networking --innodb-buffer-pool-size=64M \
    --log-error="$state/log/mariadb.log" >/dev/null 2>&1 &
wait_for 30 mariadb-admin --no-defaults --socket="$state/mysql.sock" ping

node=$(slurmd -C | head -n 1 | sed -E 's/^NodeName=[^ ]+/NodeName=localhost/')

cat >"$state/slurm.conf" <<CONF
ClusterName=readclip
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Bind slurmctld and slurmd to 127.0.0.1 rather than every address.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that names no memory takes the whole node and jobs run one at a time.
DefMemPerCPU=1000
ReturnToService=2
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# Keep each job's --comment (Snakemake writes the rule name there) for sacct -o Comment.
AccountingStoreFlags=job_comment
# One placeholder GPU so that --gpus=1 jobs are scheduled; it is /dev/null, not a device.
GresTypes=gpu
$node Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$state/gres.conf" <<CONF
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
CONF

cat >"$state/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$state/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
CONF
# slurmdbd refuses a config file that others can read (it may hold the database password).
chmod 600 "$state/slurmdbd.conf"

# SLURM finds slurmdbd.conf and gres.conf beside the file SLURM_CONF names.
export SLURM_CONF=$state/slurm.conf
# Snakemake's job step (snakemake-executor-plugin-slurm-jobstep 0.6.1) removes SLURM_CONF before
# it calls srun inside a job, so srun reads the default path: link it to this cluster's file.
# A regular file there belongs to a real installation and is left alone. A link is taken as
# left over from an earlier test cluster, because no munged was running.
system_conf=/etc/slurm/slurm.conf
if [ -e "$system_conf" ] && [ ! -L "$system_conf" ]; then
    echo "start.sh: $system_conf exists and is not a link from an earlier test cluster;" \
        "this script does not replace a real SLURM configuration" >&2
    exit 1
fi
mkdir -p "$(dirname "$system_conf")"
ln -sfn "$SLURM_CONF" "$system_conf"
# The MariaDB client library connects to "localhost" through this socket.
MYSQL_UNIX_PORT=$state/mysql.sock slurmdbd
wait_for 30 sacctmgr -n list cluster
# -c: start with no saved jobs or nodes.
slurmctld -c
slurmd -N localhost
wait_for 60 bash -c '[ "$(sinfo -h -N -o %t)" = idle ]'
# Snakemake's SLURM plugin checks the account against this list before submitting.
wait_for 30 bash -c 'sacctmgr -n -s list user root format=account%30 | grep -qw root'
echo "start.sh: SLURM is up; export SLURM_CONF=$state/slurm.conf"
