# Shared by scripts/e2e/slurm.sh and scripts/e2e/parallel.sh (sourced, not run).
# Callers set E2E_NAME (e.g. e2e:slurm) before sourcing.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$E2E_DIR/../.." && pwd)
SHARED=${SPP_SHARED_DIR:-$(cd "$REPO/.." && pwd)/shared}
E2E_IMAGES=${E2E_IMAGES:-$SHARED/images/labelled}
E2E_MODEL=${E2E_MODEL:-$SHARED/models/keras-mobilenet_v1_0.75_224}

# Any command failing under set -e says where, instead of ending the run without a word.
set -E
trap 'e2e_rc=$?; say "FAILED: line $LINENO of ${BASH_SOURCE[0]##*/}: $BASH_COMMAND (exit $e2e_rc)"' ERR

say() { printf '%s: %s\n' "$E2E_NAME" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }
skip() { printf '%s: skipped: %s\n' "$E2E_NAME" "$*"; exit 0; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

need_root() {
  [ "$(id -u)" -eq 0 ] || skip "needs root ($*)"
}

# ensure_commands CMD:PACKAGE ...: installs the Debian packages of missing commands with apt-get.
# Not Linux, or something missing and not root or no apt-get (or no reachable mirror): prints
# "skipped" and exits 0.
ensure_commands() {
  [ "$(uname -s)" = Linux ] || skip "needs Linux"
  local pair missing=() pkgs=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 && continue
    missing+=("${pair%%:*}")
    [[ " ${pkgs[*]} " == *" ${pair#*:} "* ]] || pkgs+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || skip "needs ${missing[*]} and apt-get is unavailable to install ${pkgs[*]}"
  need_root "to apt-get install ${pkgs[*]}"
  say "installing ${pkgs[*]} with apt-get (missing: ${missing[*]})"
  local log; log=$(mktemp)
  if ! { timeout 300 apt-get update && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y --no-install-recommends "${pkgs[@]}"; } >"$log" 2>&1; then
    tail -5 "$log" >&2
    rm -f "$log"
    skip "apt-get could not install ${pkgs[*]} (no package mirror reachable?)"
  fi
  rm -f "$log"
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null 2>&1 || die "${pair%%:*} still missing after installing ${pair#*:}"; done
}

check_inputs() {
  [ -d "$E2E_IMAGES" ] || skip "needs the labelled photos at $E2E_IMAGES (set SPP_SHARED_DIR or E2E_IMAGES)"
  [ -f "$E2E_MODEL/model.json" ] || skip "needs the weights at $E2E_MODEL (set SPP_SHARED_DIR or E2E_MODEL)"
}

build() {
  if [ "${E2E_NO_BUILD:-0}" = 1 ]; then say "E2E_NO_BUILD=1: using dist/ as it is"; return 0; fi
  say "building (tsc)"
  (cd "$REPO" && timeout 300 node_modules/.bin/tsc -p tsconfig.json) || die "tsc failed"
}

# The fenced block that follows the line `<!-- recipe: NAME -->` in docs/clusters.md, verbatim.
readme_block() {
  awk -v mark="<!-- recipe: $1 -->" '
    $0 == mark { armed = 1; next }
    armed && !inside && /^```/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
  ' "$REPO/docs/clusters.md"
}

# Puts spp-extract on PATH the way `npm link` / `npm install -g` would: a link to bin/spp-extract.cjs.
tool_on_path() {
  mkdir -p "$1/bin"
  ln -sfn "$REPO/bin/spp-extract.cjs" "$1/bin/spp-extract"
  export PATH="$1/bin:$PATH"
}

# A work folder with the inputs under relative names, so the recipes run on paths relative to it:
# images/ (the labelled photos, plus one truncated JPEG: a recorded failure, exit 2) and model/.
make_workdir() {
  mkdir -p "$1/images"
  local d photos
  for d in "$E2E_IMAGES"/*/; do ln -sfn "${d%/}" "$1/images/$(basename "$d")"; done
  photos=("$E2E_IMAGES"/*/*.jpg)
  [ -f "${photos[0]}" ] || die "no .jpg under $E2E_IMAGES/*/"
  head -c 3000 "${photos[0]}" > "$1/images/zz-truncated.jpg"
  ln -sfn "$E2E_MODEL" "$1/model"
}

# The photos make_workdir links, and the inputs a run sees (photos + the truncated file).
photo_count() { find -L "$1/images" -name '*.jpg' ! -name 'zz-truncated.jpg' | wc -l; }

rows_in() { grep -c '"type":"row"' "$1" 2>/dev/null || true; }

# pids of spp-extract (node) processes whose command line + environment (one string a line) match
# every extended regex given.
tool_pids() {
  local d argv0 cmd info re ok
  for d in /proc/[0-9]*; do
    argv0=''
    { IFS= read -r -d '' argv0 < "$d/cmdline"; } 2>/dev/null # no fork per process: this runs in a poll loop
    case "$argv0" in */node | node) ;; *) continue ;; esac
    cmd=$({ tr '\0' ' ' < "$d/cmdline"; } 2>/dev/null) || continue
    case "$cmd" in *spp-extract*) ;; *) continue ;; esac
    info=$(printf '%s\n' "$cmd"; { tr '\0' '\n' < "$d/environ"; } 2>/dev/null)
    ok=1
    for re in "$@"; do grep -qE -- "$re" <<<"$info" || { ok=0; break; }; done
    [ "$ok" -eq 1 ] && echo "${d#/proc/}"
  done
  return 0
}

# kill_mid_run DIR K MIN_ROWS TIMEOUT REGEX...: waits until shard K's journal in DIR holds MIN_ROWS
# rows, then kill -9s the process tool_pids REGEX... finds (no chance to write anything: the hardest
# case for --resume). Prints the rows journalled at the kill; returns 1 when shard K finished first.
kill_mid_run() {
  local dir=$1 k=$2 min=$3 deadline=$(( $(date +%s) + $4 )) rows pids=""
  shift 4
  local journal="$dir/.feats-$k.manifest.jsonl.partial"
  while [ "$(date +%s)" -lt "$deadline" ]; do
    # Find the process while it loads the model, so the kill itself is quick.
    [ -n "$pids" ] || pids=$(tool_pids "$@")
    rows=$(rows_in "$journal")
    if [ -n "$pids" ] && [ "${rows:-0}" -ge "$min" ]; then
      # shellcheck disable=SC2086
      if kill -9 $pids 2>/dev/null; then
        rows=$(rows_in "$journal")
        echo "${rows:-0}"
        return 0
      fi
      pids=""
    fi
    [ -f "$dir/feats-$k.manifest.jsonl" ] && [ ! -f "$journal" ] && return 1
    sleep 0.02
  done
  return 1
}

# compare_outputs A.npy B.npy: both .npy and both manifests byte for byte.
compare_outputs() {
  cmp "$1" "$2" || die "$1 and $2 differ"
  cmp "${1%.npy}.manifest.jsonl" "${2%.npy}.manifest.jsonl" || die "${1%.npy}.manifest.jsonl and ${2%.npy}.manifest.jsonl differ"
}

# Merges the shards (in the current folder) with the merge line of docs/clusters.md, then runs one
# uninterrupted extraction in $T/single (extra arguments: its cache) and checks that both give the
# same bytes and every photo as a row. Sets SINGLE_SECS.
merge_and_check_single() {
  local merge=$1 s0 s1
  shift
  say "merging as docs/clusters.md does: $merge"
  timeout 600 bash -c "$merge" 2> "$T/merge.err" && MERGE_RC=0 || MERGE_RC=$?
  [ "$MERGE_RC" -eq 2 ] || die "merge exited $MERGE_RC, expected 2 (one recorded failure): $(cat "$T/merge.err")"
  cd "$T/single"
  s0=$(now)
  timeout 600 spp-extract images --model model "$@" -o feats.npy 2> "$T/single.err" && SINGLE_RC=0 || SINGLE_RC=$?
  s1=$(now)
  [ "$SINGLE_RC" -eq 2 ] || die "the single run exited $SINGLE_RC, expected 2: $(tail -3 "$T/single.err")"
  compare_outputs "$T/work/feats.npy" "$T/single/feats.npy"
  ROWS=$(rows_in "$T/single/feats.manifest.jsonl")
  [ "$ROWS" -eq "$PHOTOS" ] || die "expected $PHOTOS rows, got $ROWS"
  SINGLE_SECS=$(secs "$s0" "$s1")
}
