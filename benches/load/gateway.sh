#!/usr/bin/env bash
# Load benchmark of the gateway alone. Canned nodes (examples/canned_node.rs) answer at once
# with recorded Meilisearch answers (benches/load/fixtures/), so what is measured is the hop:
# the real `miroir` in front of 1, 3 and 8 of them, beside the same requests sent straight to
# a canned node (the ceiling) and through nginx (one plain proxy hop). Everything listens on
# 127.0.0.1 and is stopped when the script ends.
#
#   benches/load/gateway.sh            # DURATION seconds per measurement (default 5)
#   benches/load/gateway.sh --smoke    # 1 s each, for CI
#
# Either mode fails (exit 1) when any answer is not 2xx, on any socket error, and when a
# canned node was asked something it has no answer for, or a gateway died or logged an error
# a client could see.
#
# Environment: DURATION (s), CONNECTIONS (8), THREADS (wrk threads, 2), PROFILE (release or
# debug: which build of miroir and canned_node to run), LOG_LEVELS (gateway log levels to
# measure, "warn info"), NGINX (nginx binary, or "none"), PORT_BASE (18100), PERF (a part of a
# scenario's name: `perf record` the gateway during its first gateway run, print the top
# symbols; PERF_TOP lines; PERF_ARGS: perf's options, -g unless given, e.g. `--call-graph dwarf`
# for time with callees), STATE_REDIS (a `redis://` URL: the gateways keep their state there,
# each under a prefix of its own, instead of in their data directory), MIROIR_BIN (the gateway
# binary to measure instead of this build's, e.g. an older one for a before/after figure).
# Needs: wrk (apt-get install wrk), curl, cargo; nginx (apt-get install nginx-light) optional.
set -euo pipefail

SMOKE=0
for arg in "$@"; do
    case $arg in
    --smoke) SMOKE=1 ;;
    *) echo "usage: $0 [--smoke]" >&2 && exit 2 ;;
    esac
done
# A smoke run checks answers, not speed: a slow answer on a busy machine is no failure.
if [ "$SMOKE" = 1 ]; then DURATION=${DURATION:-1} TIMEOUT=10s; else DURATION=${DURATION:-5} TIMEOUT=2s; fi
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}
PROFILE=${PROFILE:-release}
LOG_LEVELS=${LOG_LEVELS:-warn info}
PORT_BASE=${PORT_BASE:-18100}
KEY=miroir-load-key-0123456789abcdef
INDEX=products

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FIXTURES=$HERE/fixtures
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is needed: apt-get install curl" >&2; exit 2; }
NGINX=${NGINX:-$(command -v nginx || true)}
[ "$NGINX" = none ] && NGINX=

[ "$PROFILE" = release ] || [ "$PROFILE" = debug ] || { echo "PROFILE: release or debug" >&2; exit 2; }
profile_flag=()
[ "$PROFILE" = release ] && profile_flag=(--release)
(cd "$ROOT" && cargo build --quiet --locked "${profile_flag[@]}" --bin miroir --example canned_node)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MIROIR=${MIROIR_BIN:-$TARGET/$PROFILE/miroir}
CANNED=$TARGET/$PROFILE/examples/canned_node

# shellcheck source=benches/load/common.sh
. "$HERE/common.sh"

# Canned nodes: one process, eight listeners.
NODE_PORTS=()
for i in 1 2 3 4 5 6 7 8; do NODE_PORTS+=($((PORT_BASE + i))); done
listen_args=()
for p in "${NODE_PORTS[@]}"; do listen_args+=(--listen "127.0.0.1:$p"); done
"$CANNED" --fixtures "$FIXTURES" "${listen_args[@]}" 2>"$WORK/canned.log" &
PIDS+=($!)
CANNED_PID=$!

for p in "${NODE_PORTS[@]}"; do wait_ok "http://127.0.0.1:$p/health"; done

# Gateways: one per node count and log level, all started at once (an idle one costs next to
# nothing); port = PORT_BASE + 100 + 10 * level index + node count.
declare -A GW_PORT GW_PID
start_gateway() { # nodes level port
    local nodes=$1 level=$2 port=$3 dir="$WORK/gw-$1-$2"
    mkdir -p "$dir"
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "127.0.0.1:%s"\n' "$port" "$((port + 50))"
        printf 'data_dir = "%s"\nlog_level = "%s"\n' "$dir/data" "$level"
        printf 'pid_file = "%s"\nupgrade_sock = "%s"\n' "$dir/pid" "$dir/upgrade.sock"
        if [ -n "${STATE_REDIS:-}" ]; then
            printf '[state]\nbackend = "redis"\n[state.redis]\nurl = "%s"\nprefix = "load-%s-%s:"\n' \
                "$STATE_REDIS" "$nodes" "$level"
        fi
        for p in "${NODE_PORTS[@]:0:$nodes}"; do
            printf '[[nodes]]\nid = "node-%s"\nurl = "http://127.0.0.1:%s"\n' "$p" "$p"
        done
    } >"$dir/miroir.toml"
    # RUST_LOG would override the configured level.
    env -u RUST_LOG MIROIR_MASTER_KEY=$KEY "$MIROIR" --config "$dir/miroir.toml" 2>"$dir.log" >&2 &
    PIDS+=($!)
    GW_PID[$nodes-$level]=$!
    GW_PORT[$nodes-$level]=$port
}
li=0
for level in $LOG_LEVELS; do
    for n in 1 3 8; do start_gateway "$n" "$level" $((PORT_BASE + 100 + 10 * li + n)); done
    li=$((li + 1))
