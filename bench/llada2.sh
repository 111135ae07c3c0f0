#!/usr/bin/env bash
# LLaDA2 block diffusion at the real size, in one run: random llada2-mini
# weights (LLaDA2.0-mini's shape: 16.3B parameters, 8 of 256 experts a token:
# 1.4B active) written straight to GGUF by init-random (the bf16 checkpoint,
# 33 GB, never touches the disk), then
#
#   1. 256 tokens after a 256-token prompt in blocks of 32 (--steps 32 a block,
#      --decoder topk so that every block runs exactly 32 steps and the rows
#      below can name the first and last block's; EOS masked so that the run
#      goes to its end): tokens/s, the first step (the prompt's 8 blocks and
#      the first generated one), and the mean step of the first and of the
#      last generated block: flat, as each step runs one block against the
#      cache of finished blocks;
#   2. what a step would cost without that cache: one forward over the whole
#      512-position window (`unmask bench`), as upstream's generate runs at
#      each step of the last block;
#   3. batching: 4 requests of 64 tokens through `run --batch` at once
#      (--parallel 4) against one after another (--parallel 1).
#
#   bench/llada2.sh [WORK_DIR] [TYPE]   (defaults /tmp/unmask-llada2, q4_k_m; THREADS=N, default nproc;
#                                        LAYERS=N: the shape with N layers instead of 20, to try the script)
#
# Needs about 10 GB of disk and 12 GB of memory for Q4_K_M; writing the file
# takes about 15 minutes on 2 cores, the measurements as long again.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/unmask-llada2}
TYPE=${2:-q4_k_m}
THREADS=${THREADS:-$(nproc)}
U=build/unmask
make --no-print-directory -j"$(nproc)" build/unmask >/dev/null
mkdir -p "$W"
M=$W/llada2-mini${LAYERS:+-$LAYERS-layers}-$TYPE.gguf
[ -f "$M" ] || "$U" init-random --preset llada2-mini ${LAYERS:+--layers "$LAYERS"} --type "$TYPE" -o "$M" >&2
cat "$M" >/dev/null # from the page cache, not the disk

ids() { # count offset: that many token ids, spread over the vocabulary
    python3 -c "import sys; n, o = map(int, sys.argv[1:]); print(','.join(str(100 + (o + i * 7919) % 150000) for i in range(n)))" "$1" "$2"
}
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

echo "# llada2-mini${LAYERS:+ with $LAYERS layers} $TYPE, $THREADS threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
out=$("$U" run -m "$M" --prompt-tokens "$(ids 256 0)" -n 256 --block-length 32 --steps 32 --decoder topk \
    --logits-eos-inf -t "$THREADS" --json 2>/dev/null)
echo "$out" | python3 -c '
import json, sys
o = json.load(sys.stdin)
s = o["step_ms"]
assert o["nfe"] == 256 and len(s) == 256, "every block should run its 32 steps"
mean = lambda v: sum(v) / len(v)
first, last = mean(s[1:32]), mean(s[224:256])
print("| generated | nfe | seconds | tokens/s | first step (prefill) | first block, mean step | last block, mean step | last / first |")
print("|---|---|---|---|---|---|---|---|")
n, nfe, sec, tps = len(o["generated"]), o["nfe"], o["seconds"], o["tokens_per_second"]
print(f"| {n} | {nfe} | {sec:.1f} | {tps:.2f} | {s[0]:.0f} ms | {first:.0f} ms | {last:.0f} ms | {last / first:.2f} |")
'
echo
full=$("$U" bench -m "$M" --prompt-len 480 --gen-len 32 -r 1 --no-limits -t "$THREADS" 2>/dev/null |
    awk -F'|' '$5 + 0 == 512 {print $6}' | tr -d ' ')
echo "one forward over the whole 512-position window (no cache, upstream's every step of the last block): ${full:-?} ms"
echo
printf '{"prompt_tokens": [%s], "gen_length": 64}\n' "$(ids 64 0)" "$(ids 64 1)" "$(ids 64 2)" "$(ids 64 3)" >"$W/batch.jsonl"
echo "| 4 requests of 64 tokens | wall seconds |"
echo "|---|---|"
for par in 1 4; do
    t0=$(date +%s.%N)
    "$U" run -m "$M" --batch "$W/batch.jsonl" --parallel $par --logits-eos-inf -t "$THREADS" >/dev/null 2>&1
    t1=$(date +%s.%N)
    printf '| --parallel %d | %.1f |\n' $par "$(echo "$t1 - $t0" | bc)"
done
