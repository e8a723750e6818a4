#!/usr/bin/env bash
# bench/gc.sh: the garbage collector at scale, on the embedded default
# (SQLite and the filesystem): ROWS blob records of which GARBAGE are named by
# no manifest and queued past their delay; one collection on demand, its time
# and the server's peak RSS; GET manifest and push throughput while it runs,
# against the same without a collection, in the same run. Prints numbers;
# never asserts thresholds.
#
#   bash bench/gc.sh [--bin PATH] [--rows N] [--garbage M] [--secs S] [--record]
#
#   --bin PATH    the berth binary (default target/dist/berth)
#   --rows N      blob records (default 1000000)
#   --garbage M   of them unreferenced (default 100000)
#   --secs S      seconds of each load measurement (default 5)
#   --record      append the results to BENCHMARKS.md
#
# Loads: oha, 32 connections, GET of a manifest by tag with a pull token;
# 16 connections of monolithic blob pushes (POST ?digest=, 4 KiB, the same
# blob: session, hash, commit, record and link each time). The collection is
# started, then the GET load, then the push load run while it goes on; each
# "during" figure says how much of its window the collection covered.
# Everything lives in one temporary directory, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib=$root/bench/lib

bin=target/dist/berth rows=1000000 garbage=100000 secs=5 record=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --rows) rows=$2; shift 2 ;;
        --garbage) garbage=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --record) record=1; shift ;;
        *) echo "usage: bash bench/gc.sh [--bin PATH] [--rows N] [--garbage M] [--secs S] [--record]" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "no berth binary at $bin: cargo build --profile dist, or give --bin" >&2; exit 1; }
