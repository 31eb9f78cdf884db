# Sourced by the load scripts: a scratch directory and the processes they start, both gone
# when the script ends, and `wait_ok`.

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ok() { # url: until it answers 200
    for _ in $(seq 300); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    cat "$WORK"/*.log >&2
    exit 1
}

start_nginx() { # port upstream_port: $NGINX on 127.0.0.1:port, one plain hop to the upstream
    # (a keep-alive upstream pool, no access log); its master's pid in NGINX_MASTER.
    mkdir -p "$WORK/nginx"
    {
        echo "daemon off; master_process on; worker_processes auto;"
        [ "$(id -u)" = 0 ] && echo "user root;"
        echo "pid $WORK/nginx/nginx.pid; error_log $WORK/nginx.log warn;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        echo "  access_log off;"
        echo "  client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;"
        echo "  upstream node { server 127.0.0.1:$2; keepalive 64; }"
        echo "  server {"
        echo "    listen 127.0.0.1:$1;"
        echo "    location / { proxy_pass http://node; proxy_http_version 1.1;"
        echo "                 proxy_set_header Connection \"\"; }"
        echo "  }"
        echo "}"
    } >"$WORK/nginx/nginx.conf"
    "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx.log" -c "$WORK/nginx/nginx.conf" &
    PIDS+=($!)
    NGINX_MASTER=$!
}
