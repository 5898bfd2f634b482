#!/usr/bin/env bash
# npm run e2e:parallel — the GNU parallel recipe of docs/clusters.md, run as written.
#
# Needs root and Debian's packages (installs parallel with apt-get when missing; prints "skipped" and
# exits 0 when not root or apt-get is unavailable). Then, in a temp work folder holding images/ (the
# 500 labelled photos plus one truncated JPEG, a recorded failure: exit 2) and model/ (keras
# mobilenet v1 0.75) under relative names:
#  - runs the block after <!-- recipe: parallel --> in docs/clusters.md (its example `export` line
#    replaced by IMAGES=images MODEL=model): the parallel line, then the merge line;
#  - kill -9s job 1's node process mid-run: parallel's --retries must rerun it, and the rerun must
#    --resume its own shard (its output says "resuming feats-1.npy: R of …" with R > 0);
#  - runs one uninterrupted spp-extract over the same inputs and compares: .npy and manifest
#    byte-identical; prints one summary line.
# Environment: E2E_KEEP=1 keeps the temp dir, SPP_SHARED_DIR / E2E_IMAGES / E2E_MODEL for the inputs.
set -euo pipefail
E2E_NAME=e2e:parallel
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

KILL_JOB=1
KILL_AT_ROWS=${E2E_KILL_AT_ROWS:-15}

ensure_commands parallel:parallel
VERSION=$(parallel --version 2>/dev/null || true)
[[ $VERSION == *"GNU parallel"* ]] || skip "'parallel' is not GNU parallel (moreutils' parallel?)"
check_inputs
build

T=$(mktemp -d /tmp/spp-e2e-parallel.XXXXXX)
OK=0
RECIPE_PID=""
cleanup() {
  local rc=$?
  set +e
  trap - ERR
  # Only what this script started: the recipe, run by timeout in a process group of its own
  # (timeout's pid is the group's id): its shell, parallel and the jobs.
  if [ -n "$RECIPE_PID" ] && kill -0 "$RECIPE_PID" 2>/dev/null; then
    kill -TERM -- "-$RECIPE_PID" 2>/dev/null
    wait "$RECIPE_PID" 2>/dev/null
  fi
  if [ "$OK" -eq 1 ] && [ "${E2E_KEEP:-0}" != 1 ]; then rm -rf "$T"; else say "logs and outputs kept in $T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

tool_on_path "$T"
make_workdir "$T/work"
make_workdir "$T/single"
PHOTOS=$(photo_count "$T/work")

# The docs/clusters.md block, minus its example values: IMAGES and MODEL come from here.
readme_block parallel > "$T/recipe.full.sh"
grep -q '^parallel ' "$T/recipe.full.sh" || die "docs/clusters.md's <!-- recipe: parallel --> block has no 'parallel' line"
grep -v '^export IMAGES=' "$T/recipe.full.sh" > "$T/recipe.sh"
N=$(grep '^parallel ' "$T/recipe.sh" | sed -E 's/.*::: *//' | wc -w)
say "running the recipe of docs/clusters.md (N=$N): $(tr '\n' ';' < "$T/recipe.sh")"

cd "$T/work"
export IMAGES=images MODEL=model
export XDG_CACHE_HOME="$T/cache" # the recipe's default model cache, shared by its jobs; cold
export PARALLEL_HOME="$T/parallel-home" # no citation notice or state in ~/.parallel
mkdir -p "$PARALLEL_HOME"
touch "$PARALLEL_HOME/will-cite"
# Only the parallel line here; the merge line runs after the checks below.
t0=$(now)
timeout 900 bash -c "set -e; $(grep -v '^spp-extract merge' "$T/recipe.sh")" > "$T/parallel.out" 2> "$T/parallel.err" &
RECIPE_PID=$!
KILLED_AT=$(kill_mid_run "$T/work" "$KILL_JOB" "$KILL_AT_ROWS" 300 " $T/bin/spp-extract " "--shard $KILL_JOB/$N( |\$)") || true
[ -n "$KILLED_AT" ] || die "job $KILL_JOB finished (or never started) before it could be killed; lower E2E_KILL_AT_ROWS"
say "killed job $KILL_JOB (kill -9) with $KILLED_AT rows journalled"
wait "$RECIPE_PID" && RC=0 || RC=$?
RECIPE_PID=""
t1=$(now)
[ "$RC" -ne 124 ] || die "parallel did not finish within 900 s"
[ "$RC" -eq 0 ] || die "parallel exited $RC (jobs failed): $(tail -5 "$T/parallel.err")"
RESUMED=$(grep -o "resuming feats-$KILL_JOB.npy: [0-9]* of [0-9]*" "$T/parallel.err" || true)
[ -n "$RESUMED" ] || die "job $KILL_JOB was not rerun with --resume: $(tail -5 "$T/parallel.err")"
[ "$(echo "$RESUMED" | awk '{print $3}')" -gt 0 ] || die "the rerun started over: $RESUMED"
for k in $(seq "$N"); do [ -f "feats-$k.npy" ] || die "feats-$k.npy missing"; done

MERGE=$(grep '^spp-extract merge ' "$T/recipe.sh")
merge_and_check_single "$MERGE" --cache-dir "$T/single/cache"

OK=1
JOBS=$(grep -o -- ' -j[0-9]*' "$T/recipe.sh" | head -n 1 | tr -d ' ')
echo "$E2E_NAME: N=$N parallel $JOBS on $(nproc) CPUs: $(secs "$t0" "$t1") s (job $KILL_JOB killed -9 at row $KILLED_AT, retried by parallel, resumed at ${RESUMED#*: }) vs single run $SINGLE_SECS s; $PHOTOS photos + 1 truncated file; merged .npy + manifest byte-identical"