done
for gw in "${!GW_PORT[@]}"; do wait_ok "http://127.0.0.1:${GW_PORT[$gw]}/health"; done

# nginx: one plain hop to the first canned node, a keep-alive upstream pool, no access log.
NGINX_PORT=$((PORT_BASE + 90))
NGINX_PIDS=()
if [ -n "$NGINX" ]; then
    start_nginx "$NGINX_PORT" "${NODE_PORTS[0]}"
    wait_ok "http://127.0.0.1:$NGINX_PORT/health"
    read -r -a NGINX_PIDS <<<"$NGINX_MASTER $(ps -o pid= --ppid "$NGINX_MASTER" | tr '\n' ' ')"
fi

TICKS_PER_S=$(getconf CLK_TCK)
cpu_ticks() { # pids...: utime + stime of every thread, in clock ticks
    local total=0 pid f
    for pid in "$@"; do
        # Fields after the command name, which is in parentheses.
        read -r -a f <<<"$(sed 's/^.*) //' "/proc/$pid/stat")"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}
to_ms() { # a wrk duration (850.00us, 1.20ms, 1.02s) in milliseconds
    awk -v d="$1" 'BEGIN {
        v = d + 0; u = d; sub(/^[0-9.]+/, "", u)
        if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000
        printf "%.2f", v }'
}

FAILED=0
ROWS=()
PERF_DONE=
# One wrk run against url (GET, or POST of body file), the CPU of pids measured around it;
# appends a table row.
measure() { # scenario hop url body-file|- pids...
    local scenario=$1 hop=$2 url=$3 body=$4
    shift 4
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout "$TIMEOUT" --latency -H "Authorization: Bearer $KEY")
    [ "$body" != - ] && args+=(-s "$HERE/post.lua")
    local before=0 out perf=
    if [ -n "${PERF:-}" ] && [[ $hop == miroir* ]] && [[ $scenario == *"$PERF"* ]] && [ -z "$PERF_DONE" ]; then
        # shellcheck disable=SC2086 # PERF_ARGS is a list of options
        perf record -q ${PERF_ARGS:--g} -o "$WORK/perf.data" -p "$1" 2>/dev/null &
        perf=$!
        PERF_DONE="$scenario via $hop"
    fi
    [ $# -gt 0 ] && before=$(cpu_ticks "$@")
    out=$(BODY=$body wrk "${args[@]}" "$url")
    if [ -n "$perf" ]; then
        kill -INT "$perf"
        wait "$perf" || true
    fi
    local ticks=0
    [ $# -gt 0 ] && ticks=$(($(cpu_ticks "$@") - before))
    local requests rps p50 p99 non2xx errors
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
    errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' <<<"$out")
    if [ -n "$non2xx" ] || [ "${errors:-0}" != 0 ] || [ "${requests:-0}" = 0 ]; then
        echo "$scenario via $hop: ${non2xx:-0} non-2xx answers, ${errors:-0} socket errors" >&2
        echo "$out" >&2
        FAILED=1
    fi
    local cpu=- per_core=-
    if [ $# -gt 0 ] && [ "$ticks" -gt 0 ]; then
        cpu=$(awk -v t="$ticks" -v hz="$TICKS_PER_S" -v n="$requests" 'BEGIN {printf "%.3f", t / hz / n * 1000}')
        per_core=$(awk -v t="$ticks" -v hz="$TICKS_PER_S" -v n="$requests" 'BEGIN {printf "%.0f", n / (t / hz)}')
    fi
    ROWS+=("| $scenario | $hop | $rps | $p50 | $p99 | $cpu | $per_core |")
    printf '%-34s %-16s %8s req/s  p50 %6s ms  p99 %6s ms  CPU %6s s/1k req\n' \
        "$scenario" "$hop" "$rps" "$p50" "$p99" "$cpu" >&2
}

# Every scenario's request answers 2xx through every hop before anything is measured.
check() { # url body-file|-
    local status
    if [ "$2" = - ]; then
        status=$(curl -s -o "$WORK/answer" -w '%{http_code}' -H "Authorization: Bearer $KEY" "$1")
    else
        status=$(curl -s -o "$WORK/answer" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
            -H 'Content-Type: application/json' --data-binary "@$2" "$1")
    fi
    case $status in
    2??) ;;
    *) echo "$1 answered $status: $(cat "$WORK/answer")" >&2 && exit 1 ;;
    esac
}

