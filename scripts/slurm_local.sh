#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the queue tests and for
# trying the plugin's queue submission (issue 14). Debian/Ubuntu packages
# slurm-wlm + munge (installed with apt-get when missing and we are root).
#
# Usage: bash scripts/slurm_local.sh start|stop|status|hosts|dir [--no-install]
#   start   install if needed, start munged, slurmctld and slurmd, wait until
#           the node is idle, write the Scipion hosts.conf; prints
#           "slurm_local: ready ..." (exit 0) or one line saying why not (exit 1).
#   stop    stop the daemons this script started (by their pid files).
#   status  sinfo of the cluster (exit 1 when it is not running).
#   hosts   (re)write only the hosts.conf.
#   dir     print the state folder.
#
# Everything lives in $CRYOTIGER_SLURM_STATE (default /tmp/cryotiger-slurm-<8
# hex digits of the checkout path>; print it with 'dir'):
#   slurm.conf, gres.conf    this host: CPUs and RealMemory from slurmd -C
#   hosts.conf               Scipion hosts.conf with "cpu" and "gpu" queues
#   env.sh                   export SLURM_CONF=... (source it to use sinfo/sbatch)
#   jobcomp.log              SLURM's record of every finished job (jobcomp/filetxt)
#   *.log, *.pid, spool/, state/
# Nothing in /etc is changed except what the munge package set up (its key).
# SLURM commands find this cluster through SLURM_CONF (hosts.conf sets it on
# each sbatch/squeue/scancel command line).
#
# Variables: CRYOTIGER_SLURM_STATE, CRYOTIGER_SLURM_CPUS (CPUs declared for the
# node; default: the machine's, at least 8), CRYOTIGER_SLURM_GPUS (fake GPUs declared as a
# "gpu" GRES, default 2, 0: none), CRYOTIGER_SLURM_PORT (slurmctld port, default
# 6900-7898 from the checkout path; slurmd uses PORT+1).
# The fake GPUs are plain files (SLURM only needs a path per device): a job that
# asks --gres=gpu:N gets CUDA_VISIBLE_DEVICES set by SLURM exactly as on a GPU
# node, which is what the tests check; nothing runs on them.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# One cluster per checkout (state folder and ports from the checkout's path), so
# that test runs of two checkouts on one machine do not stop each other's cluster.
_KEY="$(printf %s "$ROOT" | sha1sum | cut -c1-8)"
STATE="${CRYOTIGER_SLURM_STATE:-/tmp/cryotiger-slurm-$_KEY}"
PORT="${CRYOTIGER_SLURM_PORT:-$((6900 + 2 * (16#$_KEY % 500)))}"
NGPU="${CRYOTIGER_SLURM_GPUS:-2}"
ACTION="${1:-status}"
INSTALL=1
[[ "${2:-}" == "--no-install" ]] && INSTALL=0

say() { echo "slurm_local: $*"; }
fail() { echo "slurm_local: $*" >&2; exit 1; }
export SLURM_CONF="$STATE/slurm.conf"

install_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null && return 0
  [[ $INSTALL == 1 ]] || fail "SLURM is not installed (slurmctld/slurmd/munged/sbatch); install slurm-wlm and munge"
  [[ $(id -u) == 0 ]] || fail "SLURM is not installed and we are not root; run 'apt-get install slurm-wlm munge' as root"
  command -v apt-get >/dev/null || fail "SLURM is not installed and there is no apt-get; install slurm-wlm and munge"
  say "installing slurm-wlm and munge (apt-get)"
  if ! DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y \
      --no-install-recommends slurm-wlm munge >"$STATE/apt.log" 2>&1; then
    DEBIAN_FRONTEND=noninteractive timeout 120 apt-get -o DPkg::Lock::Timeout=120 update >>"$STATE/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=120 install -y \
      --no-install-recommends slurm-wlm munge >>"$STATE/apt.log" 2>&1 \
      || fail "apt-get install slurm-wlm munge failed (see $STATE/apt.log)"
  fi
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  munge_ok && return 0
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --force >/dev/null 2>&1
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null; chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
  if id munge >/dev/null 2>&1 && command -v runuser >/dev/null; then
    runuser -u munge -- munged >"$STATE/munged.out" 2>&1
  else
    munged --force >"$STATE/munged.out" 2>&1
  fi
  for _ in $(seq 20); do munge_ok && { touch "$STATE/munged.started-by-us"; return 0; }; sleep 0.5; done
  fail "munged did not start (see $STATE/munged.out, /var/log/munge/munged.log)"
}

