#!/usr/bin/env bash
# Continuous batching: 8 requests of 64 new tokens (prompts of 64 random
# tokens, block 32, run's defaults: dual cache, threshold decoding) on a
# llada-1b-shaped model with random weights, in Q4_0 and BF16, run by
# `unmask run --batch` one after another (--parallel 1) and all at once
# (--parallel 8), alternating, in one run. Prints aggregate tokens/s, the
# speedup, the peak memory each extra live session costs, and the ceiling
# the matmuls put on the speedup: what 8 steps of 32 tokens cost against one
# of 256 in `unmask bench --kernels` (llada-1b's 22 layers and its output
# head, 28 and 224 logit rows), since batching gains only what a matmul
# gains from running 8 sequences' tokens at once.
#
#   bench/batch.sh [WORK_DIR]     (models of 3.3 GB and 1.4 GB; ~15 minutes on 2 cores)
#
# REPS (default 2) alternations per type; THREADS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
W=${1:-/tmp/unmask-batch-bench}
REPS=${REPS:-2}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$W"
[ -f "$W/hf/model.safetensors" ] || "$U" init-random --preset llada-1b --dtype bf16 -s 1 -o "$W/hf" >/dev/null
[ -f "$W/q4_0.gguf" ] || "$U" convert "$W/hf" -o "$W/q4_0.gguf" --type q4_0 >/dev/null 2>&1
python3 - "$W/requests.jsonl" <<'PY'
import json, random, sys
random.seed(7)
with open(sys.argv[1], "w") as f:
    for r in range(8):
        ids = [random.randrange(1000, 120000) for _ in range(64)]
        f.write(json.dumps({"prompt_tokens": ids, "gen_length": 64, "block_length": 32, "seed": r}) + "\n")
PY

run() { # model, parallel -> the "batch:" summary line
    "$U" run -m "$1" --batch "$W/requests.jsonl" --parallel "$2" -t "$THREADS" 2>&1 >"$W/out-$2.jsonl" | grep '^batch:'
}

# 8 x t(32) / t(256) for one weight type (bench --kernels' ms/layer and ms/head columns)
ceiling() {
    "$U" bench --kernels --shape llada-1b --types "$1" --canvas 32,256 -r 3 --no-limits -t "$THREADS" 2>/dev/null |
        awk -F'|' '$6 + 0 == 32 && !t32 { t32 = 22 * $7 + $13 } $6 + 0 == 256 && !t256 { t256 = 22 * $7 + $13 }
                   END { if (t256 > 0) printf "%.2f\n", 8 * t32 / t256 }' # the first row: the default kernel
}
CEIL="$W/ceiling.txt"
echo "q4_0.gguf $(ceiling q4_0)" >"$CEIL"
echo "hf $(ceiling bf16)" >>"$CEIL"

LOG="$W/log.txt"
: >"$LOG"
for model in q4_0.gguf hf; do
    for rep in $(seq "$REPS"); do
        for par in 1 8; do
            echo "$model $par $(run "$W/$model" "$par")" | tee -a "$LOG" >&2
        done
        cmp -s "$W/out-1.jsonl" "$W/out-8.jsonl" || { # the same tokens either way (timings aside)
            python3 - "$W/out-1.jsonl" "$W/out-8.jsonl" <<'PY'
import json, sys
a, b = ([(j["tokens"], j["nfe"]) for j in map(json.loads, open(p))] for p in sys.argv[1:])
sys.exit(0 if a == b else "outputs differ between --parallel 1 and 8")
PY
        }
    done
done

python3 - "$LOG" "$(nproc)" "$THREADS" "$CEIL" <<'PY'
import re, sys, statistics
ceiling = dict(line.split() for line in open(sys.argv[4]))
rows = {}
for line in open(sys.argv[1]):
    model, par, rest = line.split(" ", 2)
    tps = float(re.search(r"\(([\d.]+) tokens/s\)", rest).group(1))
    rss = float(re.search(r"peak RSS ([\d.]+) MiB", rest).group(1))
    fw = int(re.search(r"(\d+) batched forwards", rest).group(1))
    rows.setdefault(model, {}).setdefault(int(par), []).append((tps, rss, fw))
print(f"llada-1b (random weights), 8 requests x 64 new tokens, prompt 64, block 32, dual cache, threshold 0.9; "
      f"{sys.argv[3]} threads on {sys.argv[2]} cores\n")
print("| weights | --parallel 1 tokens/s | --parallel 8 tokens/s | speedup | matmul ceiling | forwards (1 / 8) | peak RSS MiB (1 / 8) | per extra session MiB |")
print("|---|---|---|---|---|---|---|---|")
for model, r in rows.items():
    one = statistics.median(t for t, _, _ in r[1]); eight = statistics.median(t for t, _, _ in r[8])
    rss1 = max(m for _, m, _ in r[1]); rss8 = max(m for _, m, _ in r[8])
    print(f"| {'Q4_0' if model.startswith('q4') else 'BF16'} | {one:.1f} | {eight:.1f} | {eight / one:.2f}x | {ceiling[model]}x | "
          f"{r[1][0][2]} / {r[8][0][2]} | {rss1:.0f} / {rss8:.0f} | {(rss8 - rss1) / 7:.1f} |")
PY
