#!/usr/bin/env bash
# Starts a private single-node Slurm on this machine, runs colour transfer on the demo photos as a
# 4-task array through submit.sh, and checks that runs/ and scores/ (and site/, when the binary has
# `emobench report`) are byte-identical to a single-process run. tests/slurm.rs runs it.
#
#   scripts/slurm/ci-local-slurm.sh /path/to/emobench
#
# Needs root (the daemons run as root) and Debian's slurm-wlm and munge, which it installs with
# apt-get when they are missing. Exits 77 when Slurm cannot be had here (not root, no apt-get, the
# install failed), 0 when the outputs match, 1 otherwise. Nothing outside a temporary folder is
# touched: own munge key and socket, own slurm.conf (SLURM_CONF), free ports, no systemd, no cgroups
# (proctrack/linuxproc, task/none), so it also runs in a container. The daemons are stopped and the
# folder is removed on exit (EMOBENCH_SLURM_KEEP=1 keeps the folder).
set -euo pipefail

skip() {
  echo "ci-local-slurm: SKIP: $*" >&2
  exit 77
}
log() { echo "ci-local-slurm: $*" >&2; }

[ $# -eq 1 ] || { echo "usage: $0 /path/to/emobench" >&2; exit 2; }
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$bin" ] || { echo "ci-local-slurm: '$1' is not an executable" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
demo=$root/studies/demo
t0=$SECONDS

have_slurm() {
  command -v munged >/dev/null && command -v slurmctld >/dev/null \
    && command -v slurmd >/dev/null && command -v sbatch >/dev/null
}
if ! have_slurm; then
  [ "$(id -u)" -eq 0 ] || skip "Slurm is not installed and installing it needs root"
  command -v apt-get >/dev/null || skip "Slurm is not installed and there is no apt-get"
  log "installing slurm-wlm and munge with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge >/dev/null) || skip "apt-get install slurm-wlm munge failed"
  have_slurm || skip "slurm-wlm and munge installed, but munged/slurmctld/slurmd/sbatch are not on PATH"
fi
[ "$(id -u)" -eq 0 ] || skip "the private Slurm's daemons run as root and this is uid $(id -u)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/emobench-slurm.XXXXXX")
# munged wants every folder above its socket searchable by all; the key folder stays private.
chmod 755 "$tmp"
mkdir -p "$tmp/munge" "$tmp/sock" "$tmp/state" "$tmp/spool" "$tmp/log"
chmod 700 "$tmp/munge"
chmod 755 "$tmp/sock"
munged_pid=
ctld_pid=
slurmd_pid=
jobs_submitted=()
# Stops a daemon started here (so its id is known): TERM, up to 10 s, then KILL.
stop() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ ${#jobs_submitted[@]} -gt 0 ]; then
    # Cancelled jobs finish while slurmctld and munged still answer; their slurmstepd would
    # otherwise retry for ever.
    scancel "${jobs_submitted[@]}" 2>/dev/null || true
    for _ in $(seq 30); do
      [ -z "$(squeue -h -j "$(IFS=,; echo "${jobs_submitted[*]}")" -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
  # slurmd first: it and its steps need the controller and munged to finish.
  stop "$slurmd_pid"
  stop "$ctld_pid"
  stop "$munged_pid"
  # Anything still holding a file in this folder is a step or job of this cluster.
  local proc f
  for proc in /proc/[0-9]*; do
    [ "${proc#/proc/}" = "$$" ] && continue
    for f in "$proc"/fd/*; do
      case $(readlink "$f" 2>/dev/null) in
        "$tmp"/*) kill -KILL "${proc#/proc/}" 2>/dev/null || true; break ;;
      esac
    done
  done
  if [ "${EMOBENCH_SLURM_KEEP:-}" = 1 ]; then
    log "kept $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p=$1
  while ! port_free "$p" || [ "$p" = "${2:-}" ]; do p=$((p + 1)); done
  echo "$p"
}
ctld_port=$(free_port 16817)
slurmd_port=$(free_port $((ctld_port + 1)) "$ctld_port")
node=emobench-ci

head -c 1024 /dev/urandom >"$tmp/munge/munge.key"
chmod 600 "$tmp/munge/munge.key"
munged -F --key-file="$tmp/munge/munge.key" --socket="$tmp/sock/munge.sock" \
  --pid-file="$tmp/munge/munged.pid" --log-file="$tmp/log/munged.log" \
  --seed-file="$tmp/munge/munged.seed" 2>>"$tmp/log/munged.err" &
munged_pid=$!

export SLURM_CONF=$tmp/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=emobench-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/sock/munge.sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
# No systemd and no cgroups in containers: track processes by parent id, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Finished jobs stay visible to scontrol long enough to read their states.
MinJobAge=3600
NodeName=$node NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

for _ in $(seq 50); do [ -S "$tmp/sock/munge.sock" ] && break; sleep 0.1; done
[ -S "$tmp/sock/munge.sock" ] || { cat "$tmp"/log/munged.* >&2; echo "ci-local-slurm: munged did not start" >&2; exit 1; }
slurmctld -D -c -f "$SLURM_CONF" >>"$tmp/log/slurmctld.out" 2>&1 &
ctld_pid=$!
slurmd -D -N "$node" -f "$SLURM_CONF" >>"$tmp/log/slurmd.out" 2>&1 &
slurmd_pid=$!

dump_logs() {
  for f in "$tmp"/log/* "$tmp"/work/logs/*; do
    [ -f "$f" ] || continue
    echo "==== $f" >&2
    tail -n 30 "$f" >&2
  done
}
state=
for _ in $(seq 120); do
  state=$(sinfo -h -n "$node" -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  dump_logs
  echo "ci-local-slurm: node '$node' not idle after 60 s (state '$state')" >&2
  exit 1
fi
log "single-node Slurm up (ports $ctld_port/$slurmd_port, $(nproc) CPUs) after $((SECONDS - t0)) s"

sources=$demo/sources.csv
references=$demo/references.csv
ids=$("$here/submit.sh" --work "$tmp/work" --sources "$sources" --tasks 4 --emobench "$bin" \
  -- --method ct --references "$references")
read -r edit_id score_id <<<"$ids"
jobs_submitted=("$edit_id" "$score_id")

deadline=$((SECONDS + ${EMOBENCH_SLURM_TIMEOUT:-900}))
while [ -n "$(squeue -h -j "$edit_id,$score_id" -o %i 2>/dev/null)" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    dump_logs
    squeue >&2 || true
    echo "ci-local-slurm: jobs not finished after ${EMOBENCH_SLURM_TIMEOUT:-900} s" >&2
    exit 1
  fi
  sleep 1
done
jobs_submitted=()
# One line per array task plus the scoring job; each must have completed.
states=$({ scontrol show job -o "$edit_id"; scontrol show job -o "$score_id"; } 2>&1 \
  | grep -o 'JobState=[A-Z_]*' || true)
n_done=$(grep -c 'JobState=COMPLETED' <<<"$states" || true)
if [ "$n_done" -ne 5 ]; then
  dump_logs
  echo "ci-local-slurm: expected 4 array tasks and 1 scoring job COMPLETED, got: $(tr '\n' ' ' <<<"$states")" >&2
  exit 1
fi
for i in 0 1 2 3; do
  grep -q "jobs in shard $i/4" "$tmp/work/logs/edit-${edit_id}_$i.out" || {
    dump_logs
    echo "ci-local-slurm: task $i's log does not report shard $i/4" >&2
    exit 1
  }
done
log "Slurm: array $edit_id (4 tasks) and scoring $score_id completed after $((SECONDS - t0)) s"

# The single-process run: the commands the two job scripts run, from a folder of its own, unsharded.
mkdir -p "$tmp/single"
(
  cd "$tmp/single"
  "$bin" edit --sources "$sources" --method ct --references "$references" --out runs
  "$bin" score --sources "$sources" --runs runs --out scores >/dev/null
  if "$bin" report --help >/dev/null 2>&1; then
    "$bin" report --out site --scores scores --runs runs
  fi
) 2>"$tmp/single.err" || { cat "$tmp/single.err" >&2; echo "ci-local-slurm: single-process run failed" >&2; exit 1; }
log "single-process run done after $((SECONDS - t0)) s"

n_png=$(find "$tmp/single/runs/ct" -name '*.png' | wc -l)
n_slurm=$(find "$tmp/work/runs/ct" -name '*.png' | wc -l)
# 8 photos, 4 cross-valence targets each.
if [ "$n_png" -ne 32 ] || [ "$n_slurm" -ne 32 ]; then
  echo "ci-local-slurm: expected 32 edits in each run, got $n_png (single) and $n_slurm (Slurm)" >&2
  exit 1
fi
compared="runs scores"
[ -d "$tmp/single/site" ] && compared="$compared site"
for d in $compared; do
  if ! diff -r "$tmp/single/$d" "$tmp/work/$d" >&2; then
    echo "ci-local-slurm: $d/ of the Slurm run differs from the single-process run" >&2
    exit 1
  fi
done
log "OK: $compared byte-identical between the 4-task Slurm array and one process ($(find "$tmp/single" -type f | wc -l) files; $((SECONDS - t0)) s)"
