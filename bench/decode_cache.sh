#!/usr/bin/env bash
# Time per decoding step for each KV-cache mode on a llada-1b-shaped model
# (random weights): prompt PROMPT_LEN (default 512), gen_length 256, block 32,
# 256 steps (top-k, one token per step), and the dual cache's speedup over no
# cache, in one run.
#
#   [PROMPT_LEN=P] [TYPE=bf16|q8_0|q4_0|q4_k_m] [NO_REPACK=1] bench/decode_cache.sh [WORK_DIR]
#
# (a 3.3 GB model, plus the converted file for TYPE; ~10 minutes on 2 cores.)
# PROMPT_LEN=5 TYPE=q4_0 is the CPU issue's case: a 32-token cached step
# against a whole pass of 261 tokens. NO_REPACK=1 runs with --no-repack;
# MODES (default "prefix dual vicinity") picks the cached modes beside none.
#
# Every block does the same work in the none, dual and vicinity modes (dual and
# vicinity: one full pass, then 31 cached steps), so the first block's 32
# steps (--max-nfe 32) give the per-step time of the whole generation. none
# repeats one full pass per step: NONE_STEPS (default 4) of them are timed.
# prefix's cached steps shrink block by block (block and everything after it:
# 256 positions in the first block, 32 in the last), so its row is its
# slowest block. "cached step" subtracts one full pass (none's step time) from
# a block's total: the cost of each later step of the block; "full / cached"
# sets a full pass against it.
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
W=${1:-/tmp/unmask-decode-bench}
NONE_STEPS=${NONE_STEPS:-4}
WINDOW=${WINDOW:-16}
PROMPT_LEN=${PROMPT_LEN:-512}
TYPE=${TYPE:-bf16}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$W"
[ -f "$W/hf/model.safetensors" ] || "$U" init-random --preset llada-1b --dtype bf16 -s 1 -o "$W/hf" >/dev/null
MODEL="$W/hf"
if [ "$TYPE" != bf16 ]; then
    MODEL="$W/$TYPE.gguf"
    [ -f "$MODEL" ] || "$U" convert "$W/hf" -o "$MODEL" --type "$TYPE" >/dev/null 2>&1
fi
REPACK=()
[ -n "${NO_REPACK:-}" ] && REPACK=(--no-repack)
PROMPT=$(python3 -c "print(','.join(str(1000 + (i * 7919) % 120000) for i in range($PROMPT_LEN)))")

run() { # cache mode, forward passes to time
    "$U" run -m "$MODEL" --prompt-tokens "$PROMPT" -n 256 --block-length 32 --steps 256 --cache "$1" \
        --window "$WINDOW" --max-nfe "$2" -t "$THREADS" "${REPACK[@]}" --json 2>/dev/null
}

declare -A OUT
OUT[none]=$(run none "$NONE_STEPS")
for mode in ${MODES:-prefix dual vicinity}; do OUT[$mode]=$(run "$mode" 32); done

python3 - "$(nproc)" "$THREADS" "$WINDOW" "$PROMPT_LEN" "$TYPE${NO_REPACK:+, --no-repack}" \
    "${OUT[none]}" "${OUT[prefix]:-}" "${OUT[dual]:-}" "${OUT[vicinity]:-}" <<'PY'
import json, sys
cores, threads, window, prompt, weights = sys.argv[1:6]
runs = {m: json.loads(a) for m, a in zip(["none", "prefix", "dual", "vicinity"], sys.argv[6:10]) if a}
canvas = int(prompt) + 256
full = runs["none"]["ms_per_forward"]
what = {"none": f"whole canvas ({canvas})", "prefix": "block + suffix (256 in block 1)",
        "dual": "block (32)", "vicinity": f"block + {window} each side (64)"}
print(f"llada-1b (random, {weights}), prompt {prompt}, gen 256, block 32; {threads} threads on {cores} cores\n")
print("| cache | recomputed per cached step | steps timed | ms/step | ms per cached step | full / cached "
      "| speedup per step vs none |")
print("|---|---|---|---|---|---|---|")
for mode, r in runs.items():
    n, ms = r["nfe"], r["ms_per_forward"]
    cached = (n * ms - full) / (n - 1) if mode != "none" else None
    print(f"| {mode} | {what[mode]} | {n} | {ms:.0f} | {'—' if cached is None else f'{cached:.0f}'} "
          f"| {'—' if cached is None else f'{full / cached:.1f}x'} | {full / ms:.1f}x |")
PY
