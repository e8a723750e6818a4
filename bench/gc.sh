#!/usr/bin/env bash
# bench/gc.sh: the garbage collector at scale, on the embedded default
# (SQLite and the filesystem): ROWS blob records of which GARBAGE are named by
# no manifest and queued past their delay; one collection on demand with no
# other load, its time and the server's peak RSS; then as much garbage again,
# and GET manifest and push throughput while a collection runs, against the
# same without one, in the same run. Prints numbers; never asserts thresholds.
#
#   bash bench/gc.sh [--bin PATH] [--rows N] [--garbage M] [--secs S] [--record]
#
#   --bin PATH    the berth binary (default target/dist/berth)
#   --rows N      blob records (default 1000000)
#   --garbage M   of them unreferenced (default 100000)
#   --secs S      seconds of each load measurement (default 5)
#   --record      append the results to BENCHMARKS.md
#
# GC_BENCH_OUT=FILE: also write "<collection s> <reviews/s> <idle RSS MiB>
# <peak RSS MiB> <GET % of without> <push % of without>" there (bench/run.sh
# --only gc).
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

# 1. The collection alone: its time and the server's peak RSS.
log "collecting with no other load"
read -r idle_rss _ < <(python3 "$lib/procwatch.py" status "$pid")
rm -f "$work/stop"
python3 "$lib/procwatch.py" rss "$pid" "$work/stop" "$work/rss-alone" &
watch_pid=$!
alone_start=$(date +%s.%N)
curl -sS --fail-with-body --max-time 3600 -X POST -u "admin:$pw" "$url/api/v1/gc" >"$work/report-alone.json"
alone_end=$(date +%s.%N)
touch "$work/stop"; wait "$watch_pid" || true
read -r alone_peak _ < "$work/rss-alone"

# 2. As much garbage again, then the loads without and during a collection.
stop
python3 "$lib/gc_fill.py" "$work/data" 0 "$garbage" --more 1 >/dev/null
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
read -r _ _ < "$work/rss"
gc_end=$(cat "$work/gc-end")

python3 - "$work" "$gc_start" "$gc_end" "$load_start" "$get_end" "$push_end" "$idle_rss" "$alone_peak" \
    "$rows" "$garbage" "$(rps "$work/get-base.json")" "$(rps "$work/get-gc.json")" \
    "$(rps "$work/push-base.json")" "$(rps "$work/push-gc.json")" \
    "$(bad "$work/get-gc.json")" "$(bad "$work/push-gc.json")" "$alone_start" "$alone_end" >"$work/table.md" <<'PY'
import json, sys
(work, gc_start, gc_end, load_start, get_end, push_end, idle, peak, rows, garbage,
 get_base, get_gc, push_base, push_gc, get_bad, push_bad, alone_start, alone_end) = sys.argv[1:]
gc_start, gc_end, load_start, get_end, push_end = map(float, (gc_start, gc_end, load_start, get_end, push_end))
def reviews(r):
    return sum(r[k]["count"] for k in ("links", "blobs", "reclaimed", "manifests")) + r["kept"]
alone = json.load(open(f"{work}/report-alone.json"))
report = json.load(open(f"{work}/report.json"))
def covered(a, b):
    return max(0.0, min(b, gc_end) - max(a, gc_start)) / (b - a)
secs = float(alone_end) - float(alone_start)
loaded = gc_end - gc_start
print(f"| blob records / unreferenced | {int(rows):,} / {int(garbage):,} |")
print(f"| collection alone: wall time | {secs:.1f} s ({reviews(alone) / secs:,.0f} reviews/s) |")
print(f"| removed: links, blob records, bytes | {alone['links']['count']:,}, {alone['blobs']['count']:,}, "
      f"{alone['reclaimed']['count']:,} ({alone['reclaimed']['bytes']:,} bytes) |")
print(f"| server RSS: idle before / peak during | {int(idle) / 1024:.1f} MiB / {int(peak) / 1024:.1f} MiB |")
print(f"| collection under the loads below: wall time | {loaded:.1f} s ({reviews(report) / loaded:,.0f} reviews/s; "
      f"the collector rests 3x each batch's time while requests are answered) |")
print(f"| GET manifest req/s: without / during (ratio) | {float(get_base):,.0f} / {float(get_gc):,.0f} "
      f"({float(get_gc) / float(get_base):.1%}; collection covered {covered(load_start, get_end):.0%} of the window) |")
print(f"| blob push req/s: without / during (ratio) | {float(push_base):,.0f} / {float(push_gc):,.0f} "
      f"({float(push_gc) / float(push_base):.1%}; collection covered {covered(get_end, push_end):.0%} of the window) |")
if int(get_bad) or int(push_bad):
    print(f"| error responses during the collection | GET {get_bad}, push {push_bad} |")
PY
cat "$work/table.md"
# For bench/run.sh: the raw figures, one line.
if [ -n "${GC_BENCH_OUT:-}" ]; then
    python3 - "$work/report-alone.json" "$alone_start" "$alone_end" "$idle_rss" "$alone_peak" \
        "$(rps "$work/get-base.json")" "$(rps "$work/get-gc.json")" \
        "$(rps "$work/push-base.json")" "$(rps "$work/push-gc.json")" >"$GC_BENCH_OUT" <<'PY'
import json, sys
report, start, end, idle, peak, gb, gg, pb, pg = sys.argv[1:]
r = json.load(open(report))
reviews = sum(r[k]["count"] for k in ("links", "blobs", "reclaimed", "manifests")) + r["kept"]
secs = float(end) - float(start)
print(f"{secs:.1f} {reviews / secs:.0f} {int(idle) / 1024:.1f} {int(peak) / 1024:.1f} "
      f"{100 * float(gg) / float(gb):.1f} {100 * float(pg) / float(pb):.1f}")
PY
fi
if [ "$record" = 1 ]; then
    {
        printf '\n## %s, the garbage collector (bench/gc.sh, berth %s)\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git -C "$root" rev-parse --short HEAD)"
        printf 'Command: `bash bench/gc.sh --bin %s --rows %s --garbage %s --secs %s --record` (%s cores)\n\n' \
            "$bin" "$rows" "$garbage" "$secs" "$(nproc)"
        printf '| measure | value |\n|---|---|\n'
        cat "$work/table.md"
    } >>"$root/BENCHMARKS.md"
    log "appended to BENCHMARKS.md"
fi