write_config() {
  local host cpus mem
  host="$(hostname -s)"
  cpus="${CRYOTIGER_SLURM_CPUS:-$(slurmd -C 2>/dev/null | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')}"
  cpus="${cpus:-$(nproc)}"
  # At least 8 (SlurmdParameters=config_overrides lets the node declare more
  # than it has): a protocol job of 2-4 threads and its per-step jobs must fit
  # on a 2-core CI machine; they then share the cores.
  [[ -z "${CRYOTIGER_SLURM_CPUS:-}" && "$cpus" -lt 8 ]] && cpus=8
  mem="$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
  mem="${mem:-1024}"
  mkdir -p "$STATE/spool" "$STATE/state" "$STATE/dev"
  local gres="" gresTypes=""
  : >"$STATE/gres.conf"
  if [[ "$NGPU" -gt 0 ]]; then
    # SLURM wants a character device per GPU: links to /dev/null stand in for them.
    for ((i = 0; i < NGPU; i++)); do ln -sfn /dev/null "$STATE/dev/gpu$i"; done
    gres="Gres=gpu:$NGPU"
    gresTypes="GresTypes=gpu"
    echo "NodeName=$host Name=gpu File=$STATE/dev/gpu[0-$((NGPU - 1))]" >"$STATE/gres.conf"
  fi
  cat >"$STATE/slurm.conf" <<EOF
# Written by scipion-em-cryotiger scripts/slurm_local.sh: a single-node cluster on $host.
ClusterName=cryotiger
SlurmctldHost=$host
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
MinJobAge=30
SchedulerParameters=sched_interval=2
$gresTypes
NodeName=$host CPUs=$cpus RealMemory=$mem $gres State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
  echo "export SLURM_CONF=$STATE/slurm.conf" >"$STATE/env.sh"
  echo "$cpus $mem"
}

