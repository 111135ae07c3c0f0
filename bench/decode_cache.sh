#!/usr/bin/env bash
# Time per decoding step for each KV-cache mode on a llada-1b-shaped model
# (random weights): prompt 512, gen_length 256, block 32, 256 steps (top-k, one
# token per step), and the dual cache's speedup over no cache, in one run.
#
#   bench/decode_cache.sh [WORK_DIR]     (a 3.3 GB model; ~10 minutes on 2 cores)
#
# Every block does the same work in the none, dual and vicinity modes (dual and
# vicinity: one full pass, then 31 cached steps), so the first block's 32
# steps (--max-nfe 32) give the per-step time of the whole generation. none
# repeats one full pass per step: NONE_STEPS (default 4) of them are timed.
# prefix's cached steps shrink block by block (block and everything after it:
# 256 positions in the first block, 32 in the last), so its row is its
# slowest block. "cached step" subtracts one full pass (none's step time) from
# a block's total: the cost of each later step of the block.
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
W=${1:-/tmp/unmask-decode-bench}
NONE_STEPS=${NONE_STEPS:-4}
WINDOW=${WINDOW:-16}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$W"
[ -f "$W/hf/model.safetensors" ] || "$U" init-random --preset llada-1b --dtype bf16 -s 1 -o "$W/hf" >/dev/null
PROMPT=$(python3 -c "print(','.join(str(1000 + (i * 7919) % 120000) for i in range(512)))")

run() { # cache mode, forward passes to time
    "$U" run -m "$W/hf" --prompt-tokens "$PROMPT" -n 256 --block-length 32 --steps 256 --cache "$1" \
        --window "$WINDOW" --max-nfe "$2" -t "$THREADS" --json 2>/dev/null
}

declare -A OUT
OUT[none]=$(run none "$NONE_STEPS")
for mode in prefix dual vicinity; do OUT[$mode]=$(run "$mode" 32); done

python3 - "$(nproc)" "$THREADS" "$WINDOW" "${OUT[none]}" "${OUT[prefix]}" "${OUT[dual]}" "${OUT[vicinity]}" <<'PY'
import json, sys
cores, threads, window = sys.argv[1:4]
runs = dict(zip(["none", "prefix", "dual", "vicinity"], (json.loads(a) for a in sys.argv[4:8])))
full = runs["none"]["ms_per_forward"]
what = {"none": "whole canvas (768)", "prefix": "block + suffix (256 in block 1)",
        "dual": "block (32)", "vicinity": f"block + {window} each side (64)"}
print(f"llada-1b (random bf16), prompt 512, gen 256, block 32; {threads} threads on {cores} cores\n")
print("| cache | recomputed per cached step | steps timed | ms/step | ms per cached step | speedup per step vs none |")
print("|---|---|---|---|---|---|")
for mode, r in runs.items():
    n, ms = r["nfe"], r["ms_per_forward"]
    cached = "—" if mode == "none" else f"{(n * ms - full) / (n - 1):.0f}"
    print(f"| {mode} | {what[mode]} | {n} | {ms:.0f} | {cached} | {full / ms:.1f}x |")
PY
