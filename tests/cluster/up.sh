#!/usr/bin/env bash
# A berth cluster on loopback: a throwaway PostgreSQL (.ci/postgres), three
# `berth serve` nodes on it sharing one blob store, and Debian's haproxy in
# front of them, round-robin, health-checking GET /readyz on each node.
#
#   bash tests/cluster/up.sh            starts it, prints the balancer's URL
#                                       and the nodes', and stays in the
#                                       foreground: Ctrl-C (or SIGTERM to the
#                                       pid it prints) stops and removes all
#   bash tests/cluster/up.sh CMD [ARG...]
#                                       starts it, runs CMD with the variables
#                                       below set, then stops and removes all;
#                                       CMD's status is this script's
#
# Variables given to CMD (and printed in the first form):
#   BERTH_CLUSTER_URL       the balancer, http://127.0.0.1:PORT (every node's
#                           --public-url)
#   BERTH_CLUSTER_NODES     the three nodes' URLs, space-separated
#   BERTH_CLUSTER_PIDS      their process ids, in the same order (a test may
#                           SIGKILL one; cleanup copes)
#   BERTH_CLUSTER_LOGS      their log files, in the same order
#   BERTH_CLUSTER_PASSWORD  the administrator's password (user `admin`)
#   BERTH_CLUSTER_DATABASE  the PostgreSQL URL the nodes share
#   BERTH_CLUSTER_SINGLE_URL
#                           a second haproxy frontend in front of the first
#                           node alone (for comparisons: bench/run.sh --only
#                           cluster)
#
# Options (environment):
#   BERTH                   the berth binary (default target/debug/berth)
#   BERTH_CLUSTER_BLOBS     where the blobs go: `shared-dir` (default): one
#                           --data-dir for all nodes, the filesystem store;
#                           `s3`: a throwaway S3 server (moto, .ci/s3), every
#                           node with its own --data-dir and
#                           --blob-store s3://berth-test/cluster
#   BERTH_CLUSTER_NODES_N   how many nodes (default 3)
#   RUST_LOG                the nodes' log filter (default info)
#   BERTH_CLUSTER_SERVE_ARGS
#                           more arguments for every `berth serve` (split at
#                           spaces), e.g. `--access-control false`
#   BERTH_CLUSTER_ENV_FILE  once all is up, also write the variables above to
#                           this file as `export` lines (for a caller that
#                           runs this script in the background)
#   BERTH_CLUSTER_MIGRATE_FROM
#                           the data directory of an embedded registry (not
#                           running): `berth migrate` copies it into the
#                           cluster's database and blob store before the
#                           nodes start, so they serve its users, tokens and
#                           images (tests/cluster/migrate.py)
#   BERTH_CLUSTER_PASSWORD  the administrator's password to report (default: a
#                           new one, given to the first start); with
#                           BERTH_CLUSTER_MIGRATE_FROM, the source's
#
# Everything listens on 127.0.0.1 only, on free ports.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
berth=${BERTH:-$root/target/debug/berth}
blobs=${BERTH_CLUSTER_BLOBS:-shared-dir}
n_nodes=${BERTH_CLUSTER_NODES_N:-3}
read -r -a serve_args <<<"${BERTH_CLUSTER_SERVE_ARGS:-}"

die() { echo "cluster: $*" >&2; exit 1; }
[[ -x $berth ]] || die "no berth binary at $berth: build it (cargo build -p berth) or set BERTH"
command -v haproxy >/dev/null ||
    die "haproxy is missing: apt-get install -y haproxy (.ci/install-deps does)"
command -v python3 >/dev/null || die "python3 is missing: apt-get install -y python3"
command -v curl >/dev/null || die "curl is missing: apt-get install -y curl"
case $blobs in
    shared-dir | s3) ;;
    *) die "BERTH_CLUSTER_BLOBS=$blobs: shared-dir (one --data-dir for all nodes) or s3 (moto, .ci/s3)" ;;
esac