# name | nodes behind the gateway | path | body file (- for a GET)
SCENARIOS=(
    "proxied GET /indexes/{uid}|1|/indexes/$INDEX|-"
    "document by id, 3 nodes|3|/indexes/$INDEX/documents/1|-"
    "search, 1 shard (1 node)|1|/indexes/$INDEX/search|$FIXTURES/request-search.json"
    "search, 3 shards|3|/indexes/$INDEX/search|$FIXTURES/request-search.json"
    "search, 8 shards|8|/indexes/$INDEX/search|$FIXTURES/request-search.json"
    "multi-search, 2 queries, 3 shards|3|/multi-search|$FIXTURES/request-multi-search.json"
    "write 2 documents, 3 shards|3|/indexes/$INDEX/documents|$FIXTURES/request-documents.json"
)

for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name nodes path body <<<"$s"
    check "http://127.0.0.1:${NODE_PORTS[0]}$path" "$body"
    [ -n "$NGINX" ] && check "http://127.0.0.1:$NGINX_PORT$path" "$body"
    for level in $LOG_LEVELS; do check "http://127.0.0.1:${GW_PORT[$nodes-$level]}$path" "$body"; done
done

echo "gateway load: wrk $THREADS threads x $CONNECTIONS connections, ${DURATION}s per row, $(nproc) CPUs, $PROFILE build" >&2
for s in "${SCENARIOS[@]}"; do
    IFS='|' read -r name nodes path body <<<"$s"
    measure "$name" "direct to a node" "http://127.0.0.1:${NODE_PORTS[0]}$path" "$body"
    if [ -n "$NGINX" ]; then
        measure "$name" "nginx" "http://127.0.0.1:$NGINX_PORT$path" "$body" "${NGINX_PIDS[@]}"
    fi
    for level in $LOG_LEVELS; do
        measure "$name" "miroir ($level log)" "http://127.0.0.1:${GW_PORT[$nodes-$level]}$path" \
            "$body" "${GW_PID[$nodes-$level]}"
    done
done

if [ -n "$PERF_DONE" ]; then
    for sort in dso symbol; do
        echo "perf: $PERF_DONE, self time by $sort" >&2
        perf report -i "$WORK/perf.data" --no-children --sort "$sort" --stdio 2>/dev/null |
            grep -E '^ +[0-9.]+%' | sed 's/[ -]*$//' | head -"${PERF_TOP:-30}" >&2 || true
    done
    if [ -n "${PERF_ARGS:-}" ]; then
        echo "perf: $PERF_DONE, time with callees by symbol" >&2
        perf report -i "$WORK/perf.data" --children --sort symbol --stdio 2>/dev/null |
            grep -E '^ +[0-9.]+% +[0-9.]+%' | sed 's/[ -]*$//' | head -"${PERF_TOP:-30}" >&2 || true
    fi
fi
kill -0 "$CANNED_PID" 2>/dev/null || { echo "the canned nodes died" >&2; FAILED=1; }
if grep -q '^unanswered' "$WORK/canned.log"; then
    echo "the canned nodes were asked for something they have no answer for:" >&2
    sort "$WORK/canned.log" | uniq -c >&2
    FAILED=1
fi
for gw in "${!GW_PID[@]}"; do
    kill -0 "${GW_PID[$gw]}" 2>/dev/null || { echo "gateway $gw died" >&2; FAILED=1; }
    # Errors no client sees: wrk closes its connections when a run ends (answers in flight
    # are then written to a closed socket), and Pingora's pool logs one when a pooled
    # connection's idle watcher still holds it (it connects anew).
    grep ' ERROR ' "$WORK/gw-$gw.log" |
        grep -v -e 'Broken pipe' -e 'Connection reset' -e 'Downstream ConnectionClosed' \
            -e 'failed to acquire reusable stream' >"$WORK/errors" || true
    if [ -s "$WORK/errors" ]; then
        echo "gateway $gw logged errors:" >&2
        sed 's/^\[[^]]*\]//' "$WORK/errors" | sort | uniq -c | sort -rn | head >&2
        FAILED=1
    fi
done

echo
echo "wrk $THREADS threads x $CONNECTIONS keep-alive connections, ${DURATION}s per row, $(nproc) CPUs."
echo "CPU: user + system time of the hop's processes (the gateway, or nginx's master and workers)."
[ -n "$NGINX" ] || echo "nginx: not installed, its rows are skipped."
echo
echo "| scenario | through | req/s | p50 ms | p99 ms | hop CPU s / 1k req | req/s per hop core |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
if [ "$FAILED" = 1 ]; then
    echo "FAILED: see above" >&2
    exit 1
fi
