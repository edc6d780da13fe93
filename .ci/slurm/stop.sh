#!/usr/bin/env bash
# Stop the daemons started by .ci/slurm/start.sh: each by the PID in its pid file, and only if that PID
# still belongs to the expected program (never by name). --purge also clears SLURM's state and logs.
set -uo pipefail

stop() {  # $1: pid file, $2: program name
  local pidfile=$1 prog=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$prog"* ]]; then
    echo "[ci-slurm] stopping $prog (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "[ci-slurm] $prog (pid $pid) ignored SIGTERM; SIGKILL"
      kill -KILL "$pid"
    fi
  fi
  rm -f "$pidfile"
}

stop /run/slurm/slurmd.pid slurmd
stop /run/slurm/slurmctld.pid slurmctld
stop /run/munge/munged.pid munged
if [[ ${1:-} == --purge ]]; then
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* /var/log/slurm/*
  echo "[ci-slurm] state and logs cleared"
fi
exit 0
