#!/usr/bin/env bash
# End-to-end load run on loopback: Meilisearch called directly beside the same calls through
# Miroir, with the gateway's CPU and memory. Everything it starts listens on 127.0.0.1 and is
# stopped when it ends.
#
#   benches/load/run.sh            # 10 s per measurement
#   DURATION=30 SOAK=120 benches/load/run.sh
#   ROUNDS=5 benches/load/run.sh   # rounds of the one-node search comparison (3)
#
# Needs: a `meilisearch` binary (MEILI_BIN or PATH), `wrk`, `python3`, and cargo; nginx
# (apt-get install nginx-light; NGINX=none to leave it out) adds a plain proxy hop.
set -euo pipefail

DURATION=${DURATION:-10}
SOAK=${SOAK:-60}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-8}
DOCS=${DOCS:-20000}
KEY=miroir-load-key-0123456789abcdef
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MEILI=${MEILI_BIN:-$(command -v meilisearch || true)}
[ -x "$MEILI" ] || { echo "no meilisearch binary: set MEILI_BIN or put it on PATH" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 2; }

(cd "$ROOT" && cargo build --release --quiet)
MIROIR="$ROOT/target/release/miroir"

# shellcheck source=benches/load/common.sh
. "$HERE/common.sh"

start_meili() { # name port
    "$MEILI" --db-path "$WORK/$1/data.ms" --dump-dir "$WORK/$1/dumps" \
        --snapshot-dir "$WORK/$1/snapshots" --http-addr "127.0.0.1:$2" \
        --master-key "$KEY" --no-analytics --env development \
        --experimental-allowed-ip-networks 127.0.0.0/8 >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$1=$!"
}

start_miroir() { # name port metrics_port node_ports... (EXTRA: configuration text appended)
    local name=$1 port=$2 metrics=$3
    shift 3
    mkdir -p "$WORK/$name"
    {
        printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "127.0.0.1:%s"\n' "$port" "$metrics"
        printf 'data_dir = "%s"\nthreads = 2\nlog_level = "warn"\n' "$WORK/$name/data"
        printf 'pid_file = "%s"\nupgrade_sock = "%s"\n' "$WORK/$name/pid" "$WORK/$name/sock"
        printf '[cluster]\nshards = 64\n'
        for p in "$@"; do
            printf '[[nodes]]\nid = "n%s"\nurl = "http://127.0.0.1:%s"\n' "$p" "$p"
        done
        printf '%s\n' "${EXTRA:-}"
    } >"$WORK/$name/miroir.toml"
    MIROIR_MASTER_KEY=$KEY "$MIROIR" --config "$WORK/$name/miroir.toml" >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    eval "PID_$name=$!"
}

wait_up() { # port
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
        sleep 0.1
    done
    echo "nothing answers on port $1" >&2
    exit 1
}

start_meili solo 17801
start_meili n0 17802
start_meili n1 17803
start_meili n2 17804
for p in 17801 17802 17803 17804; do wait_up $p; done
start_miroir one 17811 17821 17801        # one node: pass-through and single-node search
start_miroir fleet 17812 17822 17802 17803 17804
# The same fleet behind a gateway with the search cache on.
EXTRA=$'[cache]\nenabled = true\nmax_bytes = 268435456' start_miroir cached 17813 17823 17802 17803 17804
wait_up 17811
wait_up 17812
wait_up 17813

# nginx in front of the lone node (a plain proxy hop: keep-alive upstream pool, no access
# log), when installed: the hop Miroir's one-node figures compare with.
NGINX=${NGINX:-$(command -v nginx || true)}
[ "$NGINX" = none ] && NGINX=
if [ -n "$NGINX" ]; then
    start_nginx 17831 17801
    wait_up 17831
fi

