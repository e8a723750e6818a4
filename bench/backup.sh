#!/usr/bin/env bash
# bench/backup.sh: how long `berth backup` takes for a registry of a known
# size: a first backup, an incremental one after a few more pushes, and one
# with nothing new. Prints numbers; never asserts thresholds.
#
#   bash bench/backup.sh [--bin PATH] [--images N] [--mib M] [--more K] [--cold]
#
#   --bin PATH   the berth binary (default target/release/berth)
#   --images N   images in the registry (default 20)
#   --mib M      MiB of random bytes per image, one layer (default 51: ~1 GiB in all)
#   --more K     images pushed between the first and second backup (default 2)
#   --cold       drop the page cache before each backup (needs root), so that
#                the blobs are read from disk, not memory
#
# Needs /usr/bin/time (GNU time) for the backup's peak RSS. Everything lives
# in one temporary directory on disk, removed at the end;
# the server it starts on 127.0.0.1 is stopped at the end, nothing else.
set -euo pipefail

bin=target/release/berth
images=20
mib=51
more=2
cold=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$2; shift 2 ;;
        --images) images=$2; shift 2 ;;
        --mib) mib=$2; shift 2 ;;
        --more) more=$2; shift 2 ;;
        --cold) cold=1; shift ;;
        *) echo "usage: bash bench/backup.sh [--bin PATH] [--images N] [--mib M] [--more K] [--cold]" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "no berth binary at $bin: cargo build --release, or give --bin" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-backup.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export BERTH_USERNAME=admin BERTH_PASSWORD=bench-backup-password
. "$(dirname "$0")/lib/embedded.sh"
start_embedded "$work/data"

backup() { # label
    sync
    if [ "$cold" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
    /usr/bin/time -f %M -o "$work/rss" \
        "$bin" backup -q --data-dir "$work/data" "$work/backup" --output json >"$work/out.json"
    python3 - "$1" "$work/out.json" "$work/rss" <<'EOF'
import json, sys
label, path, rss = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
kib = int(open(rss).read().split()[-1])
mb = r["bytesCopied"] / 1e6
print(f"| {label} | {r['repositories']} | {r['blobs']['total']} | {r['bytesTotal'] / 2**30:.2f} GiB "
      f"| {r['blobs']['copied']} ({mb:.0f} MB) | {r['blobs']['existing']} | {r['seconds']:.2f} s "
      f"| {mb / r['seconds']:.0f} MB/s | {kib / 1024:.1f} MiB |")
EOF
}

push_images 1 "$images"
echo "berth backup of $images images of $mib MiB ($(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, cold cache: $cold)"
echo
echo "| backup | repositories | blobs | registry size | copied | already there | time | rate | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
backup "first"
push_images "$((images + 1))" "$((images + more))"
backup "after $more more images"
backup "nothing new"
