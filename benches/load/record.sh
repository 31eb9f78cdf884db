#!/usr/bin/env bash
# Records the canned nodes' answers (benches/load/fixtures/) from a running Meilisearch node.
#
#   MEILI_MASTER_KEY=... benches/load/record.sh http://127.0.0.1:7700
#
# Use a scratch node: the script creates the index `products` there (it must not exist) and
# loads it through a miroir gateway started for the purpose, so that, as on a node of a fleet,
# the documents carry the shard tag and the insertion order, and the settings keep them
# filterable and sortable. Then it asks the node
# directly what a gateway asks a node during the load benchmark, and saves the answers byte for
# byte, with the client requests the benchmark sends (request-*.json).
# Needs: curl, python3, cargo.
set -euo pipefail

NODE=${1:?usage: $0 NODE_URL}
NODE=${NODE%/}
KEY=${MEILI_MASTER_KEY:-}
PORT=${PORT:-18090}
INDEX=products
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$HERE/fixtures

# The same build as gateway.sh (with the example, so no second feature set is compiled).
(cd "$ROOT" && cargo build --quiet --locked --release --bin miroir --example canned_node)
MIROIR=${CARGO_TARGET_DIR:-$ROOT/target}/release/miroir

WORK=$(mktemp -d)
GATEWAY=
cleanup() {
    [ -n "$GATEWAY" ] && kill "$GATEWAY" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

auth=()
[ -n "$KEY" ] && auth=(-H "Authorization: Bearer $KEY")

# call METHOD URL [BODY_FILE]: the answer's body in $WORK/body, its status printed.
call() {
    local args=(-s -o "$WORK/body" -w '%{http_code}' -X "$1" "${auth[@]}")
    [ $# -gt 2 ] && args+=(-H 'Content-Type: application/json' --data-binary "@$3")
    curl "${args[@]}" "$2"
}
json() { python3 -c "import json,sys; print(json.load(open('$WORK/body'))$1)"; }
wait_task() { # base-url uid
    for _ in $(seq 600); do
        [ "$(call GET "$1/tasks/$2")" = 200 ] || { cat "$WORK/body" >&2; exit 1; }
        case $(json '["status"]') in
        succeeded) return 0 ;;
        failed | canceled) cat "$WORK/body" >&2 && exit 1 ;;
        esac
        sleep 0.2
    done
    echo "task $2 of $1 did not finish" >&2
    exit 1
}
# enqueue METHOD URL [BODY_FILE]: the call, which must be accepted, and its task finished.
enqueue() {
    local base=${2%%/indexes*}
    local status
    status=$(call "$@")
    [ "$status" = 202 ] || { echo "$1 $2: $status $(cat "$WORK/body")" >&2; exit 1; }
    wait_task "$base" "$(json '["taskUid"]')"
}
# record NAME STATUS METHOD PATH [BODY_FILE]: the node's answer saved as fixtures/NAME.
record() {
    local name=$1 want=$2 status
    shift 2
    status=$(call "$1" "$NODE$2" "${@:3}")
    [ "$status" = "$want" ] || { echo "$1 $2: $status (not $want) $(cat "$WORK/body")" >&2; exit 1; }
    { cat "$WORK/body"; echo; } >"$OUT/$name"
    echo "recorded $name ($status)"
}
compact() { python3 -c "import json,sys; json.dump(json.loads(sys.argv[1]), sys.stdout, separators=(',', ':'), ensure_ascii=False)" "$1"; }

[ "$(call GET "$NODE/health")" = 200 ] || { echo "no node at $NODE" >&2; exit 1; }
[ "$(call GET "$NODE/indexes/$INDEX")" = 404 ] || { echo "$NODE already has an index $INDEX" >&2; exit 1; }

# A gateway over this one node loads the index.
{
    printf '[server]\nlisten = "127.0.0.1:%s"\nmetrics_listen = "127.0.0.1:%s"\n' "$PORT" "$((PORT + 1))"
    printf 'data_dir = "%s"\nlog_level = "warn"\n' "$WORK/data"
    printf 'pid_file = "%s"\nupgrade_sock = "%s"\n' "$WORK/pid" "$WORK/upgrade.sock"
    printf '[[nodes]]\nid = "recorded"\nurl = "%s"\n' "$NODE"
} >"$WORK/miroir.toml"
MIROIR_MASTER_KEY=$KEY "$MIROIR" --config "$WORK/miroir.toml" 2>"$WORK/miroir.log" &
GATEWAY=$!
GW=http://127.0.0.1:$PORT
for _ in $(seq 100); do
    [ "$(call GET "$GW/health")" = 200 ] && break
    sleep 0.1
