#!/usr/bin/env bash
# docs/serve-nginx.conf in front of two `unmask serve` processes, on free
# loopback ports: completions, chats and a stream through nginx, both
# servers answering some, the stream's events arriving one by one, and both
# servers exiting 0 on SIGTERM.
#
#     bash tests/serve_nginx.sh [UNMASK_BIN]      (from the repository root; needs nginx)
set -euo pipefail
BIN=${1:-build/unmask}
DIR=$(mktemp -d /tmp/unmask-nginx-XXXXXX)
PIDS=()
cleanup() {
    [ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "serve_nginx: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# two servers, each on a free port of its own choosing, which it prints
for i in 1 2; do
    "$BIN" serve -m models/stories --port 0 -np 4 >/dev/null 2>"$DIR/serve$i.log" &
    PIDS+=($!)
done
port_of() {
    for _ in $(seq 300); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/serve$1.log")
        [ -n "$port" ] && { echo "$port"; return; }
        sleep 0.05
    done
    fail "server $1 did not start: $(cat "$DIR/serve$1.log")"
}
P1=$(port_of 1)
P2=$(port_of 2)
PN=$(free_port)

# the documented configuration, on these ports and in this folder
sed -e "s#/tmp/unmask-nginx#$DIR/nginx#g" -e "s#127.0.0.1:8081#127.0.0.1:$P1#" -e "s#127.0.0.1:8082#127.0.0.1:$P2#" \
    -e "s#listen 127.0.0.1:8080#listen 127.0.0.1:$PN#" -e "s#^pid .*#pid $DIR/nginx.pid;#" \
    docs/serve-nginx.conf >"$DIR/nginx.conf"
nginx -c "$DIR/nginx.conf" -p "$DIR" || fail "nginx did not start: $(cat "$DIR"/nginx-error.log 2>/dev/null)"
for _ in $(seq 100); do curl -sf "127.0.0.1:$PN/health" >/dev/null && break; sleep 0.05; done

URL="http://127.0.0.1:$PN"
# 16 concurrent requests through nginx
for i in $(seq 16); do
    if [ $((i % 2)) = 0 ]; then
        curl -sf "$URL/v1/completions" -d "{\"prompt\": \"Once upon a time\", \"max_tokens\": 32, \"seed\": $i}" \
            >"$DIR/out$i.json" &
    else
        curl -sf "$URL/v1/chat/completions" \
            -d "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 32, \"seed\": $i}" \
            >"$DIR/out$i.json" &
    fi
done
for j in $(jobs -p); do
    case " ${PIDS[*]} " in *" $j "*) ;; *) wait "$j" || true;; esac
done
for i in $(seq 16); do
    grep -q '"finish_reason"' "$DIR/out$i.json" || fail "request $i: $(cat "$DIR/out$i.json")"
done

# a stream comes through event by event, ending in [DONE]
curl -sfN "$URL/v1/completions" -d '{"prompt": "The dog", "max_tokens": 32, "stream": true}' >"$DIR/stream.txt"
events=$(grep -c '^data: ' "$DIR/stream.txt")
[ "$events" -gt 3 ] || fail "the stream had $events events"
tail -n 2 "$DIR/stream.txt" | grep -q '^data: \[DONE\]' || fail "the stream does not end in [DONE]"

# both servers answered some
for p in "$P1" "$P2"; do
    n=$(curl -sf "127.0.0.1:$p/metrics" | sed -n 's/^unmask_sessions_finished_total \(.*\)/\1/p')
    [ "${n%.*}" -gt 0 ] || fail "the server on port $p answered no request"
    echo "serve_nginx: the server on port $p finished $n sessions"
done

kill "$(cat "$DIR/nginx.pid")"
for p in "${PIDS[@]}"; do
    kill -TERM "$p"
    wait "$p" || fail "a server exited $? after SIGTERM"
done
PIDS=()
echo "serve_nginx: nginx in front of two servers: ok ($events stream events)"