command -v oha >/dev/null || { echo "bench/gc.sh needs oha (cargo install oha)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-gc.XXXXXX")
pid="" gc_pid=""
cleanup() {
    for p in $gc_pid $pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
log() { printf '[gc-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

pw=bench-gc-password
port=$(python3 "$lib/reg.py" free-port)
url=http://127.0.0.1:$port
start() {
    env RUST_LOG=warn BERTH_ADMIN_PASSWORD=$pw "$bin" serve --listen "127.0.0.1:$port" \
        --data-dir "$work/data" --gc-interval-secs 0 --gc-delay-secs 3600 \
        --gc-untagged-delay-secs 3600 --token-lifetime-secs 3600 >>"$work/log" 2>&1 &
    pid=$!
    python3 "$lib/reg.py" wait "$url" 30 || { cat "$work/log" >&2; exit 1; }
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

log "creating the registry, then $rows blob records ($garbage unreferenced) in its database"
start
stop
read -r filled _ fill_secs < <(python3 "$lib/gc_fill.py" "$work/data" "$rows" "$garbage")
log "filled $filled records in $fill_secs s"
start
token=$(python3 "$lib/reg.py" token "$url" "repository:bench/load:pull,push" --basic "admin:$pw")
python3 "$lib/reg.py" push-image "$url" bench/load v1 --auth "Bearer $token" >/dev/null
head -c 4096 /dev/urandom >"$work/blob"
blob=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
manifest_url=$url/v2/bench/load/manifests/v1
push_url="$url/v2/bench/load/blobs/uploads/?digest=$blob"
accept="Accept: application/vnd.oci.image.manifest.v1+json"

get_load() { # out
    oha -z "${secs}s" -c 32 --no-tui --output-format json -H "$accept" \
        -H "Authorization: Bearer $token" "$manifest_url" >"$1" 2>"$1.err"
}
push_load() { # out
    oha -z "${secs}s" -c 16 --no-tui --output-format json -m POST -D "$work/blob" \
        -H "Content-Type: application/octet-stream" -H "Authorization: Bearer $token" \
        "$push_url" >"$1" 2>"$1.err"
}
rps() { python3 "$lib/stats.py" oha "$1" | cut -d' ' -f1; }
bad() { python3 "$lib/stats.py" oha "$1" | cut -d' ' -f4; }

log "without a collection: GET manifest, then push, ${secs} s each"
get_load "$work/get-base.json"
push_load "$work/push-base.json"
read -r idle_rss _ < <(python3 "$lib/procwatch.py" status "$pid")

log "collecting: POST /api/v1/gc, with the loads run meanwhile"
rm -f "$work/stop"
python3 "$lib/procwatch.py" rss "$pid" "$work/stop" "$work/rss" &
watch_pid=$!
gc_start=$(date +%s.%N)
(curl -sS --fail-with-body --max-time 3600 -X POST -u "admin:$pw" "$url/api/v1/gc" >"$work/report.json"; date +%s.%N >"$work/gc-end") &
gc_pid=$!
sleep 0.2
load_start=$(date +%s.%N)
get_load "$work/get-gc.json"
get_end=$(date +%s.%N)
push_load "$work/push-gc.json"
push_end=$(date +%s.%N)
wait "$gc_pid"; gc_pid=""
touch "$work/stop"; wait "$watch_pid" || true
read -r peak_rss hwm < "$work/rss"
gc_end=$(cat "$work/gc-end")

python3 - "$work" "$gc_start" "$gc_end" "$load_start" "$get_end" "$push_end" "$idle_rss" "$peak_rss" \
    "$rows" "$garbage" "$(rps "$work/get-base.json")" "$(rps "$work/get-gc.json")" \
    "$(rps "$work/push-base.json")" "$(rps "$work/push-gc.json")" \
    "$(bad "$work/get-gc.json")" "$(bad "$work/push-gc.json")" >"$work/table.md" <<'PY'
import json, sys
(work, gc_start, gc_end, load_start, get_end, push_end, idle, peak, rows, garbage,
 get_base, get_gc, push_base, push_gc, get_bad, push_bad) = sys.argv[1:]
gc_start, gc_end, load_start, get_end, push_end = map(float, (gc_start, gc_end, load_start, get_end, push_end))
report = json.load(open(f"{work}/report.json"))
def covered(a, b):
    return max(0.0, min(b, gc_end) - max(a, gc_start)) / (b - a)
secs = gc_end - gc_start
reviews = sum(report[k]["count"] for k in ("links", "blobs", "reclaimed", "manifests")) + report["kept"]
print(f"| blob records / unreferenced | {int(rows):,} / {int(garbage):,} |")
print(f"| collection: wall time | {secs:.1f} s ({reviews / secs:,.0f} reviews/s) |")
print(f"| removed: links, blob records, bytes | {report['links']['count']:,}, {report['blobs']['count']:,}, "
      f"{report['reclaimed']['count']:,} ({report['reclaimed']['bytes']:,} bytes) |")
print(f"| server RSS: idle before / peak during | {int(idle) / 1024:.1f} MiB / {int(peak) / 1024:.1f} MiB |")
print(f"| GET manifest req/s: without / during (ratio) | {float(get_base):,.0f} / {float(get_gc):,.0f} "
      f"({float(get_gc) / float(get_base):.1%}; collection covered {covered(load_start, get_end):.0%} of the window) |")
print(f"| blob push req/s: without / during (ratio) | {float(push_base):,.0f} / {float(push_gc):,.0f} "
      f"({float(push_gc) / float(push_base):.1%}; collection covered {covered(get_end, push_end):.0%} of the window) |")
if int(get_bad) or int(push_bad):
    print(f"| error responses during the collection | GET {get_bad}, push {push_bad} |")
PY
cat "$work/table.md"
if [ "$record" = 1 ]; then
    {
        printf '\n### Garbage collection (%s, %s)\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$(git -C "$root" rev-parse --short HEAD)"
        printf 'Command: `bash bench/gc.sh --bin %s --rows %s --garbage %s --secs %s --record` (%s cores)\n\n' \
            "$bin" "$rows" "$garbage" "$secs" "$(nproc)"
        printf '| measure | value |\n|---|---|\n'
        cat "$work/table.md"
    } >>"$root/BENCHMARKS.md"
    log "appended to BENCHMARKS.md"
fi
