#!/usr/bin/env bash
# Start a real single-node SLURM cluster for CI (Debian packages: munge, slurmctld, slurmd,
# slurm-client), without systemd. Two partitions over the one node, as on a typical cluster: `cpu` (the
# default) and `gpu`. The node declares fake GPUs (GRES backed by /dev/null, /dev/zero: two, so that a
# tensor-parallel-2 job fits) so that GPU jobs are scheduled as such; nothing can use them. No slurmdbd:
# sacct does not work, so clients must poll with squeue (finished jobs stay visible for MinJobAge seconds).
# Stop it again with .ci/slurm/stop.sh, which kills exactly the PIDs in the pid files.
# Runs as root. Safe to rerun: a daemon that is already up is left alone.
set -euo pipefail

CPU_PARTITION=${SLURM_CI_CPU_PARTITION:-cpu}
GPU_PARTITION=${SLURM_CI_GPU_PARTITION:-gpu}
RUN=/run/slurm                 # pid files of slurmctld and slurmd
MUNGE_RUN=/run/munge
HOST=$(hostname -s)
NCPU=$(nproc)
NGPU=${SLURM_CI_GPUS:-2}
FAKE_DEVICES=(/dev/null /dev/zero /dev/full)   # one distinct file per fake GPU (SLURM wants one each)
((NGPU >= 1 && NGPU <= ${#FAKE_DEVICES[@]})) || { echo "SLURM_CI_GPUS must be 1..${#FAKE_DEVICES[@]}" >&2; exit 1; }
# RealMemory a little below the machine's memory (slurmd refuses a node that claims more than it has).
REAL_MEM=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

say() { echo "[ci-slurm] $*"; }
die() { echo "[ci-slurm] error: $*" >&2; exit 1; }
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }      # $1: pid file
retry() {                                                              # $1: seconds, then a command
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do ((SECONDS < deadline)) || return 1; sleep 0.5; done
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

# -- packages ------------------------------------------------------------------------------------------
need=()
for pkg in munge slurmctld slurmd slurm-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  say "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# -- munge (authentication) ----------------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
[[ -s /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if ! running "$MUNGE_RUN/munged.pid"; then
  say "starting munged"
  su -s /bin/sh munge -c /usr/sbin/munged
fi
retry 15 sh -c 'munge -n | unmunge' || die "munge does not answer"

# -- configuration ---------------------------------------------------------------------------------------
install -d -o slurm -g slurm -m 0755 "$RUN" /var/spool/slurmctld /var/log/slurm
install -d -m 0755 /var/spool/slurmd /etc/slurm
cat >/etc/slurm/slurm.conf <<CONF
# written by bongain .ci/slurm/start.sh: one node, fake GPUs, a CPU and a GPU partition, no accounting
ClusterName=bongainci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# finished jobs stay visible to squeue/scontrol for an hour (squeue polling and the CI checks need it)
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$REAL_MEM Gres=gpu:$NGPU State=UNKNOWN
PartitionName=$CPU_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=$GPU_PARTITION Nodes=ALL Default=NO MaxTime=INFINITE State=UP
CONF
{
  echo "# GPUs without a device: SLURM schedules them, nothing can use them (the jobs run on the CPU)"
  echo "AutoDetect=off"
  for ((i = 0; i < NGPU; i++)); do echo "NodeName=$HOST Name=gpu File=${FAKE_DEVICES[i]}"; done
} >/etc/slurm/gres.conf
chmod 0644 /etc/slurm/slurm.conf /etc/slurm/gres.conf

# -- daemons ---------------------------------------------------------------------------------------------
if ! running "$RUN/slurmctld.pid"; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
fi
retry 30 scontrol ping || { tail -20 /var/log/slurm/slurmctld.log >&2; die "slurmctld does not answer"; }
if ! running "$RUN/slurmd.pid"; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi
node_up() { sinfo -h -n "$HOST" -o %T | grep -qE '^(idle|mixed|allocated)'; }
if ! retry 30 node_up; then
  scontrol update NodeName="$HOST" State=RESUME || true
  retry 30 node_up || { sinfo -N -l >&2; tail -20 /var/log/slurm/slurmd.log >&2; die "node $HOST is not up"; }
fi

# -- smoke test: a CPU job and a GPU job ------------------------------------------------------------------
srun -Q -t 1 -n 1 -p "$CPU_PARTITION" true
srun -Q -t 1 -n 1 -p "$GPU_PARTITION" --gpus=1 true
say "up: partitions=$CPU_PARTITION,$GPU_PARTITION node=$HOST cpus=$NCPU RealMemory=${REAL_MEM}M gres=gpu:$NGPU"
say "pids: munged $(cat $MUNGE_RUN/munged.pid) slurmctld $(cat $RUN/slurmctld.pid) slurmd $(cat $RUN/slurmd.pid)"
