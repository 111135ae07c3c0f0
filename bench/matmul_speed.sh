#!/usr/bin/env bash
# The README's Performance tables: this machine's limits, the matmuls alone
# (one layer and the output head, random weights of every type), and whole
# forward passes at canvases 32, 256 and 1024 of random models in BF16,
# Q8_0, Q4_0 and Q4_K_M, per shape:
#
#   llada-1b  each model with f32 activations (--f32) and with the default
#             reduced-precision ones; about 7 GB of disk
#   llada-8b  the default activations only; about 34 GB of disk
#
#   bench/matmul_speed.sh [WORK_DIR] [REPS] [SHAPES]
#       (default /tmp/unmask-speed, 2, "llada-1b llada-8b")
#
# Makes the models with init-random and convert on first use. Every row
# carries the limit of its instruction measured just before it, so the
# ratios hold on a machine shared with other work.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/unmask-speed}
R=${2:-2}
SHAPES=${3:-llada-1b llada-8b}
U=build/unmask
make --no-print-directory -j"$(nproc)" build/unmask >/dev/null

# The models of one shape in DIR: DIR/bf16 (Hugging Face layout) and DIR/TYPE.gguf.
make_models() {
    local shape=$1 dir=$2
    mkdir -p "$dir"
    [ -f "$dir/bf16/model.safetensors" ] || "$U" init-random --preset "$shape" --dtype bf16 -o "$dir/bf16" 2>/dev/null
    for t in q8_0 q4_0 q4_k_m; do
        [ -f "$dir/$t.gguf" ] || "$U" convert "$dir/bf16" -o "$dir/$t.gguf" --type "$t" 2>/dev/null
    done
}

# Forward passes of every model of DIR, one table (extra flags: $3...).
forwards() {
    local dir=$1 first=1
    shift
    for m in "$dir/bf16" "$dir/q8_0.gguf" "$dir/q4_0.gguf" "$dir/q4_k_m.gguf"; do
        out=$("$U" bench -m "$m" --canvas 32,256,1024 -r "$R" "$@" 2>/dev/null)
        if [ $first = 1 ]; then echo "$out"; first=0; else echo "$out" | grep '^| /'; fi
    done
}

for shape in $SHAPES; do
    case $shape in
    llada-1b)
        make_models llada-1b "$W"
        echo "## matmuls of one llada-1b layer and its output head, random weights"
        "$U" bench --kernels --f32 --types f32,f16,bf16,q8_0,q4_0,q4_k,q6_k --canvas 32,256,1024 -r "$R" 2>/dev/null
        "$U" bench --kernels --no-limits --types f16,bf16,q8_0,q4_0,q4_k,q6_k --canvas 32,256,1024 -r "$R" 2>/dev/null |
            tail -n +3
        echo
        echo "## llada-1b forward passes, f32 activations"
        forwards "$W" --f32
        echo
        echo "## llada-1b forward passes, default activations"
        forwards "$W"
        ;;
    llada-8b)
        make_models llada-8b "$W/8b"
        echo "## matmuls of one llada-8b layer and its output head, random weights"
        "$U" bench --kernels --shape llada-8b --types bf16,q8_0,q4_0,q4_k --canvas 256,1024 -r "$R" 2>/dev/null
        echo
        echo "## llada-8b forward passes, default activations"
        forwards "$W/8b"
        ;;
    *)
        echo "unknown shape '$shape' (llada-1b, llada-8b)" >&2
        exit 2
        ;;
    esac
    echo
done