done
echo "{\"uid\":\"$INDEX\",\"primaryKey\":\"id\"}" >"$WORK/create.json"
enqueue POST "$GW/indexes" "$WORK/create.json"
echo '{"filterableAttributes":["brand","category"]}' >"$WORK/settings.json"
enqueue PATCH "$GW/indexes/$INDEX/settings" "$WORK/settings.json"
python3 "$HERE/documents.py" 2000 >"$WORK/documents.json"
enqueue POST "$GW/indexes/$INDEX/documents" "$WORK/documents.json"
kill "$GATEWAY"
wait "$GATEWAY" 2>/dev/null || true
GATEWAY=

# The client requests of the benchmark, and what a gateway sends a node for them.
search='{"q":"red","limit":20}'
shard_search='{"q":"red","limit":20,"offset":0,"showRankingScore":true,"showRankingScoreDetails":true}'
compact "$search" >"$OUT/request-search.json" && echo >>"$OUT/request-search.json"
echo "$shard_search" >"$WORK/shard-search.json"
multi='{"queries":[{"indexUid":"products","q":"red","limit":20},{"indexUid":"products","q":"garden","limit":20}]}'
shard_multi='{"queries":[{"indexUid":"products","q":"red","limit":20,"offset":0,"showRankingScore":true,"showRankingScoreDetails":true},{"indexUid":"products","q":"garden","limit":20,"offset":0,"showRankingScore":true,"showRankingScoreDetails":true}]}'
compact "$multi" >"$OUT/request-multi-search.json" && echo >>"$OUT/request-multi-search.json"
echo "$shard_multi" >"$WORK/shard-multi.json"
python3 - "$WORK/documents.json" "$OUT/request-documents.json" <<'EOF'
import json, sys
docs = json.load(open(sys.argv[1]))[:2]
with open(sys.argv[2], "w") as f:
    json.dump(docs, f, separators=(",", ":"), ensure_ascii=False)
    f.write("\n")
EOF

record health.json 200 GET /health
record version.json 200 GET /version
record indexes.json 200 GET "/indexes?limit=100000"
record keys.json 200 GET "/keys?offset=0&limit=1000"
record index.json 200 GET "/indexes/$INDEX"
record settings.json 200 GET "/indexes/$INDEX/settings"
record document.json 200 GET "/indexes/$INDEX/documents/1"
# What a gateway asks the nodes before writing documents into an existing index: the
# insertion order the benchmark's two documents already have.
echo '{"ids":["0","1"],"fields":["id","_miroir_order"],"limit":2}' >"$WORK/order-fetch.json"
record documents-fetch.json 200 POST "/indexes/$INDEX/documents/fetch" "$WORK/order-fetch.json"
record search.json 200 POST "/indexes/$INDEX/search" "$WORK/shard-search.json"
record multi-search.json 200 POST /multi-search "$WORK/shard-multi.json"
printf '{' >"$WORK/malformed"
record malformed-payload.json 400 POST "/indexes/$INDEX/search" "$WORK/malformed"
: >"$WORK/empty"
record missing-payload.json 400 POST "/indexes/$INDEX/documents?primaryKey=id" "$WORK/empty"

# A write as a node receives it (documents with their shard tags, as stored), and its task.
for id in 0 1; do
    [ "$(call GET "$NODE/indexes/$INDEX/documents/$id")" = 200 ] || exit 1
    cp "$WORK/body" "$WORK/doc-$id.json"
done
python3 -c "import json,sys; json.dump([json.load(open(f)) for f in sys.argv[1:]], sys.stdout)" \
    "$WORK/doc-0.json" "$WORK/doc-1.json" >"$WORK/tagged.json"
record documents-write.json 202 POST "/indexes/$INDEX/documents?primaryKey=id" "$WORK/tagged.json"
uid=$(python3 -c "import json; print(json.load(open('$OUT/documents-write.json'))['taskUid'])")
wait_task "$NODE" "$uid"
[ "$(call GET "$NODE/tasks?uids=$uid&limit=1")" = 200 ] || exit 1
# One task of the listing (the canned node repeats it for every uid asked); the listing's
# compact JSON has it as is.
python3 - "$WORK/body" "$OUT/task.json" <<'EOF'
import json, sys
task = json.load(open(sys.argv[1]))["results"][0]
with open(sys.argv[2], "w") as f:
    json.dump(task, f, separators=(",", ":"), ensure_ascii=False)
    f.write("\n")
EOF
echo "recorded task.json"
