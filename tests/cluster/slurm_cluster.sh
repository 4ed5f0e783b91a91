#!/usr/bin/env bash
# A single-node Slurm cluster on localhost for the cluster test (Debian bookworm: Slurm 22.05).
#   tests/cluster/slurm_cluster.sh start STATE_DIR   installs slurm + munge if missing, starts
#                                                    munged, slurmctld and slurmd; exit 3 = cannot
#                                                    install (the caller skips with the reason)
#   tests/cluster/slurm_cluster.sh stop STATE_DIR    stops the daemons started by 'start'
# No accounting daemon: jobs stay visible to squeue for MinJobAge seconds, and the Snakemake
# executor plugin polls with squeue (profile key slurm-status-command). The node advertises one
# GPU as a count-only GRES so rules that ask for a GPU are scheduled (they fall back to CPU).
set -euo pipefail
action=${1:?usage: slurm_cluster.sh start|stop STATE_DIR}
state=${2:?usage: slurm_cluster.sh start|stop STATE_DIR}
mkdir -p "$state"
state=$(cd "$state" && pwd)

stop() {
  for pidfile in "$state"/slurmd.pid "$state"/slurmctld.pid "$state"/munged.pid; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
  done
}

if [ "$action" = stop ]; then
  stop
  for f in slurm.conf gres.conf; do
    if [ "$(readlink "/etc/slurm/$f")" = "$state/$f" ]; then rm -f "/etc/slurm/$f"; fi
  done
  exit 0
fi
[ "$action" = start ] || { echo "unknown action $action" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "cannot install slurm: needs root and apt-get" >&2; exit 3
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null) || { echo "apt-get install slurm munge failed" >&2; exit 3; }
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
rm -rf "$state/spool" "$state/ctld"  # a fresh cluster: no node state (e.g. drained) from a previous start
mkdir -p "$state/spool" "$state/ctld" /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key

cat > "$state/slurm.conf" <<EOF
ClusterName=wsvis-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# Finished jobs stay in squeue for an hour: the executor plugin polls squeue (no slurmdbd).
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
cat > "$state/gres.conf" <<EOF
NodeName=$host Name=gpu File=/dev/null Count=1
EOF
# Job steps (srun inside a batch job) do not see the submitter's SLURM_CONF: the config goes to
# the standard /etc/slurm, unless a real cluster's config is already there.
for f in slurm.conf gres.conf; do
  if [ -e "/etc/slurm/$f" ] && ! grep -q "ClusterName=wsvis-test" "/etc/slurm/slurm.conf" 2>/dev/null; then
    echo "/etc/slurm/$f belongs to another cluster; not replacing it" >&2; exit 3
  fi
done
mkdir -p /etc/slurm
ln -sf "$state/slurm.conf" /etc/slurm/slurm.conf
ln -sf "$state/gres.conf" /etc/slurm/gres.conf
export SLURM_CONF="$state/slurm.conf"

stop
if pgrep -r R,S,D -x slurmctld >/dev/null || pgrep -r R,S,D -x slurmd >/dev/null; then
  echo "a slurmctld or slurmd is already running on this machine; stop it first" >&2; exit 1
fi
# A running munged (e.g. the system's) is reused; else start one. munged refuses to run as
# root with munge-owned directories: run it as its own user.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  cp /run/munge/munged.pid "$state/munged.pid"
fi
# Make sure munged answers before the slurm daemons authenticate.
for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.1; done
munge -n | unmunge >/dev/null || { echo "munged did not start" >&2; exit 3; }
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qx "idle"; then echo "slurm up: $host, $cpus CPUs, $mem_mb MB, conf $SLURM_CONF"; exit 0; fi
  sleep 1
done
echo "slurm node did not become idle; see $state/slurmctld.log and $state/slurmd.log" >&2
sinfo >&2 || true
exit 1
