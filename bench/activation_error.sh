#!/usr/bin/env bash
# What the default reduced-precision activations cost in accuracy, next to
# what the weights' own rounding costs: the shipped story model (F32) against
# its BF16, Q8_0 and Q4_0 copies, each run with f32 activations
# (UNMASK_ACTIVATIONS=f32) and with the default (bf16 for BF16 weights, int8
# for quantized ones), compared position by position with `unmask compare`
# over a 256-token canvas (192 random prompt tokens, 64 masks) and 4 seeds.
#
#   bench/activation_error.sh [WORK_DIR]    (default /tmp/unmask-act-error)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/unmask-act-error}
U=build/unmask
M=models/stories
make --no-print-directory -j"$(nproc)" build/unmask >/dev/null
mkdir -p "$W"
"$U" convert "$M" -o "$W/f32.gguf" --type f32 2>/dev/null
for t in bf16 q8_0 q4_0; do
    "$U" quantize "$W/f32.gguf" "$W/$t.gguf" "$t" 2>/dev/null
done

# mean over seeds of one compare field
mean_of() { # activations type field
    for s in 0 1 2 3; do
        UNMASK_ACTIVATIONS=$1 "$U" compare -m "$M" -m "$W/$2.gguf" --prompt-len 192 --gen-len 64 -s "$s" \
            --json 2>/dev/null
        echo
    done | python3 -c "import json,sys; v=[json.loads(l)['$3'] for l in sys.stdin if l.strip()]; print(sum(v)/len(v))"
}

echo "| weights | mean KL, f32 activations | mean KL, default | top-1 agreement, f32 | top-1 agreement, default |"
echo "|---|---|---|---|---|"
for t in bf16 q8_0 q4_0; do
    printf '| %s | %.2e | %.2e | %.2f%% | %.2f%% |\n' "$(echo $t | tr a-z A-Z)" \
        "$(mean_of f32 $t mean_kl)" "$(mean_of reduced $t mean_kl)" \
        "$(python3 -c "print(100*$(mean_of f32 $t top1_agreement))")" \
        "$(python3 -c "print(100*$(mean_of reduced $t top1_agreement))")"
done
