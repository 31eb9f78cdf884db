#!/usr/bin/env bash
# Search throughput with 1, 2 and 3 gateways sharing one Redis in front of the same nodes.
# Canned nodes (examples/canned_node.rs) answer at once with recorded Meilisearch answers; k
# gateways (one worker thread each) share their state in a local redis-server; one wrk per
# gateway runs at the same time (CONNECTIONS split between them) and the table sums them.
# Everything listens on 127.0.0.1 and is stopped when the script ends.
#
#   benches/load/gateways.sh           # DURATION seconds per row (default 5)
#
# Environment: DURATION (s), CONNECTIONS (12), PORT_BASE (18400), NODES (3).
# Needs: wrk and redis-server (apt-get install wrk redis-server), curl, cargo.
set -euo pipefail

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-12}
PORT_BASE=${PORT_BASE:-18400}
NODES=${NODES:-3}
KEY=miroir-load-key-0123456789abcdef
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURES=$HERE/fixtures
for tool in wrk redis-server curl; do
    command -v $tool >/dev/null || { echo "$tool is needed (apt-get install $tool)" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --quiet --locked --release --bin miroir --example canned_node)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

# shellcheck source=benches/load/common.sh
. "$HERE/common.sh"

REDIS_PORT=$((PORT_BASE + 99))
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync always --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
NODE_PORTS=()
listen_args=()
for i in $(seq "$NODES"); do
    NODE_PORTS+=($((PORT_BASE + i)))
    listen_args+=(--listen "127.0.0.1:$((PORT_BASE + i))")
done
"$TARGET/release/examples/canned_node" --fixtures "$FIXTURES" "${listen_args[@]}" 2>"$WORK/canned.log" &
PIDS+=($!)
for p in "${NODE_PORTS[@]}"; do wait_ok "http://127.0.0.1:$p/health"; done

GW_PORTS=()
GW_PIDS=()
for g in 1 2 3; do
    port=$((PORT_BASE + 100 + g)) dir="$WORK/gw-$g"
    mkdir -p "$dir"
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "127.0.0.1:%s"\n' "$port" "$((port + 50))"
        printf 'data_dir = "%s"\nlog_level = "warn"\nthreads = 1\n' "$dir/data"
        printf 'pid_file = "%s"\nupgrade_sock = "%s"\n' "$dir/pid" "$dir/upgrade.sock"
        printf '[state]\nbackend = "redis"\n[state.redis]\nurl = "redis://127.0.0.1:%s"\nprefix = "gateways:"\n' "$REDIS_PORT"
        for p in "${NODE_PORTS[@]}"; do
            printf '[[nodes]]\nid = "node-%s"\nurl = "http://127.0.0.1:%s"\n' "$p" "$p"
        done
    } >"$dir/miroir.toml"
    env -u RUST_LOG MIROIR_MASTER_KEY=$KEY "$TARGET/release/miroir" --config "$dir/miroir.toml" 2>"$dir.log" >&2 &
    PIDS+=($!)
    GW_PIDS+=($!)
    GW_PORTS+=("$port")
done
for p in "${GW_PORTS[@]}"; do wait_ok "http://127.0.0.1:$p/health"; done

URL_PATH=/indexes/products/search
FAILED=0
echo "| gateways | req/s (sum) | p50 ms (worst) | p99 ms (worst) |"
echo "|---:|---:|---:|---:|"
for k in 1 2 3; do
    per=$((CONNECTIONS / k))
    outs=()
    for g in $(seq "$k"); do
        out="$WORK/wrk-$k-$g"
        outs+=("$out")
        BODY="$FIXTURES/request-search.json" wrk -t1 -c"$per" -d"${DURATION}s" --latency \
            -s "$HERE/post.lua" -H "Authorization: Bearer $KEY" \
            "http://127.0.0.1:${GW_PORTS[$((g - 1))]}$URL_PATH" >"$out" &
    done
    wait_wrk=0
    for job in $(jobs -p); do
        # Only the wrk runs end by themselves.
        if ps -o comm= -p "$job" | grep -q wrk; then wait "$job" || wait_wrk=1; fi
    done
    [ "$wait_wrk" = 0 ] || FAILED=1
    if grep -q -e Non-2xx -e 'Socket errors' "${outs[@]}"; then
        grep -h -e Non-2xx -e 'Socket errors' "${outs[@]}" >&2
        FAILED=1
    fi
    awk -v k="$k" '
        function ms(d,  v, u) { v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
            if (u == "us") v /= 1000; else if (u == "s") v *= 1000; return v }
        /Requests\/sec/ { rps += $2 }
        $1 == "50%" { v = ms($2); if (v > p50) p50 = v }
        $1 == "99%" { v = ms($2); if (v > p99) p99 = v }
        END { printf "| %d | %.0f | %.2f | %.2f |\n", k, rps, p50, p99 }' "${outs[@]}"
done
for pid in "${GW_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "a gateway died" >&2; FAILED=1; }; done
echo
echo "$CONNECTIONS keep-alive connections in all, split between the gateways; ${DURATION}s per row; $(nproc) CPUs; $NODES canned nodes."
[ "$FAILED" = 0 ] || { echo "FAILED: see above" >&2; exit 1; }
