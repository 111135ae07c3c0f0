#!/usr/bin/env bash
# What each quantized type costs on a llada-1b-shaped model: KL divergence and
# top-1 agreement of the logits against the unquantized model (unmask compare),
# file size, and forward speed (unmask bench), all measured in one run.
#
#   bench/quant_error.sh [WORK_DIR]     (needs ~15 GB of disk; ~15 minutes on 2 cores)
#
# The model has random weights at the initialisation scale (std 0.02, STD to
# change it). Its logits are flatter than a trained model's; much larger
# weights make a 22-layer random network chaotic (attention turns into argmax
# and small perturbations flip it), which overstates every type's error.
set -euo pipefail
cd "$(dirname "$0")/.."
U=${UNMASK:-build/unmask}
W=${1:-/tmp/unmask-quant-bench}
TYPES=${TYPES:-"q8_0 q6_k q5_k_m q4_k_m q4_1 q4_0"}
mkdir -p "$W"
[ -f "$W/hf/model.safetensors" ] || "$U" init-random --preset llada-1b --dtype bf16 --std "${STD:-0.02}" -s 1 -o "$W/hf"

echo "| type | file MiB | mean KL | max KL | top-1 | RMS logit error | ms/forward (canvas 256) |"
echo "|---|---|---|---|---|---|---|"
line() { # type, model path
    local size stats bench
    size=$(du -m --apparent-size "$2" 2>/dev/null | awk '{s+=$1} END {print s}')
    if [ "$1" = bf16 ]; then stats='{"mean_kl":0,"max_kl":0,"top1_agreement":1,"rms_logit_error":0}'
    else stats=$("$U" compare -m "$W/hf" -m "$2" --prompt-len 96 --gen-len 32 --json 2>/dev/null); fi
    bench=$("$U" bench -m "$2" --prompt-len 32 --gen-len 224 -r 1 2>/dev/null | tail -1 | awk -F'|' '{print $6}')
    python3 - "$1" "$size" "$stats" "$bench" <<'PY'
import json, sys
t, size, stats, bench = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4].strip()
print(f"| {t} | {size} | {stats['mean_kl']:.5f} | {stats['max_kl']:.5f} | {100*stats['top1_agreement']:.1f}% | {stats['rms_logit_error']:.4f} | {bench} |")
PY
}
line bf16 "$W/hf"
for t in $TYPES; do
    [ -f "$W/$t.gguf" ] || "$U" convert "$W/hf" -o "$W/$t.gguf" --type "$t" 2>/dev/null
    line "$t" "$W/$t.gguf"
done
