#!/usr/bin/env bash
# npm run e2e:slurm — the Slurm recipe of docs/clusters.md on a real one-node Slurm cluster.
#
# Needs root and Debian's packages (installs slurm-wlm and munge with apt-get when missing; prints
# "skipped" and exits 0 when not root or apt-get is unavailable). Then:
#  - starts munged, slurmctld and slurmd on this machine (slurm.conf generated in a temp dir: this
#    host's name, nproc CPUs; state, logs and the munge key in the temp dir; free ports);
#  - submits the job file from docs/clusters.md (the block after <!-- recipe: slurm-job -->, which
#    test/unit/shard-index.test.ts keeps identical to examples/spp-extract.sbatch) with
#    sbatch --array=1-N --wait, from a work folder holding images/ (the 500 labelled photos plus one
#    truncated JPEG, a recorded failure: exit 2) and model/ (keras mobilenet v1 0.75) under relative
#    names; every task uses the recipe's one shared model cache (.spp-cache in the submit folder);
#  - a crash: kill -9s the node process of task 1 mid-run, then `scontrol requeue`s it; the
#    requeued task must --resume its own shard (its log says "resuming feats-1.npy: R of …", R > 0);
#  - preemption: `scontrol requeue`s another task while it runs (Slurm sends SIGTERM: the tool writes what
#    is done and exits 130); the requeued task must resume its shard too;
#  - runs the merge line of docs/clusters.md, runs one uninterrupted spp-extract over the same inputs, and
#    compares: .npy and manifest byte-identical;
#  - prints one summary line; stops exactly the daemons it started (by pid), also on failure.
# Environment: E2E_TASKS (N, default 4), E2E_KEEP=1 keeps the temp dir, SPP_SHARED_DIR / E2E_IMAGES /
# E2E_MODEL for the inputs.
set -euo pipefail
E2E_NAME=e2e:slurm
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

N=${E2E_TASKS:-4}
KILL_TASK=1     # kill -9 of its process (a crash: nothing written), then scontrol requeue
# and another task is requeued while it runs (preemption: SIGTERM, what is done is written)
KILL_AT_ROWS=${E2E_KILL_AT_ROWS:-15}
[[ $N =~ ^[0-9]+$ ]] && [ "$N" -ge 2 ] || die "E2E_TASKS must be a number ≥ 2 (one task is killed, another preempted), got '$N'"

[ "$(uname -s)" = Linux ] || skip "needs Linux"
need_root "slurmd runs jobs as root here, and it may apt-get install slurm-wlm and munge"
ensure_commands munged:munge mungekey:munge slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client scontrol:slurm-client squeue:slurm-client
check_inputs
build

T=$(mktemp -d /tmp/spp-e2e-slurm.XXXXXX)
chmod 755 "$T" # munged wants every folder above its socket searchable by all
mkdir -p "$T/munge" "$T/munge-run" "$T/state" "$T/spool" "$T/log" "$T/work" "$T/single"
chmod 700 "$T/munge"
chmod 755 "$T/munge-run"
DAEMONS=()      # "name:pid", in start order
JOB=""
SBATCH_PID=""
OK=0

