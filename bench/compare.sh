#!/usr/bin/env bash
# bench/compare.sh: two berth binaries side by side on the hot read paths, to
# tell whether a change cost throughput. Each binary serves an open registry
# (--access-control false) on 127.0.0.1 with one small image; GET manifest
# (wrk) and HEAD blob (oha) at 32 connections, RUNS runs each, the two
# binaries alternating; medians and the ratio B/A printed, for throughput and
# for the server's CPU time per request (utime + stime from /proc over the
# run, divided by the requests served: less sensitive than req/s to other
# work on a shared machine, which takes cores but not the server's CPU time).
# Numbers only.
#
#   bash bench/compare.sh A_BINARY B_BINARY [RUNS] [SECONDS]
#
# e.g. after `git worktree add /tmp/before <commit>` and a `cargo build
# --profile dist` (or `--release` for commits before the dist profile) there:
#   bash bench/compare.sh /tmp/before/target/release/berth target/dist/berth 5 10
set -euo pipefail

[[ $# -ge 2 ]] || { sed -n '2,12p' "$0"; exit 2; }
A=$1 B=$2 RUNS=${3:-5} DUR=${4:-10}
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib
OHA=${OHA:-$HOME/.cargo/bin/oha}
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
TMP=$(mktemp -d -t berth-compare.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

for tool in wrk "$OHA" curl python3; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool is needed (bench/run.sh installs it)" >&2; exit 1; }
done

declare -A URL MAN BLOB PID
for which in A B; do
    bin=${!which}
    port=$(python3 "$LIB/reg.py" free-port)
    mkdir -p "$TMP/$which"
    RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$TMP/$which/data" \
        --access-control false >"$TMP/$which/log" 2>&1 &
    PIDS+=($!)
    PID[$which]=$!
    URL[$which]=http://127.0.0.1:$port
    python3 "$LIB/reg.py" wait "${URL[$which]}" 20
    read -r layer _ < <(python3 "$LIB/reg.py" push-image "${URL[$which]}" bench/small v1)
    MAN[$which]=${URL[$which]}/v2/bench/small/manifests/v1
    BLOB[$which]=${URL[$which]}/v2/bench/small/blobs/$layer
    wrk -t2 -c32 -d2s -H "Accept: $OCI_MANIFEST" "${MAN[$which]}" >/dev/null 2>&1
done

# The server's CPU time so far, in clock ticks (utime + stime).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Microseconds of server CPU per request: TICKS over RPS * DUR requests.
us_per_request() {
    python3 -c 'import os, sys; t, rps, dur = map(float, sys.argv[1:]); hz = os.sysconf("SC_CLK_TCK"); print(f"{t / hz * 1e6 / (rps * dur):.2f}")' "$@"
}

declare -A GET HEAD GET_CPU HEAD_CPU
for ((r = 1; r <= RUNS; r++)); do
    for which in A B; do
        before=$(cpu_ticks "${PID[$which]}")
        wrk -t2 -c32 -d"${DUR}s" --latency -H "Accept: $OCI_MANIFEST" "${MAN[$which]}" >"$TMP/get.out" 2>&1
        read -r rps _ < <(python3 "$LIB/stats.py" wrk "$TMP/get.out")
        GET[$which]+="$rps "
        GET_CPU[$which]+="$(us_per_request $(($(cpu_ticks "${PID[$which]}") - before)) "$rps" "$DUR") "
        before=$(cpu_ticks "${PID[$which]}")
        "$OHA" -z "${DUR}s" -c 32 -m HEAD --no-tui --output-format json "${BLOB[$which]}" >"$TMP/head.out" 2>/dev/null
        read -r rps _ < <(python3 "$LIB/stats.py" oha "$TMP/head.out")
        HEAD[$which]+="$rps "
        HEAD_CPU[$which]+="$(us_per_request $(($(cpu_ticks "${PID[$which]}") - before)) "$rps" "$DUR") "
        echo "run $r $which: GET manifest $(echo "${GET[$which]}" | awk '{print $NF}') req/s" \
            "($(echo "${GET_CPU[$which]}" | awk '{print $NF}') us CPU/req)," \
            "HEAD blob $(echo "${HEAD[$which]}" | awk '{print $NF}') req/s" \
            "($(echo "${HEAD_CPU[$which]}" | awk '{print $NF}') us CPU/req)" >&2
    done
done

median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
for metric in GET HEAD; do
    declare -n values=$metric
    a=$(median ${values[A]})
    b=$(median ${values[B]})
    python3 -c 'import sys; a, b = float(sys.argv[2]), float(sys.argv[3]); print(f"{sys.argv[1]}: A {a:,.0f} req/s, B {b:,.0f} req/s, B/A {b / a:.3f}")' \
        "$([[ $metric == GET ]] && echo "GET manifest, 32 conns" || echo "HEAD blob, 32 conns")" "$a" "$b"
    unset -n values
done
for metric in GET_CPU HEAD_CPU; do
    declare -n values=$metric
    a=$(median ${values[A]})
    b=$(median ${values[B]})
    python3 -c 'import sys; a, b = float(sys.argv[2]), float(sys.argv[3]); print(f"{sys.argv[1]}: server CPU per request A {a:.2f} us, B {b:.2f} us, B/A {b / a:.3f}")' \
        "$([[ $metric == GET_CPU ]] && echo "GET manifest, 32 conns" || echo "HEAD blob, 32 conns")" "$a" "$b"
    unset -n values
done
