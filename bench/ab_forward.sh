#!/usr/bin/env bash
# Whole-forward speed of two unmask binaries, run alternately in one run (the
# machines here are shared and noisy: alternating puts both under the same
# noise): for each canvas, each binary's best ms per forward over ROUNDS
# rounds of `unmask bench -r REPS`, and new / old.
#
#   bench/ab_forward.sh OLD_BIN NEW_BIN MODEL [CANVASES] [-- extra bench flags, e.g. --f32]
#
# CANVASES defaults to 32,256,1024; ROUNDS (default 2) and REPS (default 2)
# from the environment. Example: an old build against this one, f32 activations:
#   bench/ab_forward.sh /tmp/unmask-old build/unmask /tmp/m1b/q4_0.gguf 32,256 -- --f32
set -euo pipefail
OLD=$1 NEW=$2 MODEL=$3
CANVAS=${4:-32,256,1024}
shift $(($# >= 4 ? 4 : 3))
[ "${1:-}" = "--" ] && shift
ROUNDS=${ROUNDS:-2} REPS=${REPS:-2}
LOG=$(mktemp)
for round in $(seq "$ROUNDS"); do
    for side in old new; do
        bin=$OLD; [ "$side" = new ] && bin=$NEW
        "$bin" bench -m "$MODEL" --canvas "$CANVAS" -r "$REPS" --no-limits "$@" 2>/dev/null |
            grep '^| ' | grep -v '^| model |' | sed "s/^/$side /" >>"$LOG"
    done
done
python3 - "$LOG" "$MODEL" "$*" <<'PY'
import sys
best = {}
for line in open(sys.argv[1]):
    side, row = line.split(" ", 1)
    cols = [c.strip() for c in row.strip().strip("|").split("|")]
    canvas, ms = int(cols[3]), float(cols[4])
    key = (canvas, side)
    best[key] = min(ms, best.get(key, ms))
print(f"{sys.argv[2]} {sys.argv[3]}".strip())
print("| canvas | old ms/forward | new ms/forward | new / old |")
print("|---|---|---|---|")
for canvas in sorted({c for c, _ in best}):
    o, n = best[(canvas, "old")], best[(canvas, "new")]
    print(f"| {canvas} | {o:.1f} | {n:.1f} | {n / o:.3f} |")
PY
rm -f "$LOG"
