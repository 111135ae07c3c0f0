#!/usr/bin/env bash
# The README's Performance tables: this machine's limits, the matmuls alone
# on llada-1b's shapes (every weight type), and whole forward passes of
# llada-1b in BF16, Q8_0, Q4_0 and Q4_K_M at canvases 32, 256 and 1024, each
# with f32 activations (--f32) and with reduced-precision ones (the default).
#
#   bench/matmul_speed.sh [WORK_DIR] [REPS]    (default /tmp/unmask-speed, 2)
#
# Makes the models with init-random and convert on first use (~7 GB of disk).
# Every row carries the limit of its instruction measured just before it, so
# the ratios hold on a machine shared with other work.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/unmask-speed}
R=${2:-2}
U=build/unmask
make --no-print-directory -j"$(nproc)" build/unmask >/dev/null
mkdir -p "$W"
[ -f "$W/bf16/model.safetensors" ] || "$U" init-random --preset llada-1b --dtype bf16 -o "$W/bf16" 2>/dev/null
for t in q8_0 q4_0 q4_k_m; do
    [ -f "$W/$t.gguf" ] || "$U" convert "$W/bf16" -o "$W/$t.gguf" --type "$t" 2>/dev/null
done

echo "## matmuls of one llada-1b layer and its output head, random weights"
"$U" bench --kernels --f32 --types f32,f16,bf16,q8_0,q4_0,q4_k,q6_k --canvas 32,256,1024 -r "$R" 2>/dev/null
"$U" bench --kernels --no-limits --types bf16,q8_0,q4_0,q4_k,q6_k --canvas 32,256,1024 -r "$R" 2>/dev/null |
    tail -n +3
for act in f32 reduced; do
    echo
    echo "## llada-1b forward passes, $act activations"
    flag=$([ "$act" = f32 ] && echo --f32 || true)
    first=1
    for m in "$W/bf16" "$W/q8_0.gguf" "$W/q4_0.gguf" "$W/q4_k_m.gguf"; do
        out=$("$U" bench -m "$m" --canvas 32,256,1024 -r "$R" $flag 2>/dev/null)
        if [ $first = 1 ]; then echo "$out"; first=0; else echo "$out" | grep '^| /'; fi
    done
done
