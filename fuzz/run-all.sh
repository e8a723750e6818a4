#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for RUNS executions, and prints
# one summary line per target: its result and libFuzzer's final `Done` line.
#
#   fuzz/run-all.sh [RUNS] [TARGET...]     RUNS defaults to 1000000; all targets by default
#
# Each target reads fuzz/corpus/<target> (created, gitignored; new inputs are
# written there) and fuzz/seeds/<target> (committed). The full libFuzzer output
# goes to fuzz/corpus/<target>.log; a crashing input to fuzz/artifacts/<target>/.
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets cargo-fuzz use `-Z` flags.
# Exits non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

runs=${1:-1000000}
[[ $# -gt 0 ]] && shift
if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Build everything first, so that the timings below are fuzzing only.
cargo fuzz build >/dev/null 2>&1 || { cargo fuzz build; exit 1; }

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    log="corpus/$t.log"
    if cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- -runs="$runs" -max_len=4096 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED(exit $?)"
        status=1
    fi
    done_line=$(grep -E '^Done [0-9]+ runs in' "$log" | tail -n 1)
    crash=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -n 1)
    printf '%-15s %-8s %s%s\n' "$t" "$result" "${done_line:-(no Done line; see $log)}" "${crash:+ ; $crash}"
done
exit "$status"
