#!/usr/bin/env bash
# Weights packed once at load (the default) against packed on every product
# (--no-repack), in one run, alternating: one llada-1b layer's matmuls at
# canvas 32 and 256 (`bench --kernels`, best of ROUNDS runs each way), and a
# 32-token dual-cache step against a whole 261-token pass
# (`bench/decode_cache.sh` with PROMPT_LEN=5) for each of TYPES, with the
# peak resident memory of a load and one 32-token forward each way.
#
#   [UNMASK_CPU=avx2] [TYPES="q4_0 q8_0 bf16"] [ROUNDS=2] bench/repack.sh [WORK_DIR]
#
# WORK_DIR (default /tmp/unmask-decode-bench) holds decode_cache.sh's
# random llada-1b (3.3 GB BF16) and its conversions.
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
W=${1:-/tmp/unmask-decode-bench}
TYPES=${TYPES:-q4_0 q8_0 bf16}
ROUNDS=${ROUNDS:-2}
KTYPES=$(echo "$TYPES" | tr ' ' ',' | sed 's/q4_k_m/q4_k/')
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), UNMASK_CPU=${UNMASK_CPU:-native}, $(nproc) threads"
echo
echo "| weights | canvas | packed at load ms/layer | packed per product ms/layer | speedup |"
echo "|---|---|---|---|---|"
declare -A BEST
for r in $(seq "$ROUNDS"); do
    for mode in packed per_product; do
        flag=()
        [ $mode = per_product ] && flag=(--no-repack)
        while IFS='|' read -r _ _ wt _ _ canvas ms _ kernel _; do
            key="$(echo "$wt" | xargs) $(echo "$canvas" | xargs) $mode"
            ms=$(echo "$ms" | xargs)
            old=${BEST[$key]:-1e30}
            BEST[$key]=$(python3 -c "print(min($ms, $old))")
        done < <("$U" bench --kernels --shape llada-1b --types "$KTYPES" --canvas 32,256 -r 2 --no-limits \
            "${flag[@]}" 2>/dev/null | grep '^| llada-1b' | grep -v onednn)
    done
done
for key in $(printf '%s\n' "${!BEST[@]}" | grep ' packed$' | sort -k1,1 -k2,2n | sed 's/ packed$//' | tr ' ' ':'); do
    k=${key//:/ }
    a=${BEST["$k packed"]}
    b=${BEST["$k per_product"]}
    python3 -c "print(f'| ${k% *} | ${k#* } | {$a:.1f} | {$b:.1f} | {$b / $a:.2f}x |')"
done
echo
echo "| weights | packed at load: full / cached step | per product: full / cached step | peak RSS MiB (packed / per product) |"
echo "|---|---|---|---|"
for t in $TYPES; do
    row() { # NO_REPACK value: "full / cached" of the dual row
        NO_REPACK=$1 PROMPT_LEN=5 TYPE=$t MODES=dual bash bench/decode_cache.sh "$W" 2>/dev/null |
            awk -F'|' '/^\| dual/ {print $7}' | xargs
    }
    model="$W/hf"
    [ "$t" = bf16 ] || model="$W/$t.gguf"
    rss() { # extra flags: peak resident MiB over a load and a 32-token forward
        "$U" bench -m "$model" --canvas 32 -r 1 --no-limits "$@" 2>/dev/null | awk -F'|' '/^\| \// {print $10}' | xargs
    }
    p=$(row "") n=$(row 1)
    echo "| $t | $p | $n | $(rss) / $(rss --no-repack) |"
done