write_hosts() {
  # Scipion hosts.conf: %_(NAME)s are Scipion's variables, %% a literal %.
  # GPU_COUNT is the number of ids in the protocol's GPU list (the cpu queue sets
  # it to 0); Scipion renumbers the ids 0..N-1 for queue jobs, which are the
  # indices SLURM's CUDA_VISIBLE_DEVICES refers to on the node.
  # JOB_DONE_REGEX must not be empty: pyworkflow searches it in the squeue
  # output, and an empty pattern matches anything (every job "done" at once).
  local sc="SLURM_CONF=$STATE/slurm.conf"
  cat >"$STATE/hosts.conf" <<EOF
[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d --map-by node %_(COMMAND)s
NAME = SLURM
MANDATORY = False
SUBMIT_PREFIX = scipion
SUBMIT_COMMAND = $sc sbatch %_(JOB_SCRIPT)s
CANCEL_COMMAND = $sc scancel %_(JOB_ID)s
CHECK_COMMAND = $sc squeue -h -j %_(JOB_ID)s -o %%T 2>/dev/null
JOB_DONE_REGEX = ^(COMPLETED|COMPLETING|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE)
QUEUES = {
    "cpu": [["JOB_MEMORY", "2048", "Memory (MB)", "Memory per job"],
            ["JOB_TIME", "1", "Time (hours)", "Wall-time limit"],
            ["GPU_COUNT", "0", "GPUs per job", "The cpu queue asks for no GPU"],
            ["QUEUE_FOR_JOBS", "N", "Use queue for jobs", "Y: one job per engine run (per tilt series); N: one job for the whole protocol"]],
    "gpu": [["JOB_MEMORY", "4096", "Memory (MB)", "Memory per job"],
            ["JOB_TIME", "1", "Time (hours)", "Wall-time limit"],
            ["QUEUE_FOR_JOBS", "N", "Use queue for jobs", "Y: one job per engine run (per tilt series); N: one job for the whole protocol"]]
    }
QUEUES_DEFAULT = {"GPU_COUNT": "0"}
SUBMIT_TEMPLATE = #!/bin/bash
    #SBATCH --job-name=%_(JOB_NAME)s
    #SBATCH --output=%_(JOB_LOGS)s.out
    #SBATCH --error=%_(JOB_LOGS)s.err
    #SBATCH --partition=%_(JOB_QUEUE)s
    #SBATCH --ntasks=%_(JOB_NODES)d
    #SBATCH --cpus-per-task=%_(JOB_THREADS)d
    #SBATCH --mem=%_(JOB_MEMORY)s
    #SBATCH --time=%_(JOB_TIME)s:00:00
    #SBATCH --gres=gpu:%_(GPU_COUNT)s
    echo "SLURM job \$SLURM_JOB_ID on \$SLURMD_NODENAME, partition \$SLURM_JOB_PARTITION, CUDA_VISIBLE_DEVICES=\$CUDA_VISIBLE_DEVICES"
    %_(JOB_COMMAND)s
EOF
  if [[ -n "${HOSTS_OUT:-}" ]]; then mkdir -p "$(dirname "$HOSTS_OUT")"; cp "$STATE/hosts.conf" "$HOSTS_OUT"; fi
}

pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { timeout 5 sinfo -h -N -o %t 2>/dev/null | head -1; }

start() {
  mkdir -p "$STATE"
  install_packages
  start_munge
  if pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid" && [[ "$(node_state)" =~ ^(idle|mix|alloc) ]]; then
    write_hosts
    say "ready (already running): SLURM_CONF=$STATE/slurm.conf, hosts.conf $STATE/hosts.conf"
    return 0
  fi
  stop_slurm
  local res; res="$(write_config)"
  write_hosts
  slurmctld -f "$STATE/slurm.conf" >"$STATE/slurmctld.out" 2>&1 \
    || fail "slurmctld did not start: $(tail -1 "$STATE/slurmctld.log" 2>/dev/null || cat "$STATE/slurmctld.out")"
  slurmd -f "$STATE/slurm.conf" >"$STATE/slurmd.out" 2>&1 \
    || fail "slurmd did not start: $(tail -1 "$STATE/slurmd.log" 2>/dev/null || cat "$STATE/slurmd.out")"
  local st="" deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    pid_alive "$STATE/slurmctld.pid" || { stop_slurm >/dev/null 2>&1;
      fail "slurmctld stopped: $(grep -E 'fatal|error' "$STATE/slurmctld.log" | tail -1)"; }
    st="$(node_state)"
    [[ "$st" == idle* ]] && break
    [[ "$st" == down* || "$st" == drain* ]] && scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1
    sleep 0.5
  done
  if [[ "$st" != idle* ]]; then
    stop_slurm >/dev/null 2>&1
    fail "the node did not become idle in 60 s (state '$st'; see $STATE/slurmctld.log, $STATE/slurmd.log)"
  fi
  say "ready: node $(hostname -s) CPUs=${res% *} RealMemory=${res#* }MB GPUs(fake)=$NGPU, partitions cpu gpu; SLURM_CONF=$STATE/slurm.conf, hosts.conf $STATE/hosts.conf"
}

stop_slurm() {
  local p
  for d in slurmd slurmctld; do
    p="$STATE/$d.pid"
    if pid_alive "$p"; then
      kill "$(cat "$p")" 2>/dev/null
      for _ in $(seq 20); do pid_alive "$p" || break; sleep 0.25; done
      pid_alive "$p" && kill -9 "$(cat "$p")" 2>/dev/null
    fi
    rm -f "$p"
  done
}

stop() {
  local p
  stop_slurm
  # munged is shared by every cluster on the machine: stop it only when we
  # started it and no other slurmctld still runs.
  if [[ -f "$STATE/munged.started-by-us" ]] && ! ps -C slurmctld -o stat= 2>/dev/null | grep -qv '^Z'; then
    p=/run/munge/munged.pid
    [[ -s $p ]] && kill "$(cat $p)" 2>/dev/null
    rm -f "$STATE/munged.started-by-us"
  fi
  say "stopped"
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  hosts) mkdir -p "$STATE"; write_hosts; say "hosts.conf $STATE/hosts.conf" ;;
  dir) echo "$STATE" ;;
  status) pid_alive "$STATE/slurmctld.pid" || fail "not running"; sinfo ;;
  *) fail "unknown action '$ACTION' (start|stop|status|hosts)" ;;
esac