dir=$(mktemp -d /tmp/berth-cluster.XXXXXX)
pids=() pg_stop="" self=$$
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Stops one process this script started (only while it is still our child).
stop_pid() {
    local pid=$1 i
    [[ $(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ') == "$self" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]] || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    if [[ -n $pg_stop ]]; then bash -c "$pg_stop" >/dev/null 2>&1 || true; fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

out=$(bash "$root/.ci/postgres") || die "cannot start PostgreSQL (.ci/postgres)"
db_url=$(sed -n 1p <<<"$out")
pg_stop=$(sed -n 2p <<<"$out")
pg_stop=${pg_stop#stop with: }

lb_port=$(free_port)
single_port=$(free_port)
public=http://127.0.0.1:$lb_port
password=${BERTH_CLUSTER_PASSWORD:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')}
mkdir -p "$dir/data"

# The blob store: one directory, or one bucket on a moto server started here
# (.ci/s3 prints its endpoint, then serves until it is stopped).
blob_args=() blobs_where="$dir/data (one data directory for all nodes)"
if [[ $blobs == s3 ]]; then
    # The file exists before the server's shell opens it: the loop below
    # may read it first.
    : >"$dir/s3.out"
    bash "$root/.ci/s3" >"$dir/s3.out" 2>"$dir/s3.log" &
    pids+=($!)
    for ((t = 0; t < 300; t++)); do
        endpoint=$(sed -n 1p "$dir/s3.out")
        [[ -z $endpoint ]] || break
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$dir/s3.log" >&2; die "cannot start the S3 server (.ci/s3)"; }
        sleep 0.1
    done
    [[ -n $endpoint ]] || { cat "$dir/s3.log" >&2; die "the S3 server (.ci/s3) printed no endpoint in 30 s"; }
    export AWS_ACCESS_KEY_ID=moto AWS_SECRET_ACCESS_KEY=moto AWS_REGION=us-east-1
    blob_args=(--blob-store s3://berth-test/cluster --s3-endpoint "$endpoint" --s3-path-style true)
    blobs_where="s3://berth-test/cluster at $endpoint (each node's --data-dir is its own)"
fi

# An embedded registry moved in before any node starts: a node's sweep
# would remove blobs whose records are not copied yet, and the first node
# on an empty database would create an administrator of its own.
if [[ -n ${BERTH_CLUSTER_MIGRATE_FROM:-} ]]; then
    migrate_args=(--from "$BERTH_CLUSTER_MIGRATE_FROM" --database-url "$db_url" --progress-interval 5)
    if [[ $blobs == s3 ]]; then migrate_args+=("${blob_args[@]}"); else migrate_args+=(--data-dir "$dir/data"); fi
    echo "cluster: berth migrate ${migrate_args[*]}" >&2
    "$berth" migrate "${migrate_args[@]}" >&2 || die "berth migrate failed (above)"
fi

# The nodes, all at once (the first to reach the database creates the schema
# and the administrator; the others wait for it).
nodes=() logs=() node_pids=()
for ((i = 1; i <= n_nodes; i++)); do
    port=$(free_port)
    log=$dir/node-$i.log
    data=$dir/data
    if [[ $blobs == s3 ]]; then data=$dir/node-$i; fi
    env RUST_LOG="${RUST_LOG:-info}" BERTH_ADMIN_PASSWORD="$password" BERTH_DATABASE_URL="$db_url" \
        "$berth" serve --listen "127.0.0.1:$port" --data-dir "$data" --public-url "$public" \
        "${blob_args[@]}" "${serve_args[@]}" >"$log" 2>&1 &
    pids+=($!) node_pids+=($!) nodes+=("http://127.0.0.1:$port") logs+=("$log")
done
for ((i = 0; i < n_nodes; i++)); do
    for ((t = 0; t < 300; t++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "${nodes[i]}/readyz" || true)
        [[ $code != 200 ]] || break
        kill -0 "${node_pids[i]}" 2>/dev/null || { cat "${logs[i]}" >&2; die "node $((i + 1)) exited"; }
        sleep 0.1
    done
    [[ $code == 200 ]] || { cat "${logs[i]}" >&2; die "node $((i + 1)) not ready after 30 s (/readyz: $code)"; }
done

# The balancer: round-robin, a node out after 2 failed checks 500 ms apart;
# a request whose connection a dead node refuses goes to another (redispatch).
{
    cat <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 60s
    retries 3
    option redispatch
frontend registry
    bind 127.0.0.1:$lb_port
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
EOF
    for ((i = 0; i < n_nodes; i++)); do
        echo "    server node$((i + 1)) ${nodes[i]#http://} check"
    done
    cat <<EOF
frontend single
    bind 127.0.0.1:$single_port
    default_backend first
backend first
    server node1 ${nodes[0]#http://}
EOF
} >"$dir/haproxy.cfg"
haproxy -db -f "$dir/haproxy.cfg" >"$dir/haproxy.log" 2>&1 &
pids+=($!)
for ((t = 0; t < 100; t++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$public/readyz" || true)
    [[ $code != 200 ]] || break
    sleep 0.1
done
[[ $code == 200 ]] || { cat "$dir/haproxy.log" >&2; die "haproxy not answering on $public (/readyz: $code)"; }

export BERTH_CLUSTER_URL=$public BERTH_CLUSTER_NODES="${nodes[*]}" BERTH_CLUSTER_PIDS="${node_pids[*]}"
export BERTH_CLUSTER_LOGS="${logs[*]}" BERTH_CLUSTER_PASSWORD=$password BERTH_CLUSTER_DATABASE=$db_url
export BERTH_CLUSTER_SINGLE_URL=http://127.0.0.1:$single_port
if [[ -n ${BERTH_CLUSTER_ENV_FILE:-} ]]; then
    for v in URL NODES PIDS LOGS PASSWORD DATABASE SINGLE_URL; do
        printf 'export BERTH_CLUSTER_%s=%q\n' "$v" "$(printenv "BERTH_CLUSTER_$v")"
    done >"$BERTH_CLUSTER_ENV_FILE.tmp"
    mv "$BERTH_CLUSTER_ENV_FILE.tmp" "$BERTH_CLUSTER_ENV_FILE"
fi

if (($#)); then
    echo "cluster: $n_nodes nodes behind $public (PostgreSQL $db_url, blobs in $blobs_where) for: $*" >&2
    "$@"
    exit
fi

cat <<EOF
registry (haproxy): $public
nodes:              ${nodes[*]}
node logs:          ${logs[*]}
administrator:      admin / $password
database:           $db_url
blobs:              $blobs_where
haproxy config:     $dir/haproxy.cfg
stop everything with Ctrl-C, or: kill $self
EOF
# Stay in the foreground until a signal (wait returns on one).
while true; do sleep 3600 & pids+=($!); wait $! || true; done

