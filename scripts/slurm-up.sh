#!/usr/bin/env bash
# Bring up a one-node Slurm cluster on this machine, for CI (as root): Debian's slurm-wlm
# (slurmctld, slurmd) and munge, no accounting database, every job on this node.
#
#   bash scripts/slurm-up.sh          # installs the packages if needed, starts the daemons
#   bash scripts/slurm-up.sh down     # stops them
#
# The grader's Slurm executor does not need sacct (it follows tasks with squeue and their
# result files), so slurmdbd is left out. What a real course cluster needs instead is in
# docs/SLURM.md.
set -euo pipefail
STATE=/var/spool/slurm-grader
NODE=$(hostname -s)

stop() {
    for daemon in slurmd slurmctld munged; do
        if [ -f "$STATE/$daemon.pid" ]; then
            kill "$(cat "$STATE/$daemon.pid")" 2>/dev/null || true
            rm -f "$STATE/$daemon.pid"
        fi
    done
}

if [ "${1:-up}" = down ]; then
    stop
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "slurm-up: run as root" >&2; exit 1; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi
stop
mkdir -p "$STATE/ctld" "$STATE/d" /run/munge /var/log/munge /etc/slurm
[ -s /etc/munge/munge.key ] || { mungekey --create 2>/dev/null ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
chown -R munge:munge /etc/munge /run/munge /var/log/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
munged --force --pid-file="$STATE/munged.pid"

MEMORY=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=grader-ci
SlurmctldHost=$NODE
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=30
NodeName=$NODE CPUs=$(nproc) RealMemory=$MEMORY State=UNKNOWN
PartitionName=grading Nodes=ALL Default=YES MaxTime=INFINITE OverSubscribe=YES State=UP
EOF
slurmctld -i
slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        sinfo
        exit 0
    fi
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "slurm-up: the node did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
exit 1
