#!/usr/bin/env bash
# bench/migrate.sh: how long `berth migrate` takes to move an embedded
# registry of a known size into PostgreSQL and S3 (a throwaway cluster from
# .ci/postgres, moto from .ci/s3), or into another data directory: a first
# run, and one with nothing new. Prints numbers; never asserts thresholds.
#
#   bash bench/migrate.sh [--bin PATH] [--images N] [--mib M] [--to s3|dir] [--jobs J]
#
#   --bin PATH   the berth binary (default target/release/berth)
#   --images N   images in the registry (default 20)
#   --mib M      MiB of random bytes per image, one layer (default 51: ~1 GiB in all)
#   --to WHERE   s3 (default): PostgreSQL and S3; dir: another data directory
#                (SQLite and the filesystem, on the same disk)
#   --jobs J     blobs copied at once (default: berth migrate's, 4)
#
# Needs /usr/bin/time (GNU time) for the migration's peak RSS, and moto in
# .venv for --to s3 (bash .ci/install-deps). Everything lives in one
# temporary directory, removed at the end; what it starts (a berth serve,
# PostgreSQL, moto) is stopped at the end, nothing else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

bin=target/release/berth
images=20
mib=51
to=s3
jobs=4
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --to) to=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        *) echo "usage: bash bench/migrate.sh [--bin PATH] [--images N] [--mib M] [--to s3|dir] [--jobs J]" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "no berth binary at $bin: cargo build --release, or give --bin" >&2; exit 1; }
case $to in s3 | dir) ;; *) echo "--to s3 or --to dir" >&2; exit 2 ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-migrate.XXXXXX")
server_pid="" s3_pid="" pg_stop=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; fi
    if [ -n "$pg_stop" ]; then bash -c "$pg_stop" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The source: an embedded registry filled by `berth push`, then stopped.
export BERTH_USERNAME=admin BERTH_PASSWORD=bench-migrate-password
. "$root/bench/lib/embedded.sh"
start_embedded "$work/source"
push_images 1 "$images"
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""

# The target.
target=(--data-dir "$work/target")
if [ "$to" = s3 ]; then
    out=$(bash "$root/.ci/postgres")
    pg_stop=$(sed -n 2p <<<"$out")
    pg_stop=${pg_stop#stop with: }
    bash "$root/.ci/s3" >"$work/s3.out" 2>"$work/s3.log" &
    s3_pid=$!
    for _ in $(seq 300); do
        endpoint=$(sed -n 1p "$work/s3.out")
        [ -n "$endpoint" ] && break
        sleep 0.1
    done
    [ -n "$endpoint" ] || { cat "$work/s3.log" >&2; exit 1; }
    export AWS_ACCESS_KEY_ID=moto AWS_SECRET_ACCESS_KEY=moto AWS_REGION=us-east-1
    export BERTH_DATABASE_URL
    BERTH_DATABASE_URL=$(sed -n 1p <<<"$out")
    target=(--blob-store s3://berth-test/bench --s3-endpoint "$endpoint" --s3-path-style true)
fi

migrate() { # label
    sync
    /usr/bin/time -f %M -o "$work/rss" \
        "$bin" migrate -q --from "$work/source" "${target[@]}" --jobs "$jobs" --output json \
        >"$work/out.json"
    python3 - "$1" "$work/out.json" "$work/rss" <<'EOF'
import json, sys
label, path, rss = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
kib = int(open(rss).read().split()[-1])
mb = r["bytesCopied"] / 1e6
print(f"| {label} | {r['blobs']['total']} | {r['bytesTotal'] / 2**30:.2f} GiB "
      f"| {r['blobs']['copied']} ({mb:.0f} MB) | {r['blobs']['present']} | {r['seconds']:.2f} s "
      f"| {mb / r['seconds']:.0f} MB/s | {kib / 1024:.1f} MiB |")
EOF
}

echo "berth migrate of $images images of $mib MiB to $to, $jobs at once ($(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs)"
echo
echo "| run | blobs | registry size | copied | already there | time | rate | peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
migrate "first"
migrate "nothing new"