python3 "$HERE/documents.py" "$DOCS" >"$WORK/docs.json"
wait_task() { # port uid
    for _ in $(seq 1200); do
        status=$(curl -sf "http://127.0.0.1:$1/tasks/$2" -H "Authorization: Bearer $KEY" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
        [ "$status" = succeeded ] && return 0
        [ "$status" = failed ] && { echo "task $2 failed on port $1" >&2; exit 1; }
        sleep 0.25
    done
    echo "task $2 did not finish on port $1" >&2
    exit 1
}
call() { # method port path body-args... -> task uid
    local method=$1 port=$2 path=$3
    shift 3
    curl -sf -X "$method" "http://127.0.0.1:$port$path" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' "$@" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["taskUid"])'
}
load() { # port
    wait_task "$1" "$(call PATCH "$1" /indexes/products/settings \
        --data '{"filterableAttributes":["brand","category"]}')"
    wait_task "$1" "$(call POST "$1" '/indexes/products/documents?primaryKey=id' \
        --data-binary "@$WORK/docs.json")"
}
load 17811
load 17812

cpu_ticks() { # pids... -> utime+stime, in clock ticks
    local total=0
    for pid in "$@"; do
        read -r -a f <"/proc/$pid/stat"
        total=$((total + f[13] + f[14]))
    done
    echo $total
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# One wrk run: prints "req/s p50 p99" and leaves CPU ticks of the gateway and nodes in
# GW_TICKS and NODE_TICKS.
measure() { # url script gateway_pid node_pids...
    local url=$1 script=$2 gw=$3
    shift 3
    local gw0 nodes0 out
    gw0=$( [ "$gw" = - ] && echo 0 || cpu_ticks "$gw")
    nodes0=$(cpu_ticks "$@")
    out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/$script" \
        -H "Authorization: Bearer $KEY" "$url")
    GW_TICKS=$(( $( [ "$gw" = - ] && echo 0 || cpu_ticks "$gw") - gw0 ))
    NODE_TICKS=$(( $(cpu_ticks "$@") - nodes0 ))
    if echo "$out" | grep -q "Non-2xx"; then
        echo "$out" >&2
        echo "non-2xx answers during the run" >&2
        exit 1
    fi
    local rps p50 p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    P50_MS=$(echo "$p50" | awk '/us$/ {print $1 / 1000; next} /ms$/ {print $1 + 0; next} /s$/ {print $1 * 1000}')
    printf '%10s req/s  p50 %8s  p99 %8s' "$rps" "$p50" "$p99"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Every target answers a search before anything is measured.
for port in 17801 17811 17812; do
    answer=$(curl -s -w '\n%{http_code}' -X POST "http://127.0.0.1:$port/indexes/products/search" \
        -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data '{"q":"","limit":20,"facets":["brand","category"]}')
    [ "${answer##*$'\n'}" = 200 ] || { echo "search on port $port: $answer" >&2; exit 1; }
done

echo "Load run: $DOCS documents, wrk 1 thread x $CONNECTIONS connections, ${DURATION}s each, $(nproc) CPUs"
echo
echo "GET /version (Pingora pass-through)"
printf '  direct            '; measure http://127.0.0.1:17801/version get.lua - "$PID_solo"
echo "   node CPU: $NODE_TICKS ticks"
printf '  through Miroir    '; measure http://127.0.0.1:17811/version get.lua "$PID_one" "$PID_solo"
echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
echo
# One node behind each hop, in interleaved rounds: the machine's own drift (other load, CPU
# frequency) falls on every target alike, and the ratios are of medians.
echo "POST /indexes/products/search (rotating queries, limit 20, facets), $ROUNDS rounds"
direct=() nginx=() one=()
for round in $(seq "$ROUNDS"); do
    printf '  direct, one node  '; measure http://127.0.0.1:17801/indexes/products/search search.lua - "$PID_solo"
    echo "   node CPU: $NODE_TICKS ticks"
    direct+=("$P50_MS")
    if [ -n "$NGINX" ]; then
        printf '  nginx, one node   '; measure http://127.0.0.1:17831/indexes/products/search search.lua - "$PID_solo"
        echo "   node CPU: $NODE_TICKS ticks"
        nginx+=("$P50_MS")
    fi
    printf '  Miroir, one node  '; measure http://127.0.0.1:17811/indexes/products/search search.lua "$PID_one" "$PID_solo"
    echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
    one+=("$P50_MS")
done
d=$(median "${direct[@]}")
printf '  median p50 over %s rounds: direct %s ms' "$ROUNDS" "$d"
[ -n "$NGINX" ] && awk -v m="$(median "${nginx[@]}")" -v d="$d" 'BEGIN {printf ", nginx %s ms (%.2fx)", m, m / d}'
awk -v m="$(median "${one[@]}")" -v d="$d" 'BEGIN {printf ", Miroir %s ms (%.2fx)\n", m, m / d}'
# Each round's targets ran back to back: the ratio within a round is free of the drift
# between rounds, and the median of those ratios is the steadier figure on a shared machine.
ratios() { # p50s of a hop, one per round -> median of hop / direct
    local r=() i=0
    for m in "$@"; do
        r+=("$(awk -v m="$m" -v d="${direct[$i]}" 'BEGIN {print m / d}')")
        i=$((i + 1))
    done
    median "${r[@]}"
}
printf '  median of the rounds'"'"' ratios:'
[ -n "$NGINX" ] && awk -v r="$(ratios "${nginx[@]}")" 'BEGIN {printf " nginx %.2fx,", r}'
awk -v r="$(ratios "${one[@]}")" 'BEGIN {printf " Miroir %.2fx\n", r}'
printf '  Miroir, 3 nodes   '; measure http://127.0.0.1:17812/indexes/products/search search.lua "$PID_fleet" "$PID_n0" "$PID_n1" "$PID_n2"
echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
echo

echo "A 2-document write until its task succeeded (polled every 10 ms)"
printf '  direct, one node  '; python3 "$HERE/write_latency.py" http://127.0.0.1:17801 "$KEY"
printf '  Miroir, one node  '; python3 "$HERE/write_latency.py" http://127.0.0.1:17811 "$KEY"
printf '  direct, 2 of the 3 nodes at once (a gateway'"'"'s ceiling) '
python3 "$HERE/write_latency.py" http://127.0.0.1:17802,http://127.0.0.1:17803 "$KEY"
printf '  Miroir, 3 nodes   '; python3 "$HERE/write_latency.py" http://127.0.0.1:17812 "$KEY"
echo

# Popular queries repeat: a Zipf mix through Miroir without and with its cache, beside
# Meilisearch's own federated search over the same three nodes (network search, from n0).
# Every node needs the feature: a remote without it fails its part, and the answer says so
# only in `remoteErrors`, with a 200.
for port in 17802 17803 17804; do
    curl -sf -X PATCH "http://127.0.0.1:$port/experimental-features" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data '{"network": true}' >/dev/null
done
remotes=""
for i in 0 1 2; do
    remotes="$remotes\"n$i\": {\"url\": \"http://127.0.0.1:$((17802 + i))\", \"searchApiKey\": \"$KEY\"},"
done
curl -sf -X PATCH http://127.0.0.1:17802/network -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data "{\"self\": \"n0\", \"remotes\": {${remotes%,}}}" >/dev/null
federated='{"federation":{"limit":20},"queries":[
    {"indexUid":"products","q":"blue","federationOptions":{"remote":"n0"}},
    {"indexUid":"products","q":"blue","federationOptions":{"remote":"n1"}},
    {"indexUid":"products","q":"blue","federationOptions":{"remote":"n2"}}]}'
answer=$(curl -sf -X POST http://127.0.0.1:17802/multi-search -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' --data "$federated")
if ! echo "$answer" | python3 -c 'import json,sys; sys.exit(1 if json.load(sys.stdin).get("remoteErrors") else 0)'; then
    echo "federated search: a remote failed: $answer" >&2
    exit 1
fi
echo "POST /indexes/products/search, Zipf mix (s = 1.1 over 10 000 distinct queries, limit 20)"
printf '  Miroir, 3 nodes   '; measure http://127.0.0.1:17812/indexes/products/search zipf.lua "$PID_fleet" "$PID_n0" "$PID_n1" "$PID_n2"
echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
cache_lookups() { # -> "hits misses" so far
    curl -s http://127.0.0.1:17823/metrics | awk '
        /^miroir_cache_lookups_total\{result="hit"\}/ {h = $2}
        /^miroir_cache_lookups_total\{result="miss"\}/ {m = $2}
        END {print h + 0, m + 0}'
}
# The cache starts empty: the first run fills it as it goes, the second (other draws of the
# same mix) finds it warm.
printf '  Miroir + cache    '; measure http://127.0.0.1:17813/indexes/products/search zipf.lua "$PID_cached" "$PID_n0" "$PID_n1" "$PID_n2"
echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
read -r hits misses <<<"$(cache_lookups)"
echo "  cache, from empty: $hits hits, $misses misses"
printf '  Miroir + cache, warm '; SEED=2 measure http://127.0.0.1:17813/indexes/products/search zipf.lua "$PID_cached" "$PID_n0" "$PID_n1" "$PID_n2"
echo "   gateway CPU / node CPU: $GW_TICKS / $NODE_TICKS ticks"
read -r hits2 misses2 <<<"$(cache_lookups)"
echo "  cache, warm: $((hits2 - hits)) hits, $((misses2 - misses)) misses"
export FEDERATED=1
printf '  Meili federated   '; measure http://127.0.0.1:17802/multi-search zipf.lua - "$PID_n0" "$PID_n1" "$PID_n2"
unset FEDERATED
echo "   node CPU: $NODE_TICKS ticks"
echo

# Memory: the gateway's resident size across a sustained search load, sampled each 10 s.
echo "Soak: ${SOAK}s of searches through Miroir over 3 nodes, gateway RSS every 10 s (KiB)"
samples="$(rss_kib "$PID_fleet")"
wrk -t1 -c"$CONNECTIONS" -d"${SOAK}s" -s "$HERE/search.lua" -H "Authorization: Bearer $KEY" \
    http://127.0.0.1:17812/indexes/products/search >"$WORK/soak.txt" &
soak=$!
for _ in $(seq $((SOAK / 10))); do
    sleep 10
    samples="$samples $(rss_kib "$PID_fleet")"
done
wait $soak
echo "  $samples"
awk '/Requests\/sec/ {print "  " $2 " req/s"}' "$WORK/soak.txt"
grep -q "Non-2xx" "$WORK/soak.txt" && { echo "non-2xx answers during the soak" >&2; exit 1; }
echo "done"
