#!/usr/bin/env bash
# npm run e2e:neighbours — examples/neighbours.py (docs/using-the-output.md) on real photos.
#
# In a temp folder: images/ holds the first 5 labelled photos of each of the 10 classes (50) and
# zz-copy.jpg, the first of them resized to 75 % and re-encoded (JPEG quality 80): a near-duplicate.
# Extracts them with keras mobilenet v1 0.75, runs the example with numpy and with faiss (pip install
# faiss-cpu when it is missing; skipped when it cannot be installed), and checks that both find the
# pair (photo, copy) as the one near-duplicate, that the copy's nearest neighbour is its photo, and
# that numpy and faiss agree on every neighbour list and duplicate. Writes the numpy run's output for
# the first 3 queries to scripts/e2e/neighbours.json and prints one summary line.
# Environment: E2E_KEEP=1 keeps the temp dir, SPP_SHARED_DIR / E2E_IMAGES / E2E_MODEL for the inputs.
set -euo pipefail
E2E_NAME=e2e:neighbours
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PYTHON=${PYTHON:-python3}
THRESHOLD=0.9
check_inputs
"$PYTHON" -c 'import numpy' 2>/dev/null || skip "needs $PYTHON with numpy"
if ! "$PYTHON" -c 'import faiss' 2>/dev/null; then
  say "installing faiss-cpu with pip"
  timeout 600 "$PYTHON" -m pip install --quiet faiss-cpu numpy >&2 || skip "pip could not install faiss-cpu"
  "$PYTHON" -c 'import faiss' 2>/dev/null || skip "faiss still not importable after pip install faiss-cpu"
fi
build

T=$(mktemp -d /tmp/spp-e2e-neighbours.XXXXXX)
OK=0
cleanup() {
  local rc=$?
  if [ "$OK" -eq 1 ] && [ "${E2E_KEEP:-0}" != 1 ]; then rm -rf "$T"; else say "outputs kept in $T"; fi
  exit "$rc"
}
trap cleanup EXIT
tool_on_path "$T"
export XDG_CACHE_HOME="$T/cache"

mkdir -p "$T/images"
for d in "$E2E_IMAGES"/*/; do
  c=$(basename "$d")
  mkdir -p "$T/images/$c"
  find "$d" -maxdepth 1 -name '*.jpg' | LC_ALL=C sort | head -n 5 | while read -r f; do ln -s "$f" "$T/images/$c/"; done
done
ORIGINAL=$(cd "$T" && find images -name '*.jpg' | LC_ALL=C sort | head -n 1)
(cd "$REPO" && node -e '
  const sharp = require("sharp");
  const [src, dst] = process.argv.slice(1);
  sharp(src).metadata().then((m) => sharp(src).resize(Math.round(m.width * 0.75)).jpeg({ quality: 80 }).toFile(dst));
' "$T/$ORIGINAL" "$T/images/zz-copy.jpg")
cd "$T"
spp-extract images -o feats.npy --model "$E2E_MODEL" -q
"$PYTHON" "$REPO/examples/neighbours.py" feats.npy --threshold "$THRESHOLD" -k 5 > numpy.json
"$PYTHON" "$REPO/examples/neighbours.py" feats.npy --threshold "$THRESHOLD" -k 5 --backend faiss > faiss.json
"$PYTHON" "$REPO/examples/neighbours.py" feats.npy --threshold "$THRESHOLD" -k 3 --queries 3 > "$REPO/scripts/e2e/neighbours.json"

SUMMARY=$("$PYTHON" - "$ORIGINAL" <<'PY'
import json, sys
import numpy as np
original = sys.argv[1]
a, b = json.load(open("numpy.json")), json.load(open("faiss.json"))
pair = {original, "images/zz-copy.jpg"}
def fail(msg):
    sys.exit(f"FAILED: {msg}")
for name, r in (("numpy", a), ("faiss", b)):
    dups = [{d["a"], d["b"]} for d in r["duplicates"]]
    if dups != [pair]:
        fail(f"{name}: duplicates at cosine >= {r['threshold']} are {r['duplicates']}, expected only {sorted(pair)}")
    copy = next(q for q in r["neighbours"] if q["path"] == "images/zz-copy.jpg")
    if copy["neighbours"][0]["path"] != original:
        fail(f"{name}: the copy's nearest neighbour is {copy['neighbours'][0]}, not {original}")
for qa, qb in zip(a["neighbours"], b["neighbours"]):
    ca = [n["cosine"] for n in qa["neighbours"]]; cb = [n["cosine"] for n in qb["neighbours"]]
    if qa["path"] != qb["path"] or not np.allclose(ca, cb, atol=1e-4):
        fail(f"numpy and faiss disagree for {qa['path']}: {qa['neighbours']} vs {qb['neighbours']}")
    # Paths must agree wherever the cosines are not tied.
    for na, nb in zip(qa["neighbours"], qb["neighbours"]):
        if na["path"] != nb["path"] and abs(na["cosine"] - nb["cosine"]) > 1e-4:
            fail(f"numpy and faiss rank {qa['path']}'s neighbours differently: {na} vs {nb}")
if len(a["neighbours"]) != a["rows"] or len(b["neighbours"]) != b["rows"]:
    fail("not every row was queried")
x = np.load("feats.npy").astype(np.float64)
x /= np.linalg.norm(x, axis=1, keepdims=True)
s = x @ x.T
np.fill_diagonal(s, -1)
n = len(x)
dup = a["duplicates"][0]["cosine"]
s[n - 1, :] = -1; s[:, n - 1] = -1  # without the copy (the last row): the best pair of distinct photos
print(f"{a['rows']} rows ({a['rows'] - 1} photos + 1 resized copy), D {a['dim']}: numpy and faiss find the same 1 near-duplicate "
      f"(cosine {dup:.3f} >= {a['threshold']}; best pair of distinct photos {s.max():.3f}) and the same {a['k']} neighbours for every row")
PY
)
say "$SUMMARY"
OK=1