cleanup() {
  local rc=$?
  set +e
  trap - ERR
  if [ -n "$JOB" ] && [ "$OK" -eq 0 ]; then
    scancel "$JOB" 2>/dev/null
    local i
    for i in $(seq 30); do [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && break; sleep 1; done
  fi
  # sbatch --wait (in its own process group, made by timeout) must not outlive the controller.
  if [ -n "${SBATCH_PID:-}" ] && kill -0 "$SBATCH_PID" 2>/dev/null; then kill -TERM -- "-$SBATCH_PID" 2>/dev/null; fi
  local k entry name pid
  for ((k = ${#DAEMONS[@]} - 1; k >= 0; k--)); do
    entry=${DAEMONS[$k]}; name=${entry%%:*}; pid=${entry#*:}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then say "$name (pid $pid) ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null; fi
    wait "$pid" 2>/dev/null
  done
  if [ "$OK" -eq 1 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
    rm -rf "$T"
  else
    say "logs and outputs kept in $T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

start_daemon() { # name command...
  local name=$1; shift
  "$@" >"$T/log/$name.out" 2>&1 &
  DAEMONS+=("$name:$!")
}

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

# --- the cluster ------------------------------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
mungekey --create --keyfile="$T/munge/munge.key" >/dev/null 2>&1 || { head -c 1024 /dev/urandom > "$T/munge/munge.key"; }
chmod 400 "$T/munge/munge.key"
SOCKET="$T/munge-run/munge.socket"
start_daemon munged munged --foreground --key-file="$T/munge/munge.key" --socket="$SOCKET" \
  --pid-file="$T/munge-run/munged.pid" --log-file="$T/log/munged.log" --seed-file="$T/munge/munge.seed"
for _ in $(seq 100); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || die "munged did not start: $(tail -3 "$T/log/munged.out")"

CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
cat > "$T/slurm.conf" <<EOF
# one-node cluster for scripts/e2e/slurm.sh
ClusterName=sppe2e
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET,cred_expire=10
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=e2e Nodes=$HOST Default=YES MaxTime=60 State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
start_daemon slurmctld slurmctld -D -f "$SLURM_CONF"
start_daemon slurmd slurmd -D -f "$SLURM_CONF"
for _ in $(seq 120); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -o %T 2>/dev/null)" = idle ] || die "the node did not come up: $(sinfo 2>&1 | tail -2); see $T/log"
say "cluster up: $HOST, $CPUS CPUs, slurmctld :$CTLD_PORT, slurmd :$SLURMD_PORT (daemons ${DAEMONS[*]})"

# --- the recipe -------------------------------------------------------------------------------
tool_on_path "$T"
make_workdir "$T/work"
make_workdir "$T/single"
PHOTOS=$(photo_count "$T/work")
readme_block slurm-job > "$T/work/spp-extract.sbatch"
[ -s "$T/work/spp-extract.sbatch" ] || die "docs/clusters.md has no <!-- recipe: slurm-job --> block"
cmp -s "$T/work/spp-extract.sbatch" "$REPO/examples/spp-extract.sbatch" ||
  die "the job file in docs/clusters.md and examples/spp-extract.sbatch differ"
MERGE=$(readme_block slurm-submit | grep '^spp-extract merge ')
[ -n "$MERGE" ] || die "docs/clusters.md's <!-- recipe: slurm-submit --> block has no 'spp-extract merge' line"

cd "$T/work"
export IMAGES=images MODEL=model
t0=$(now)
timeout 900 sbatch --wait --parsable --array="1-$N" --time=20 spp-extract.sbatch > "$T/sbatch.out" 2> "$T/sbatch.err" &
SBATCH_PID=$!
for _ in $(seq 300); do JOB=$(head -1 "$T/sbatch.out" 2>/dev/null | cut -d';' -f1); [ -n "$JOB" ] && break; sleep 0.1; done
[ -n "$JOB" ] || die "sbatch printed no job id: $(cat "$T/sbatch.err")"
say "submitted array job $JOB (--array=1-$N), waiting to kill task $KILL_TASK at $KILL_AT_ROWS rows"

KILLED_AT=$(kill_mid_run "$T/work" "$KILL_TASK" "$KILL_AT_ROWS" 300 " $T/bin/spp-extract " "^SLURM_ARRAY_JOB_ID=$JOB\$" "^SLURM_ARRAY_TASK_ID=$KILL_TASK\$") || true
[ -n "$KILLED_AT" ] || die "task $KILL_TASK finished (or never started) before it could be killed; lower E2E_KILL_AT_ROWS"
say "killed task $KILL_TASK (kill -9) with $KILLED_AT rows journalled"
# Preempt another task the way Slurm does: requeue it while it runs (SIGTERM, then SIGKILL after
# KillWait). The first other task found running with MIN_ROWS journalled.
PREEMPT_TASK=""
PREEMPTED_AT=""
for _ in $(seq 1500); do
  for k in $(seq "$N"); do
    [ "$k" -eq "$KILL_TASK" ] && continue
    rows=$(rows_in "$T/work/.feats-$k.manifest.jsonl.partial")
    [ "${rows:-0}" -ge "$KILL_AT_ROWS" ] || continue
    state=$(scontrol -o show job "${JOB}_$k" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    [ "$state" = RUNNING ] || continue
    scontrol requeue "${JOB}_$k" || die "scontrol requeue ${JOB}_$k (running) failed"
    PREEMPT_TASK=$k
    PREEMPTED_AT=$rows
    break 2
  done
  [ -n "$(squeue -h -j "$JOB" -t PENDING,RUNNING,CONFIGURING 2>/dev/null)" ] || break
  sleep 0.05
done
[ -n "$PREEMPT_TASK" ] || die "every other task ended before one could be preempted"
say "preempted task $PREEMPT_TASK (scontrol requeue while running) with $PREEMPTED_AT rows journalled"
STATE=""
for _ in $(seq 300); do
  STATE=$(scontrol -o show job "${JOB}_$KILL_TASK" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  case "$STATE" in RUNNING | COMPLETING | CONFIGURING | "") sleep 0.1 ;; *) break ;; esac
done
say "task $KILL_TASK ended $STATE; scontrol requeue ${JOB}_$KILL_TASK"
scontrol requeue "${JOB}_$KILL_TASK" || die "scontrol requeue ${JOB}_$KILL_TASK failed"
tq=$(now)

wait "$SBATCH_PID" && SBATCH_RC=0 || SBATCH_RC=$?
t1=$(now)
[ "$SBATCH_RC" -ne 124 ] || die "the array did not finish within 900 s"
# Every task must have ended COMPLETED with exit 0 (the killed one after its requeue).
STATES=$(scontrol -o show job "$JOB" | sed -E 's/.*ArrayTaskId=([0-9]+).*JobState=([A-Z_]+).* Restarts=([0-9]+).*ExitCode=([0-9:]+).*/\1 \2 restarts=\3 exit=\4/' | sort -n)
say "tasks: $(echo "$STATES" | tr '\n' ',' | sed 's/,$//')"
BAD=$(echo "$STATES" | grep -v ' COMPLETED restarts=[0-9]* exit=0:0$' || true)
[ -z "$BAD" ] || die "tasks not COMPLETED with exit 0: $BAD (logs: $T/work/spp-extract-${JOB}_*.log)"
echo "$STATES" | grep -q "^$KILL_TASK COMPLETED restarts=[1-9]" || die "task $KILL_TASK was not requeued"
[ "$SBATCH_RC" -eq 0 ] || die "sbatch --wait exited $SBATCH_RC though every task COMPLETED"
# The array's wall time: submit to the last task's end as Slurm records it (sbatch --wait itself
# polls every few seconds); Slurm holds a requeued task back for a while before it starts again.
epoch_of() { scontrol -o show job "$1" | grep -o " $2=[0-9T:-]*" | cut -d= -f2 | while read -r t; do date -d "$t" +%s; done; }
t1=$(epoch_of "$JOB" EndTime | sort -n | tail -1)
RESTART=$(epoch_of "${JOB}_$KILL_TASK" StartTime)
HELD=$(secs "$tq" "$RESTART")
LOG="$T/work/spp-extract-${JOB}_$KILL_TASK.log"
RESUMED=$(grep -o "resuming feats-$KILL_TASK.npy: [0-9]* of [0-9]*" "$LOG" || true)
[ -n "$RESUMED" ] || die "the requeued task did not resume its shard: $(tail -5 "$LOG")"
[ "$(echo "$RESUMED" | awk '{print $3}')" -gt 0 ] || die "the requeued task started over: $RESUMED"
LOG2="$T/work/spp-extract-${JOB}_$PREEMPT_TASK.log"
echo "$STATES" | grep -q "^$PREEMPT_TASK COMPLETED restarts=[1-9]" || die "task $PREEMPT_TASK was not requeued"
if grep -q "SIGTERM: stopping after the current image" "$LOG2"; then
  grep -q "interrupted (finish with --resume)" "$LOG2" || die "task $PREEMPT_TASK: SIGTERM but no 'interrupted' summary: $(cat "$LOG2")"
  RESUMED2=$(grep -o "resuming feats-$PREEMPT_TASK.npy: [0-9]* of [0-9]*" "$LOG2" || true)
  [ -n "$RESUMED2" ] && [ "$(echo "$RESUMED2" | awk '{print $3}')" -gt 0 ] || die "the preempted task did not resume its shard: $(cat "$LOG2")"
  PREEMPT_NOTE="task $PREEMPT_TASK preempted (requeue: SIGTERM) at row $PREEMPTED_AT, resumed at ${RESUMED2#*: }"
else
  # It finished in the moment between the check and the signal: the requeued run found it complete.
  grep -q "is already complete" "$LOG2" || die "task $PREEMPT_TASK: neither interrupted nor complete: $(cat "$LOG2")"
  PREEMPT_NOTE="task $PREEMPT_TASK finished before the requeue's SIGTERM reached it"
fi
say "$PREEMPT_NOTE"
for k in $(seq "$N"); do [ -f "feats-$k.npy" ] || die "feats-$k.npy missing"; done
# The shard holding the truncated file ended with exit 2, which the job file reports as COMPLETED.
grep -l "failed: images/zz-truncated.jpg" spp-extract-"${JOB}"_*.log >/dev/null || die "no task recorded the truncated file"
[ -d .spp-cache/onnx ] || die "the tasks did not share the model cache .spp-cache"

merge_and_check_single "$MERGE" --cache-dir .spp-cache

OK=1
echo "$E2E_NAME: N=$N sbatch --array=1-$N on $CPUS CPUs: $(secs "$t0" "$t1") s (task $KILL_TASK killed -9 at row $KILLED_AT, requeued, held ${HELD%.*} s by Slurm, resumed at ${RESUMED#*: }; $PREEMPT_NOTE) vs single run $SINGLE_SECS s; $PHOTOS photos + 1 truncated file; merged .npy + manifest byte-identical"
