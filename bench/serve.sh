#!/usr/bin/env bash
# unmask serve under load: C concurrent clients, each sending streamed
# completions back to back for SECONDS, with batching on (--parallel 16: all
# live requests in one forward per step) and off (--parallel 1: one request at
# a time, the rest queued). Prints a markdown table: requests, aggregate
# tokens/s (generated positions), p50/p99 latency and p50 time to the first
# streamed chunk with text.
#
#   bench/serve.sh [MODEL] [CLIENTS] [SECONDS] [-- extra serve flags]
#
# MODEL defaults to the shipped models/stories, CLIENTS to "1 4 16", SECONDS to
# 20; from the environment: MAX_TOKENS (64); DECODING: "reference" (the
# default: STEPS forwards, 64, of the reference's topk decoder without a cache,
# so every request costs the same number of forwards) or "server" (the body
# names no diffusion setting: the server's defaults, Fast-dLLM's dual cache
# and threshold decoding, as a plain OpenAI client gets them); CANVAS (0: the
# requests say "stream_canvas": false, chunks carry only text; 1: a canvas per
# step).
# A llada-1b-shaped model: `unmask init-random --preset llada-1b -o /tmp/m1b`.
set -euo pipefail
BIN=${UNMASK_BIN:-build/unmask}
MODEL=${1:-models/stories}
CLIENTS=${2:-1 4 16}
SECONDS_EACH=${3:-20}
shift $(($# >= 3 ? 3 : $#))
[ "${1:-}" = "--" ] && shift
MAX_TOKENS=${MAX_TOKENS:-64} STEPS=${STEPS:-64} CANVAS=${CANVAS:-0} DECODING=${DECODING:-reference}
case "$DECODING" in reference | server) ;; *) echo "DECODING must be reference or server" >&2; exit 2 ;; esac
LOG=$(mktemp)
pid=
trap 'rm -f "$LOG"; [ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT

echo "model $MODEL, max_tokens $MAX_TOKENS, decoding $DECODING$([ "$DECODING" = reference ] && echo " ($STEPS steps)"), canvas $CANVAS, ${SECONDS_EACH} s per row, $(nproc) CPUs"
echo "| batching | clients | requests | tokens/s | p50 latency s | p99 latency s | p50 first text s |"
echo "|---|---|---|---|---|---|---|"
for parallel in 16 1; do
    : >"$LOG" # emptied here: the child's own truncation may come after the loop below reads the last port
    "$BIN" serve -m "$MODEL" --port 0 --parallel "$parallel" --queue 256 "$@" >/dev/null 2>"$LOG" &
    pid=$!
    port=
    for _ in $(seq 600); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$LOG")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$LOG"; exit 1; }
    for c in $CLIENTS; do
        python3 - "$port" "$c" "$SECONDS_EACH" "$MAX_TOKENS" "$STEPS" "$parallel" "$CANVAS" "$DECODING" <<'PY'
import http.client, json, statistics, sys, threading, time
port, clients, seconds, max_tokens, steps, parallel, canvas = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7] == "1"
request = {"prompt": "Once upon a time", "max_tokens": max_tokens, "stream": True, "stream_canvas": canvas}
if sys.argv[8] == "reference":
    request.update({"steps": steps, "cache": "none", "decoder": "topk"})
body = json.dumps(request)
results, lock, end = [], threading.Lock(), time.time() + seconds

def client(k):
    while time.time() < end:
        t0, first = time.time(), None
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=600)
        conn.request("POST", "/v1/completions", body.replace("time", f"time {k}"),
                     {"Content-Type": "application/json"})
        r = conn.getresponse()
        for line in r:
            if line.startswith(b"data: {") and first is None and b'"text":""' not in line:
                first = time.time() - t0
        conn.close()
        with lock:
            results.append((time.time() - t0, first if first is not None else time.time() - t0))

threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
t0 = time.time()
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - t0
lat = sorted(r[0] for r in results)
p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
print(f"| {'on' if parallel > 1 else 'off'} | {clients} | {len(results)} | {len(results) * max_tokens / wall:.1f} | "
      f"{statistics.median(lat):.3f} | {p99:.3f} | {statistics.median(r[1] for r in results):.3f} |")
PY
    done
    kill -TERM "$pid"
    wait "$pid"
    pid=
done
