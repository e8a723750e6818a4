#!/usr/bin/env bash
# bench/run.sh: berth against CNCF distribution (Debian's docker-registry) on
# 127.0.0.1, in the same run, alternating (berth, distribution, berth, ...),
# medians reported. Prints numbers; never asserts thresholds.
#
#   bash bench/run.sh                   full run (3 runs each, 1 GiB blob, 100k repos)
#   bash bench/run.sh --quick           CI smoke run (< 2 min), not recorded
#   bash bench/run.sh --only catalog    one section: load | auth | transfer | catalog |
#                                       catalog-pg | cluster | image | uploads | copy | s3 | gc
#                                       (not recorded)
#
# Everything it starts it stops (trap on EXIT), and it stops nothing else.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bash bench/run.sh [--quick] [--only SECTION] [--record] [--runs N] [--perf DIR]

  --quick       small sizes: 64 MiB blob, 1 s load runs, 1 run each,
                200 and 2,000 repositories for the catalog, a 10 MB image,
                10 concurrent 1 MiB uploads, a 64 MiB image to copy
  --only S      run one section: load (GET manifest, HEAD blob),
                tls (GET manifest over TLS, beside plain HTTP),
                robust (/v2/ latency under 200 slowloris and 1,100 idle
                connections with a 1024 fd limit; RSS after 600 large
                tokens and after 2,000 password checks),
                auth (GET manifest with credentials, token issuance),
                transfer (dd, push, pull, RSS), catalog,
                catalog-pg (berth's catalog pages on PostgreSQL, a
                throwaway cluster from .ci/postgres, at both sizes),
                cluster (GET manifest, HEAD blob through haproxy to 3
                berth nodes on PostgreSQL, against one of those nodes
                directly and behind haproxy alone: tests/cluster/up.sh),
                image (skopeo push and pull of a ~50 MB multi-layer image),
                uploads (server RSS during 100 concurrent 10 MiB uploads),
                copy (`berth copy` and `skopeo copy` of a 1 GiB image
                between two berth instances),
                s3 (push and pull of a 1 GiB blob with both registries
                storing blobs in S3: one moto server, a bucket each),
                gc (berth's garbage collector: 100,000 unreferenced among
                1,000,000 blob records, its time and peak RSS, GET manifest
                and push throughput during it against without: bench/gc.sh;
                distribution collects offline only),
                ui (berth's web pages: explore at 10,000 repositories, a
                repository page of 10,000 tags, a manifest page: server
                time at one connection and page weight),
                events (webhook deliveries per second draining a backlog
                of 10,000 pushes, to one repository and to 10,000),
                proxy (a 1 GiB blob pulled directly from an upstream
                distribution and cold and warm through berth's and
                distribution's pull-through caches; 20 clients at once
                on a cold 200 MiB blob; the cold pull again with the
                upstream across a 1 and a 2.5 Gbit/s link,
                BENCH_PROXY_LINKS)
  --record      append the table to BENCHMARKS.md also with --quick or
                --only (a full run always appends)
  --runs N      runs per registry and metric (default 3; 1 with --quick)
  --perf DIR    record `perf record -g` of berth during its first run of
                each load and auth measurement and of the push, into DIR
Environment: OHA (path to oha), BENCH_TMPDIR (where the temp dir goes),
BENCH_PROFILE (the cargo profile berth is built with: dist, the default,
as released; release or dev for a smoke run that only checks the harness;
tests: no build, the binaries `cargo test --workspace` left in target/debug,
what CI's --quick run takes instead of a cold fat-LTO build of several
minutes; never for numbers to keep).
EOF
}

QUICK=0 RECORD=0 ONLY="" RUNS="" PERF_DIR=""
ARGS=("$@")
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --record) RECORD=1 ;;
        --only) ONLY=${2:?--only needs a section}; shift ;;
        --runs) RUNS=${2:?--runs needs a number}; shift ;;
        --perf) PERF_DIR=${2:?--perf needs a directory}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if { ((RECORD)) || [[ $QUICK == 0 && -z $ONLY ]]; } && [[ ${BENCH_PROFILE:-dist} != dist ]]; then
    echo "run.sh: only the dist build's numbers are recorded (--record, or a full run): unset BENCH_PROFILE" >&2
    exit 2
fi
case $ONLY in
    ""|load|tls|auth|transfer|catalog|catalog-pg|cluster|image|uploads|copy|robust|s3|gc|ui|events|proxy) ;;
    *) echo "run.sh: --only load|tls|auth|transfer|catalog|catalog-pg|cluster|image|uploads|copy|robust|s3|gc|ui|events|proxy" >&2; exit 2 ;;
esac

# IMG_*: the multi-layer image (layers x bytes per layer); CONC_*: concurrent
# uploads (how many x bytes each); COPY_MIB: the single-layer image copied.
if ((QUICK)); then
    BLOB_MIB=64 DUR=1 WARM=0 N_SMALL=200 N_LARGE=2000 N_UI=500 N_EV=300
    IMG_LAYERS=5 IMG_LAYER_BYTES=$((2 << 20)) CONC_N=10 CONC_BYTES=$((1 << 20)) COPY_MIB=64
    ROBUST_HOLD=4 ROBUST_PROBES=20 ROBUST_TOKENS=30 ROBUST_CHECKS=20
    RUNS=${RUNS:-1}
else
    BLOB_MIB=1024 DUR=10 WARM=2 N_SMALL=1000 N_LARGE=100000 N_UI=10000 N_EV=10000
    IMG_LAYERS=5 IMG_LAYER_BYTES=$((10 << 20)) CONC_N=100 CONC_BYTES=$((10 << 20)) COPY_MIB=1024
    ROBUST_HOLD=15 ROBUST_PROBES=100 ROBUST_TOKENS=600 ROBUST_CHECKS=1000
    RUNS=${RUNS:-3}
fi
CONNS=(32 256)        # GET manifest / HEAD blob
AUTH_CONNS=32         # GET manifest with credentials, token issuance
CAT_CONNS=8           # catalog pages
NOISE_MAX=0.25        # CPU cores used by outsiders during a run before we warn
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB=$ROOT/bench/lib
OHA=${OHA:-$HOME/.cargo/bin/oha}
SELF=$$
T_START=$(date +%s)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
want() { [[ -z $ONLY || $ONLY == "$1" ]]; }
commas() { python3 -c 'import sys; print(f"{int(sys.argv[1]):,}")' "$1"; }

# ---------------------------------------------------------------- processes
STARTED=()    # every pid this script started in the background
TMP=""

track() { STARTED+=("$1"); }

# Whether pid $1 exists and has not exited (a zombie has exited).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# Stops one process, only if it is still this script's child.
stop_pid() { # pid [name]
    local pid=$1 what=${2:-pid $1} i
    alive "$pid" || { wait "$pid" 2>/dev/null || true; return 0; }
    [[ $(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ') == "$SELF" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "$what (pid $pid) still running 10 s after SIGTERM; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    stop_postgres
    if [[ -n $TMP && -d $TMP ]]; then rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- PostgreSQL
# A throwaway cluster for sections that run berth on PostgreSQL: .ci/postgres
# (Debian's postgresql 15, loopback, a free port, fsync off: it measures
# queries and round trips, not disk flushes), stopped by cleanup. A berth
# started while BERTH_DB holds --database-url URL keeps its metadata there.
PG_URL="" PG_STOP=""
BERTH_DB=()
start_postgres() { # -> PG_URL
    local out
    out=$(bash "$ROOT/.ci/postgres") || { log "cannot start PostgreSQL (.ci/postgres)"; exit 1; }
    PG_URL=$(sed -n 1p <<<"$out")
    PG_STOP=$(sed -n 2p <<<"$out")
    PG_STOP=${PG_STOP#stop with: }
    log "  PostgreSQL at $PG_URL"
}
stop_postgres() {
    if [[ -n $PG_STOP ]]; then bash -c "$PG_STOP" >/dev/null 2>&1 || true; fi
    PG_STOP=""
}
pg_database() { # name -> URL of a new, empty database on the cluster
    /usr/lib/postgresql/15/bin/psql -q "$PG_URL" -c "CREATE DATABASE $1" >/dev/null
    echo "${PG_URL%/*}/$1"
}

# ---------------------------------------------------------------- setup
setup_tools() {
    local need=()
    command -v docker-registry >/dev/null || need+=(docker-registry)
    command -v wrk >/dev/null || need+=(wrk)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    if want auth; then command -v htpasswd >/dev/null || need+=(apache2-utils); fi
    if want image || want copy; then command -v skopeo >/dev/null || need+=(skopeo); fi
    if want cluster || want events; then command -v haproxy >/dev/null || need+=(haproxy); fi
    if ((${#need[@]})); then
        local sudo=()
        ((EUID == 0)) || sudo=(sudo)
        log "installing ${need[*]}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2 ||
            { "${sudo[@]}" apt-get update >&2 &&
                "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >&2; }
    fi
    if { want load || want cluster; } && [[ ! -x $OHA ]]; then
        local waited=0
        while [[ ! -x $OHA ]] && pgrep -f 'cargo install.* oha' >/dev/null; do
            ((waited % 60 == 0)) && log "waiting for a running \`cargo install oha\` (${waited} s)"
            sleep 5; waited=$((waited + 5))
            ((waited < 3600)) || break
        done
        if [[ ! -x $OHA ]]; then
            log "installing oha: cargo install oha --version 1.16.0 --locked"
            cargo install oha --version 1.16.0 --locked >&2
        fi
    fi
    local profile=${BENCH_PROFILE:-dist} profile_dir
    case $profile in
        dist | release) profile_dir=$profile ;;
        dev | tests) profile_dir=debug ;;
        *) log "BENCH_PROFILE=$profile: give dist, release, dev or tests"; exit 2 ;;
    esac
    [[ $profile == dist ]] || log "berth built with the $profile profile: a smoke run, not numbers to keep"
    if [[ $profile == tests ]]; then
        # The binaries `cargo test --workspace` left in target/debug, as they
        # are: building them again by themselves would resolve their
        # dependencies' features without the tests' and compile anew.
        log "using the binaries the tests built (target/debug)"
    else
        log "building berth: cargo build --profile $profile -p berth -p berth-test-issuer"
        (cd "$ROOT" && cargo build --profile "$profile" -p berth -p berth-test-issuer >&2)
    fi
    BERTH=${CARGO_TARGET_DIR:-$ROOT/target}/$profile_dir/berth
    # The auth section's OpenID Connect issuer (workload identity), on loopback.
    ISSUER=${CARGO_TARGET_DIR:-$ROOT/target}/$profile_dir/berth-test-issuer
    [[ -x $BERTH ]] || { log "no binary at $BERTH"; exit 1; }
    # distribution runs without auth; so does berth, where it has a switch
    # for it (its token service needs a bearer token on every request). The
    # auth section starts both with credentials checked (start_server ... auth).
    BERTH_OPEN=()
    if "$BERTH" serve --help 2>/dev/null | grep -q -- '--access-control'; then
        BERTH_OPEN=(--access-control false)
    fi
}

free_port() { python3 "$LIB/reg.py" free-port; }

# Servers: PID[name], URL[name]. Names: <section>-berth, <section>-distribution.
declare -A PID URL
# A command the servers are started under (the robust section: prlimit).
SERVER_PREFIX=(env)

# With "auth": berth with access control on (administrator admin, password
# AUTH_PW), distribution with htpasswd (user admin, bcrypt cost 5, password
# AUTH_PW); their idle RSS is not recorded (that row is the open servers').
# With IDLE_RSS=0 in its environment the idle RSS is not recorded either
# (servers started afresh for every run, so that the row keeps one sample per
# section and registry).
start_server() { # kind (berth|distribution) name [auth]
    local kind=$1 name=$2 auth=${3:-} port dir
    port=$(free_port)
    dir=$TMP/$name
    mkdir -p "$dir/data"
    local scheme=http berth_tls=()
    if [[ -n ${SERVER_TLS:-} ]]; then
        scheme=https
        berth_tls=(--tls-cert "$SERVER_TLS/server.crt" --tls-key "$SERVER_TLS/server.key")
    fi
    # SERVER_S3=<moto endpoint>: blobs in S3 (bucket berth-bench or
    # distribution-bench), the metadata (berth's) on the data directory.
    local berth_s3=()
    if [[ -n ${SERVER_S3:-} ]]; then
        berth_s3=(--blob-store s3://berth-bench/blobs --s3-endpoint "$SERVER_S3"
            --s3-region us-east-1 --s3-path-style true)
    fi
    if [[ $kind == berth && -n $auth ]]; then
        "${SERVER_PREFIX[@]}" env RUST_LOG=warn BERTH_ADMIN_PASSWORD="$AUTH_PW" "$BERTH" serve \
            --listen "127.0.0.1:$port" --data-dir "$dir/data" "${BERTH_DB[@]}" >"$dir/log" 2>&1 &
    elif [[ $kind == berth ]]; then
        "${SERVER_PREFIX[@]}" env RUST_LOG=warn "$BERTH" serve --listen "127.0.0.1:$port" \
            --data-dir "$dir/data" "${BERTH_OPEN[@]}" "${berth_tls[@]}" "${BERTH_DB[@]}" "${berth_s3[@]}" >"$dir/log" 2>&1 &
    else
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$(distribution_storage "$dir")
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
EOF
        if [[ -n ${SERVER_TLS:-} ]]; then
            cat >>"$dir/config.yml" <<EOF
  tls:
    certificate: $SERVER_TLS/server.crt
    key: $SERVER_TLS/server.key
EOF
        fi
        # DIST_REMOTE=<url>: distribution as a pull-through cache of it.
        if [[ -n ${DIST_REMOTE:-} ]]; then
            printf 'proxy:\n  remoteurl: %s\n' "$DIST_REMOTE" >>"$dir/config.yml"
        fi
        if [[ -n $auth ]]; then
            printf '%s\n' "$AUTH_PW" | htpasswd -i -B -C 5 -c "$dir/htpasswd" admin 2>/dev/null
            cat >>"$dir/config.yml" <<EOF
auth:
  htpasswd:
    realm: bench
    path: $dir/htpasswd
EOF
        fi
        "${SERVER_PREFIX[@]}" docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    fi
    PID[$name]=$!
    track "${PID[$name]}"
    URL[$name]=$scheme://127.0.0.1:$port
    if ! python3 "$LIB/reg.py" wait "${URL[$name]}" 20; then
        log "$name did not start; its log:"; cat "$dir/log" >&2; exit 1
    fi
    [[ -z $auth && ${IDLE_RSS:-1} == 1 ]] || return 0
    sleep 1   # let it settle before its idle RSS is read
    local rss hwm
    read -r rss hwm < <(python3 "$LIB/procwatch.py" status "${PID[$name]}")
    record rss.idle "RSS idle after start (MiB)" "$kind" "$(mb "$rss")"
}

stop_server() { stop_pid "${PID[$1]}" "$1"; }

# distribution's storage driver: its filesystem under DIR, or with SERVER_S3
# the S3 driver on the moto server (its own bucket, path-style as it does
# for any regionendpoint, 10 MiB parts as by default, pulls through the
# registry instead of redirects, as berth streams them by default).
distribution_storage() { # dir
    if [[ -z ${SERVER_S3:-} ]]; then
        printf '  filesystem:\n    rootdirectory: %s\n' "$1/data"
        return
    fi
    cat <<EOF
  s3:
    accesskey: moto
    secretkey: moto
    region: us-east-1
    regionendpoint: $SERVER_S3
    bucket: distribution-bench
    rootdirectory: /registry
    secure: false
    v4auth: true
    chunksize: 10485760
  redirect:
    disable: true
EOF
}

mb() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1024:.2f}")' "$1"; }  # kB -> MiB

# ---------------------------------------------------------------- recording
record() { # key label registry value
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TMP/results.tsv"
    log "  $2 [$3] = $4"
}
note() { printf '%s\t%s\tnote-%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TMP/results.tsv"; }
warn() { log "WARNING: $*"; printf 'error\t%s\n' "$*" >>"$TMP/warnings.txt"; }

# Runs "$@" and warns when processes outside this script's tree used more
# than NOISE_MAX CPU cores meanwhile (the machine is shared).
measured() { # description -- command...
    local desc=$1 out cores load top before
    shift
    MEASURED=$((${MEASURED:-0} + 1))
    before=$(cut -d' ' -f1-3 /proc/loadavg)
    log "run: $desc (loadavg $before)"
    python3 "$LIB/procwatch.py" snap "$TMP/cpu.json"
    "$@"
    out=$(python3 "$LIB/procwatch.py" others "$TMP/cpu.json" "$SELF")
    read -r cores load top <<<"$out"
    if python3 -c 'import sys; sys.exit(float(sys.argv[1]) <= float(sys.argv[2]))' "$cores" "$NOISE_MAX"; then
        log "NOISE: $desc: other processes used $cores CPU cores during the run (loadavg before $before; busiest: $top)"
        printf 'noise\t%s\t%s\t%s\n' "$desc" "$cores" "$top" >>"$TMP/warnings.txt"
    fi
}

# With --perf DIR: `perf record -g` of a server while a measurement runs.
PERF_PID=""
perf_start() { # name pid
    PERF_PID=""
    [[ -n $PERF_DIR ]] || return 0
    mkdir -p "$PERF_DIR"
    perf record -g -p "$2" -o "$PERF_DIR/$1.perf.data" >"$PERF_DIR/$1.perf.log" 2>&1 &
    PERF_PID=$!
    track "$PERF_PID"
    sleep 0.5   # let perf attach
}
perf_stop() { # name
    [[ -n $PERF_PID ]] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" || true
    perf report --stdio -i "$PERF_DIR/$1.perf.data" --no-children --percent-limit 1 \
        >"$PERF_DIR/$1.report.txt" 2>/dev/null || true
    log "perf profile: $PERF_DIR/$1.report.txt"
    PERF_PID=""
}

# ---------------------------------------------------------------- 1. load
run_wrk() { # out conns url [header...]
    local out=$1 conns=$2 url=$3 h hs=()
    shift 3
    for h in "$@"; do hs+=(-H "$h"); done
    wrk -t2 -c"$conns" -d"${DUR}s" --latency -H "Accept: $OCI_MANIFEST" "${hs[@]}" "$url" >"$out" 2>&1
}
run_oha_head() { # out conns url
    "$OHA" -z "${DUR}s" -c "$2" -m HEAD --no-tui --output-format json "$3" >"$1" 2>"$1.err"
}

section_load() {
    log "== load: GET manifest (wrk), HEAD blob (oha)"
    local reg name layer code
    declare -A MAN BLOB
    for reg in berth distribution; do
        name=load-$reg
        start_server "$reg" "$name"
        read -r layer _ < <(python3 "$LIB/reg.py" push-image "${URL[$name]}" bench/small v1)
        MAN[$reg]=${URL[$name]}/v2/bench/small/manifests/v1
        BLOB[$reg]=${URL[$name]}/v2/bench/small/blobs/$layer
        code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "${MAN[$reg]}")
        [[ $code == 200 ]] || { log "$reg: GET manifest answered $code"; exit 1; }
        code=$(curl -sS -I -o /dev/null -w '%{http_code}' "${BLOB[$reg]}")
        [[ $code == 200 ]] || { log "$reg: HEAD blob answered $code"; exit 1; }
        if ((WARM)); then
            wrk -t2 -c32 -d"${WARM}s" -H "Accept: $OCI_MANIFEST" "${MAN[$reg]}" >/dev/null 2>&1
        fi
    done
    local test conns r out rps p99 mean bad what tool
    for test in get head; do
        for conns in "${CONNS[@]}"; do
            if [[ $test == get ]]; then what="GET manifest"; else what="HEAD blob"; fi
            for ((r = 1; r <= RUNS; r++)); do
                for reg in berth distribution; do
                    out=$TMP/$test-$conns-$reg-$r.out
                    if [[ $reg == berth && $r == 1 ]]; then perf_start "$test-c$conns" "${PID[load-$reg]}"; fi
                    if [[ $test == get ]]; then
                        tool=wrk
                        measured "$what c=$conns $reg #$r" run_wrk "$out" "$conns" "${MAN[$reg]}"
                    else
                        tool=oha
                        measured "$what c=$conns $reg #$r" run_oha_head "$out" "$conns" "${BLOB[$reg]}"
                    fi
                    if [[ $reg == berth && $r == 1 ]]; then perf_stop "$test-c$conns"; fi
                    read -r rps p99 mean bad < <(python3 "$LIB/stats.py" "$tool" "$out")
                    record "$test.c$conns.rps" "$what, $conns conns (req/s)" "$reg" "$rps"
                    record "$test.c$conns.p99" "$what, $conns conns: p99 (ms)" "$reg" "$p99"
                    ((bad == 0)) || warn "$what c=$conns $reg #$r: $bad error responses or socket errors"
                done
            done
        done
    done
    for reg in berth distribution; do stop_server "load-$reg"; done
}

# ---------------------------------------------------------------- 1b. tls
# GET manifest over TLS: berth and distribution serving the same certificate
# (an ECDSA P-256 server certificate from a CA made here, TLS 1.3 negotiated
# by both), wrk keeping its connections (handshakes only at the start), 32
# connections; berth over plain HTTP in the same run, for the cost of TLS.
make_tls() { # dir
    local dir=$1
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj /CN=bench-ca 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/server.key" -out "$dir/server.csr" -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$dir/ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/ext" -out "$dir/server.crt" 2>/dev/null
    chmod 644 "$dir/server.key"
}

section_tls() {
    log "== tls: GET manifest over TLS (wrk), berth plain HTTP beside it"
    local reg name r out rps p99 mean bad
    declare -A MAN
    make_tls "$TMP/tls"
    export BENCH_CA_FILE=$TMP/tls/ca.crt
    for name in tls-berth tls-distribution tls-berth-plain; do
        reg=${name#tls-}; reg=${reg%-plain}
        if [[ $name == *plain ]]; then SERVER_TLS=""; else SERVER_TLS=$TMP/tls; fi
        IDLE_RSS=0 start_server "$reg" "$name"
        python3 "$LIB/reg.py" push-image "${URL[$name]}" bench/small v1 >/dev/null
        MAN[$name]=${URL[$name]}/v2/bench/small/manifests/v1
        [[ $(curl -sS -o /dev/null -w '%{http_code}' --cacert "$BENCH_CA_FILE" \
            -H "Accept: $OCI_MANIFEST" "${MAN[$name]}") == 200 ]] ||
            { log "$name: GET manifest failed"; exit 1; }
    done
    SERVER_TLS=""
    for ((r = 1; r <= RUNS; r++)); do
        for name in tls-berth tls-distribution tls-berth-plain; do
            reg=${name#tls-}; reg=${reg%-plain}
            out=$TMP/$name-$r.out
            measured "GET manifest $name c=32 #$r" run_wrk "$out" 32 "${MAN[$name]}"
            read -r rps p99 mean bad < <(python3 "$LIB/stats.py" wrk "$out")
            if [[ $name == *plain ]]; then
                record tls.plain.rps "GET manifest, plain HTTP (same run as TLS), 32 conns (req/s)" "$reg" "$rps"
            else
                record tls.rps "GET manifest over TLS 1.3, 32 conns (req/s)" "$reg" "$rps"
                record tls.p99 "GET manifest over TLS 1.3, 32 conns: p99 (ms)" "$reg" "$p99"
            fi
            ((bad == 0)) || warn "GET manifest $name #$r: $bad error responses or socket errors"
        done
    done
    for name in tls-berth tls-distribution tls-berth-plain; do stop_server "$name"; done
    unset BENCH_CA_FILE
}

# ---------------------------------------------------------------- 2. auth
# GET manifest with credentials checked: berth with access control on and a
# pull token (issued before each run, sent as Bearer), distribution with
# htpasswd (Basic on every request, bcrypt cost 5). Then berth's token service:
# a pull token for a public repository, anonymously and with a personal access
# token as the Basic password (distribution has no token service of its own).
expect_code() { # what expected-code url [header...]
    local what=$1 expected=$2 url=$3 h hs=() code
    shift 3
    for h in "$@"; do hs+=(-H "$h"); done
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${hs[@]}" "$url")
    [[ $code == "$expected" ]] || { log "$what answered $code, expected $expected"; exit 1; }
}

check_grant() { # what token
    local access
    access=$(python3 "$LIB/reg.py" access "$2")
    [[ $access == "repository:$AUTH_REPO:pull" ]] ||
        { log "$1 grants \"$access\", not repository:$AUTH_REPO:pull"; exit 1; }
}

# A pull token from berth's token service for the administrator -> AUTH_TOKEN.
pull_token() { # name
    AUTH_TOKEN=$(python3 "$LIB/reg.py" token "${URL[$1]}" "repository:$AUTH_REPO:pull" --basic "admin:$AUTH_PW")
    check_grant "the administrator's pull token" "$AUTH_TOKEN"
}

# The token request answers 200 with a token that grants the pull.
check_token_url() { # what url [header...]
    local what=$1 url=$2 h hs=() out code
    shift 2
    for h in "$@"; do hs+=(-H "$h"); done
    out=$(curl -sS -w '\n%{http_code}' "${hs[@]}" "$url")
    code=${out##*$'\n'} out=${out%$'\n'*}
    [[ $code == 200 ]] || { log "$what: token request answered $code: ${out:0:300}"; exit 1; }
    check_grant "$what" "$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$out")"
}

section_auth() {
    log "== auth: GET manifest with credentials (berth Bearer, distribution htpasswd Basic); berth token issuance"
    local reg name tok_url pat basic_admin basic_pat basic_oidc issuer_url out rps p99 mean bad r test what key
    local -a hdr=()
    declare -A MAN HDR
    AUTH_PW=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
    AUTH_REPO=admin/small   # on berth, admin owns the admin/ namespace
    basic_admin="Authorization: Basic $(printf '%s' "admin:$AUTH_PW" | base64 -w0)"
    # Workload identity: a GitHub Actions-shaped ID token of repository
    # admin/small for audience berth-bench, from an issuer on loopback whose
    # keys berth fetches once and caches (the exchanges measured below).
    "$ISSUER" --audience berth-bench --claims-repository "$AUTH_REPO" \
        --token-out "$TMP/id-token" >"$TMP/issuer.out" 2>&1 &
    track $!
    PID[auth-issuer]=$!
    for _ in $(seq 100); do [[ -s $TMP/issuer.out && -s $TMP/id-token ]] && break; sleep 0.1; done
    issuer_url=$(head -1 "$TMP/issuer.out")
    [[ $issuer_url == http://127.0.0.1:* ]] || { log "the test issuer did not start: $(cat "$TMP/issuer.out")"; exit 1; }
    basic_oidc="Authorization: Basic $(printf '%s' "oidc:$(cat "$TMP/id-token")" | base64 -w0)"
    BERTH_OIDC_ISSUERS="github=$issuer_url" BERTH_OIDC_ALLOW_LOOPBACK_ISSUERS=true \
        start_server berth auth-berth auth
    start_server distribution auth-distribution auth

    name=auth-berth
    MAN[berth]=${URL[$name]}/v2/$AUTH_REPO/manifests/v1
    AUTH_TOKEN=$(python3 "$LIB/reg.py" token "${URL[$name]}" "repository:$AUTH_REPO:pull,push" --basic "admin:$AUTH_PW")
    python3 "$LIB/reg.py" push-image "${URL[$name]}" "$AUTH_REPO" v1 --auth "Bearer $AUTH_TOKEN" >/dev/null
    python3 "$LIB/reg.py" api "${URL[$name]}" PUT /api/v1/repositories/visibility \
        "{\"repository\": \"$AUTH_REPO\", \"visibility\": \"public\"}" --basic "admin:$AUTH_PW" >/dev/null
    pat=$(python3 "$LIB/reg.py" api "${URL[$name]}" POST /api/v1/users/admin/tokens \
        '{"name": "bench", "actions": ["pull", "push"]}' --basic "admin:$AUTH_PW" --field secret)
    basic_pat="Authorization: Basic $(printf '%s' "bench:$pat" | base64 -w0)"
    tok_url=$(python3 "$LIB/reg.py" token-url "${URL[$name]}" "repository:$AUTH_REPO:pull")
    pull_token "$name"
    HDR[berth]="Authorization: Bearer $AUTH_TOKEN"
    expect_code "berth: GET manifest without a token" 401 "${MAN[berth]}" "Accept: $OCI_MANIFEST"
    expect_code "berth: GET manifest with a pull token" 200 "${MAN[berth]}" "Accept: $OCI_MANIFEST" "${HDR[berth]}"
    check_token_url "berth: anonymous token" "$tok_url"
    check_token_url "berth: token for a personal access token" "$tok_url" "$basic_pat"
    python3 "$LIB/reg.py" api "${URL[$name]}" POST /api/v1/trust/admin \
        "{\"name\": \"bench\", \"issuer\": \"$issuer_url\", \"audience\": \"berth-bench\", \"claims\": {\"repository\": \"$AUTH_REPO\", \"ref\": \"refs/heads/*\"}, \"repositories\": [\"$AUTH_REPO\"]}" \
        --basic "admin:$AUTH_PW" >/dev/null
    check_token_url "berth: token for a workload's ID token" "$tok_url" "$basic_oidc"

    name=auth-distribution
    MAN[distribution]=${URL[$name]}/v2/$AUTH_REPO/manifests/v1
    HDR[distribution]=$basic_admin
    python3 "$LIB/reg.py" push-image "${URL[$name]}" "$AUTH_REPO" v1 --auth "${basic_admin#Authorization: }" >/dev/null
    expect_code "distribution: GET manifest without credentials" 401 "${MAN[distribution]}" "Accept: $OCI_MANIFEST"
    expect_code "distribution: GET manifest with Basic" 200 "${MAN[distribution]}" "Accept: $OCI_MANIFEST" "${HDR[distribution]}"

    if ((WARM)); then
        for reg in berth distribution; do
            wrk -t2 -c"$AUTH_CONNS" -d"${WARM}s" -H "Accept: $OCI_MANIFEST" -H "${HDR[$reg]}" "${MAN[$reg]}" >/dev/null 2>&1
        done
        wrk -t2 -c"$AUTH_CONNS" -d"${WARM}s" "$tok_url" >/dev/null 2>&1
        wrk -t2 -c"$AUTH_CONNS" -d"${WARM}s" -H "$basic_pat" "$tok_url" >/dev/null 2>&1
        wrk -t2 -c"$AUTH_CONNS" -d"${WARM}s" -H "$basic_oidc" "$tok_url" >/dev/null 2>&1
    fi

    what="GET manifest with credentials (berth: Bearer token, distribution: htpasswd Basic), $AUTH_CONNS conns"
    for ((r = 1; r <= RUNS; r++)); do
        for reg in berth distribution; do
            name=auth-$reg
            if [[ $reg == berth ]]; then
                pull_token "$name"   # a fresh token before each run (it lives 300 s)
                HDR[berth]="Authorization: Bearer $AUTH_TOKEN"
            fi
            out=$TMP/authget-$reg-$r.out
            if [[ $reg == berth && $r == 1 ]]; then perf_start "authget-c$AUTH_CONNS" "${PID[$name]}"; fi
            measured "GET manifest with credentials c=$AUTH_CONNS $reg #$r" \
                run_wrk "$out" "$AUTH_CONNS" "${MAN[$reg]}" "${HDR[$reg]}"
            if [[ $reg == berth && $r == 1 ]]; then perf_stop "authget-c$AUTH_CONNS"; fi
            read -r rps p99 mean bad < <(python3 "$LIB/stats.py" wrk "$out")
            record "authget.c$AUTH_CONNS.rps" "$what (req/s)" "$reg" "$rps"
            record "authget.c$AUTH_CONNS.p99" "$what: p99 (ms)" "$reg" "$p99"
            ((bad == 0)) || warn "GET manifest with credentials c=$AUTH_CONNS $reg #$r: $bad error responses or socket errors"
        done
    done

    # berth only; the three kinds of token request alternate.
    for ((r = 1; r <= RUNS; r++)); do
        for test in anon pat oidc; do
            if [[ $test == anon ]]; then
                what="token issuance (GET /token), anonymous, public repository, $AUTH_CONNS conns"
                hdr=()
            elif [[ $test == pat ]]; then
                what="token issuance (GET /token), personal access token as Basic password, $AUTH_CONNS conns"
                hdr=("$basic_pat")
            else
                what="token exchange (GET /token), workload ID token (RS256, keys cached) as Basic oidc password, $AUTH_CONNS conns"
                hdr=("$basic_oidc")
            fi
            key=token.$test.c$AUTH_CONNS
            out=$TMP/token-$test-$r.out
            if [[ $r == 1 ]]; then perf_start "token-$test-c$AUTH_CONNS" "${PID[auth-berth]}"; fi
            measured "token issuance $test c=$AUTH_CONNS berth #$r" \
                run_wrk "$out" "$AUTH_CONNS" "$tok_url" "${hdr[@]}"
            if [[ $r == 1 ]]; then perf_stop "token-$test-c$AUTH_CONNS"; fi
            read -r rps p99 mean bad < <(python3 "$LIB/stats.py" wrk "$out")
            record "$key.rps" "$what (req/s)" berth "$rps"
            record "$key.p99" "$what: p99 (ms)" berth "$p99"
            ((bad == 0)) || warn "token issuance $test c=$AUTH_CONNS berth #$r: $bad error responses or socket errors"
        done
    done
    for reg in berth distribution; do stop_server "auth-$reg"; done
    stop_server auth-issuer
}

# ---------------------------------------------------------------- 3. transfer
# Peak VmRSS of server $1 while "${@:2}" runs; sets RSS_PEAK (kB) and RSS_HWM (kB).
with_rss() {
    local pid=$1 wpid
    shift
    rm -f "$TMP/rss.stop" "$TMP/rss.out"
    python3 "$LIB/procwatch.py" rss "$pid" "$TMP/rss.stop" "$TMP/rss.out" &
    wpid=$!
    track "$wpid"
    "$@"
    touch "$TMP/rss.stop"
    wait "$wpid"
    read -r RSS_PEAK RSS_HWM <"$TMP/rss.out"
}

push_blob() { # url repo -> PUSH_SECS
    local loc sep out code
    loc=$(python3 "$LIB/reg.py" upload-url "$1" "$2")
    sep='?'
    if [[ $loc == *\?* ]]; then sep='&'; fi
    out=$(curl -sS -o "$TMP/push.body" -w '%{http_code} %{time_total}' -T "$TMP/blob" \
        -H 'Content-Type: application/octet-stream' -H 'Expect:' "$loc${sep}digest=$DIGEST")
    read -r code PUSH_SECS <<<"$out"
    [[ $code == 201 ]] || { log "push to $1/$2 answered $code: $(head -c 500 "$TMP/push.body")"; exit 1; }
}

pull_blob() { # url repo -> PULL_SECS
    local out code size
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1/v2/$2/blobs/$DIGEST")
    read -r code size PULL_SECS <<<"$out"
    [[ $code == 200 && $size == "$BLOB_BYTES" ]] ||
        { log "pull from $1/$2 answered $code with $size bytes"; exit 1; }
}

run_dd() {
    dd if="$TMP/blob" of="$TMP/dd.out" bs=1M conv=fdatasync 2>"$TMP/dd.txt"
    rm -f "$TMP/dd.out"
}

mbps() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / float(sys.argv[2]) / 1e6:.1f}")' "$1" "$2"; }
ratio() { python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$1" "$2"; }

section_transfer() {
    local size_label reg name r repo
    size_label=$( ((BLOB_MIB >= 1024)) && echo "$((BLOB_MIB / 1024)) GiB" || echo "$BLOB_MIB MiB")
    log "== transfer: dd, push and pull of a $size_label blob, server RSS"
    for reg in berth distribution; do start_server "$reg" "xfer-$reg"; done
    log "generating the $size_label random blob"
    head -c "${BLOB_MIB}M" /dev/urandom >"$TMP/blob"
    BLOB_BYTES=$(stat -c %s "$TMP/blob")
    for ((r = 1; r <= RUNS; r++)); do
        # New content each run (first 64 bytes), so no registry can skip the
        # write because it already holds the blob.
        head -c 64 /dev/urandom | dd of="$TMP/blob" bs=64 count=1 conv=notrunc status=none
        DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
        sync
        measured "dd $size_label conv=fdatasync #$r" run_dd
        record dd.mbps "disk: dd $size_label bs=1M conv=fdatasync (MB/s)" machine \
            "$(python3 "$LIB/stats.py" dd "$TMP/dd.txt")"
        for reg in berth distribution; do
            name=xfer-$reg
            repo=bench/big-r$r
            sync
            if [[ $reg == berth && $r == 1 ]]; then perf_start push "${PID[$name]}"; fi
            measured "push $size_label $reg #$r" with_rss "${PID[$name]}" push_blob "${URL[$name]}" "$repo"
            if [[ $reg == berth && $r == 1 ]]; then perf_stop push; fi
            record push.mbps "push $size_label, POST + PUT (MB/s)" "$reg" "$(mbps "$BLOB_BYTES" "$PUSH_SECS")"
            record rss.push "RSS peak during push (MiB)" "$reg" "$(mb "$RSS_PEAK")"
        done
        for reg in berth distribution; do
            name=xfer-$reg
            measured "pull $size_label $reg #$r" with_rss "${PID[$name]}" pull_blob "${URL[$name]}" bench/big-r$r
            record pull.mbps "pull $size_label (MB/s)" "$reg" "$(mbps "$BLOB_BYTES" "$PULL_SECS")"
            record rss.pull "RSS peak during pull (MiB)" "$reg" "$(mb "$RSS_PEAK")"
        done
    done
    for reg in berth distribution; do
        read -r _ RSS_HWM < <(python3 "$LIB/procwatch.py" status "${PID[xfer-$reg]}")
        record rss.hwm "RSS high-water mark (VmHWM) after all transfers (MiB)" "$reg" "$(mb "$RSS_HWM")"
        stop_server "xfer-$reg"
    done
    rm -f "$TMP/blob"
}

# ---------------------------------------------------------------- 3b. s3
# One moto server (`.ci/s3`'s, from .venv) on loopback, a bucket per
# registry; credentials moto's dummies, in the environment as berth reads them.
start_moto() { # -> SERVER_S3
    local port i log=$TMP/moto.log
    "$ROOT/.venv/bin/python" -c 'import moto.server' 2>/dev/null || bash "$ROOT/.ci/install-deps" >&2
    port=$(free_port)
    "$ROOT/.venv/bin/python" -m moto.server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
    PID[moto]=$!
    track "${PID[moto]}"
    SERVER_S3=http://127.0.0.1:$port
    for ((i = 0; i < 100; i++)); do
        curl -fsS -o /dev/null "$SERVER_S3/moto-api/" 2>/dev/null && break
        sleep 0.1
    done
    curl -fsS -o /dev/null -X PUT "$SERVER_S3/berth-bench"
    curl -fsS -o /dev/null -X PUT "$SERVER_S3/distribution-bench"
    export AWS_ACCESS_KEY_ID=moto AWS_SECRET_ACCESS_KEY=moto
}

section_s3() {
    local size_label reg name r
    size_label=$( ((BLOB_MIB >= 1024)) && echo "$((BLOB_MIB / 1024)) GiB" || echo "$BLOB_MIB MiB")
    log "== s3: push and pull of a $size_label blob with blobs in S3 (moto), server RSS"
    start_moto
    # The AWS SDK of distribution refuses to start when AWS_CA_BUNDLE names
    # a bundle (as some environments set it): moto is plain HTTP anyway.
    local prefix=("${SERVER_PREFIX[@]}")
    SERVER_PREFIX=(env -u AWS_CA_BUNDLE)
    for reg in berth distribution; do IDLE_RSS=0 start_server "$reg" "s3-$reg"; done
    SERVER_PREFIX=("${prefix[@]}")
    head -c "${BLOB_MIB}M" /dev/urandom >"$TMP/blob"
    BLOB_BYTES=$(stat -c %s "$TMP/blob")
    for ((r = 1; r <= RUNS; r++)); do
        head -c 64 /dev/urandom | dd of="$TMP/blob" bs=64 count=1 conv=notrunc status=none
        DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
        for reg in berth distribution; do
            name=s3-$reg
            measured "S3 push $size_label $reg #$r" with_rss "${PID[$name]}" push_blob "${URL[$name]}" bench/s3-r$r
            record s3.push.secs "S3: push $size_label, POST + PUT (s)" "$reg" "$PUSH_SECS"
            record s3.rss.push "S3: RSS peak during push (MiB)" "$reg" "$(mb "$RSS_PEAK")"
        done
        for reg in berth distribution; do
            name=s3-$reg
            measured "S3 pull $size_label $reg #$r" with_rss "${PID[$name]}" pull_blob "${URL[$name]}" bench/s3-r$r
            record s3.pull.secs "S3: pull $size_label (s)" "$reg" "$PULL_SECS"
            record s3.rss.pull "S3: RSS peak during pull (MiB)" "$reg" "$(mb "$RSS_PEAK")"
        done
    done
    for reg in berth distribution; do stop_server "s3-$reg"; done
    stop_pid "${PID[moto]}" moto
    unset SERVER_S3
    rm -f "$TMP/blob"
}

# ---------------------------------------------------------------- 4. catalog
make_repos() { # name start count -> CREATE_RATE
    local out n secs
    out=$(python3 "$LIB/reg.py" mkrepos "${URL[$1]}" catalog/r "$2" "$3" --workers 16)
    read -r n secs <<<"$out"
    CREATE_RATE=$(python3 -c 'import sys; print(f"{int(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$n" "$secs")
    log "  created $n repositories in $1 in $secs s"
}

check_page() { # url expected-count
    local n
    n=$(curl -sS "$1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["repositories"]))')
    [[ $n == "$2" ]] || { log "catalog page $1 had $n names, expected $2"; exit 1; }
}

run_wrk_cat() { # out url
    wrk -t2 -c"$CAT_CONNS" -d"${DUR}s" --latency "$2" >"$1" 2>&1
}

measure_catalog() { # size-key count registries... (CAT_KEY, CAT_ON: key prefix, label suffix)
    local size=$1 count=$2 page r reg out url last rps p99 mean bad label key=${CAT_KEY:-cat}
    shift 2
    last=catalog/r$(printf '%07d' $((count > 300 ? count - 150 : count / 2)))
    for page in first deep; do
        for reg in "$@"; do
            if [[ $page == first ]]; then url=${URL[cat-$reg]}/v2/_catalog?n=100
            else url="${URL[cat-$reg]}/v2/_catalog?n=100&last=${last//\//%2F}"; fi
            check_page "$url" 100
        done
        label="catalog $page page (n=100), $(commas "$count") repos${CAT_ON:-}, $CAT_CONNS conns"
        for ((r = 1; r <= RUNS; r++)); do
            for reg in "$@"; do
                if [[ $page == first ]]; then url=${URL[cat-$reg]}/v2/_catalog?n=100
                else url="${URL[cat-$reg]}/v2/_catalog?n=100&last=${last//\//%2F}"; fi
                out=$TMP/cat-$size-$page-$reg-$r.out
                measured "catalog $page page at $count repos $reg #$r" run_wrk_cat "$out" "$url"
                read -r rps p99 mean bad < <(python3 "$LIB/stats.py" wrk "$out")
                record "$key.$size.$page.rps" "$label (req/s)" "$reg" "$rps"
                record "$key.$size.$page.mean" "$label: mean latency (ms)" "$reg" "$mean"
                ((bad == 0)) || warn "catalog $page c=$CAT_CONNS $reg #$r: $bad error responses or socket errors"
            done
        done
    done
}

section_catalog() {
    log "== catalog: $(commas "$N_SMALL") then $(commas "$N_LARGE") repositories"
    local reg
    for reg in berth distribution; do start_server "$reg" "cat-$reg"; done
    for reg in berth distribution; do
        make_repos "cat-$reg" 0 "$N_SMALL"
        record create.small "create $(commas "$N_SMALL") repos (cross-repo mount of a tiny blob, 16 clients) (repos/s)" "$reg" "$CREATE_RATE"
    done
    measure_catalog small "$N_SMALL" berth distribution
    stop_server cat-distribution
    make_repos cat-berth "$N_SMALL" $((N_LARGE - N_SMALL))
    record create.large "create $(commas $((N_LARGE - N_SMALL))) more repos (same way) (repos/s)" berth "$CREATE_RATE"
    note create.large x distribution "not measured (a)"
    measure_catalog large "$N_LARGE" berth
    local k
    for k in cat.large.first.rps cat.large.first.mean cat.large.deep.rps cat.large.deep.mean; do
        note "$k" x distribution "not measured (a)"
    done
    stop_server cat-berth
}

# ---------------------------------------------------------------- 4b. catalog on PostgreSQL
# The same pages from berth on PostgreSQL (one database, the repositories
# made as in 4.), at both sizes, and the ratio of the large to the small
# page's mean latency (the goal: at most 1.5; the query walks the unique
# index on the name from `last`, so the depth and the count do not matter).
median_of() { # key -> median of the recorded values
    python3 - "$TMP/results.tsv" "$1" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
vals = [float(r[3]) for r in rows if r[0] == sys.argv[2] and not r[2].startswith("note-")]
print(f"{statistics.median(vals):.3f}" if vals else "nan")
PY
}

section_catalog_pg() {
    log "== catalog on PostgreSQL: $(commas "$N_SMALL") then $(commas "$N_LARGE") repositories"
    local page small large
    start_postgres
    BERTH_DB=(--database-url "$(pg_database bench_catalog)")
    start_server berth cat-berth
    BERTH_DB=()
    make_repos cat-berth 0 "$N_SMALL"
    CAT_KEY=pgcat CAT_ON=" on PostgreSQL" measure_catalog small "$N_SMALL" berth
    make_repos cat-berth "$N_SMALL" $((N_LARGE - N_SMALL))
    record pgcat.create "create $(commas $((N_LARGE - N_SMALL))) repos on PostgreSQL (repos/s)" berth "$CREATE_RATE"
    CAT_KEY=pgcat CAT_ON=" on PostgreSQL" measure_catalog large "$N_LARGE" berth
    for page in first deep; do
        small=$(median_of "pgcat.small.$page.mean")
        large=$(median_of "pgcat.large.$page.mean")
        record "pgcat.ratio.$page" "catalog $page page on PostgreSQL: mean latency at $(commas "$N_LARGE") / at $(commas "$N_SMALL") repos (x, goal <= 1.5)" berth \
            "$(python3 -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}")' "$small" "$large")"
    done
    stop_server cat-berth
    stop_postgres
}

# ---------------------------------------------------------------- 4c. cluster
# GET manifest (wrk) and HEAD blob (oha) against three berth nodes on one
# PostgreSQL sharing one data directory, through haproxy round-robin (the
# cluster of tests/cluster/up.sh, --access-control false), against the first
# of those nodes directly and through a second haproxy frontend to it alone,
# in the same run, alternating. The three share the machine's cores with the
# load generator and haproxy: the question is what coordinating nodes costs,
# not whether three nodes on one machine go faster. Each node's PostgreSQL
# pool is 4 connections (--database-max-connections): with PostgreSQL on
# the same two cores, 16 per node (the default) made GET manifest slower on
# one node and on three (BENCHMARKS.md, 2026-12-03).
section_cluster() {
    log "== cluster: GET manifest, HEAD blob: 3 nodes on PostgreSQL behind haproxy; one node directly; one node behind haproxy"
    local envf=$TMP/cluster.env pid t layer cfg test conns r out rps p99 mean bad what tool code
    local -A TGT LABEL
    BERTH="$BERTH" BERTH_CLUSTER_SERVE_ARGS="${BERTH_OPEN[*]} --database-max-connections 4" BERTH_CLUSTER_ENV_FILE=$envf RUST_LOG=warn \
        bash "$ROOT/tests/cluster/up.sh" >"$TMP/cluster.log" 2>&1 &
    pid=$!
    track "$pid"
    for ((t = 0; t < 900; t++)); do
        [[ ! -s $envf ]] || break
        alive "$pid" || { log "tests/cluster/up.sh exited; its output:"; cat "$TMP/cluster.log" >&2; exit 1; }
        sleep 0.1
    done
    [[ -s $envf ]] || { log "the cluster did not come up in 90 s:"; cat "$TMP/cluster.log" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$envf"
    TGT[cluster3]=$BERTH_CLUSTER_URL LABEL[cluster3]="3 nodes on PostgreSQL via haproxy"
    TGT[node]=${BERTH_CLUSTER_NODES%% *} LABEL[node]="1 node on PostgreSQL, direct"
    TGT[node-haproxy]=$BERTH_CLUSTER_SINGLE_URL LABEL[node-haproxy]="1 node on PostgreSQL via haproxy"
    read -r layer _ < <(python3 "$LIB/reg.py" push-image "$BERTH_CLUSTER_URL" bench/small v1)
    for cfg in node node-haproxy cluster3; do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Accept: $OCI_MANIFEST" "${TGT[$cfg]}/v2/bench/small/manifests/v1")
        [[ $code == 200 ]] || { log "cluster $cfg: GET manifest answered $code"; exit 1; }
        code=$(curl -sS -I -o /dev/null -w '%{http_code}' "${TGT[$cfg]}/v2/bench/small/blobs/$layer")
        [[ $code == 200 ]] || { log "cluster $cfg: HEAD blob answered $code"; exit 1; }
        if ((WARM)); then
            wrk -t2 -c32 -d"${WARM}s" -H "Accept: $OCI_MANIFEST" "${TGT[$cfg]}/v2/bench/small/manifests/v1" >/dev/null 2>&1
        fi
    done
    for test in get head; do
        for conns in "${CONNS[@]}"; do
            if [[ $test == get ]]; then what="GET manifest"; else what="HEAD blob"; fi
            for ((r = 1; r <= RUNS; r++)); do
                for cfg in node node-haproxy cluster3; do
                    out=$TMP/cluster-$test-$conns-$cfg-$r.out
                    if [[ $test == get ]]; then
                        tool=wrk
                        measured "$what c=$conns $cfg #$r" run_wrk "$out" "$conns" "${TGT[$cfg]}/v2/bench/small/manifests/v1"
                    else
                        tool=oha
                        measured "$what c=$conns $cfg #$r" run_oha_head "$out" "$conns" "${TGT[$cfg]}/v2/bench/small/blobs/$layer"
                    fi
                    read -r rps p99 mean bad < <(python3 "$LIB/stats.py" "$tool" "$out")
                    record "cluster.$test.c$conns.$cfg.rps" "$what, $conns conns, ${LABEL[$cfg]} (req/s)" berth "$rps"
                    ((bad == 0)) || warn "$what c=$conns $cfg #$r: $bad error responses or socket errors"
                done
            done
            for cfg in node node-haproxy; do
                record "cluster.$test.c$conns.ratio.$cfg" \
                    "$what, $conns conns: 3 nodes via haproxy / ${LABEL[$cfg]}, goal >= 90 (%)" berth \
                    "$(python3 -c 'import sys; print(f"{100 * float(sys.argv[1]) / float(sys.argv[2]):.1f}")' \
                        "$(median_of "cluster.$test.c$conns.cluster3.rps")" "$(median_of "cluster.$test.c$conns.$cfg.rps")")"
            done
        done
    done
    stop_pid "$pid" "tests/cluster/up.sh"
}

# ---------------------------------------------------------------- shared by 5.-7.
# Runs "$@" under `procwatch.py maxrss`: TIMED_SECS (wall seconds) and
# TIMED_RSS (the client's peak RSS in kB, exact: the kernel's ru_maxrss).
# Output goes to $TMP/timed.log; a failure shows it and stops the run.
timed() { # what cmd...
    local what=$1 rc
    shift
    if ! python3 "$LIB/procwatch.py" maxrss "$TMP/timed.out" "$@" >"$TMP/timed.log" 2>&1; then
        log "$what failed:"; tail -n 30 "$TMP/timed.log" >&2; exit 1
    fi
    read -r rc TIMED_SECS TIMED_RSS <"$TMP/timed.out"
}

# skopeo with a blob-info cache of its own, empty: sets SKOPEO (the command)
# and SKOPEO_CACHE (its cache directory).
#
# Why: skopeo remembers in that cache which repositories of which registry
# hold each blob it has seen. Pushing a blob the cache places in another
# repository of the destination registry, it asks for a cross-repository
# mount (POST ?mount=&from=) instead of uploading, so a second push of the
# same layers would time a mount, not a transfer (seen here: pushed again to
# a new repository on berth with the shared cache, the image's five layers
# went as five mount POSTs answered 201, and no layer bytes). So every skopeo
# call gets a new repository and an empty cache, and every run new content.
#
# How: skopeo has no flag for the cache. containers/image keeps it in
# /var/lib/containers/cache for root, and in $XDG_DATA_HOME/containers/cache
# for other users, where "root" means: _CONTAINERS_ROOTLESS_UID if set, else
# the effective uid. Setting that variable to a non-zero uid and XDG_DATA_HOME
# to a new directory gives each call an empty cache (`skopeo --debug` logs
# "Using blob info cache at <that directory>"); check_skopeo_cache verifies
# after each call that the cache file appeared there. HOME and
# XDG_CONFIG_HOME point there too, so no user configuration applies, and
# --insecure-policy stands in for /etc/containers/policy.json.
SKOPEO_N=0
skopeo_fresh() {
    local d uid=$EUID
    SKOPEO_N=$((SKOPEO_N + 1))
    d=$TMP/skopeo-$SKOPEO_N
    mkdir -p "$d/data" "$d/config"
    ((uid != 0)) || uid=65534
    SKOPEO_CACHE=$d/data/containers/cache
    SKOPEO=(env HOME="$d" XDG_DATA_HOME="$d/data" XDG_CONFIG_HOME="$d/config"
        _CONTAINERS_ROOTLESS_UID="$uid" skopeo --insecure-policy)
}
check_skopeo_cache() { # what
    compgen -G "$SKOPEO_CACHE/blob-info-cache-v1.*" >/dev/null ||
        warn "$1: skopeo did not create its blob-info cache in $SKOPEO_CACHE; it may have used a shared one (and mounted instead of uploading)"
}

# Runs "$@" with its stdout into file $1 (to measure it in this shell, not
# in a $(...) subshell, which would lose the run count).
capture() { # out cmd...
    local out=$1
    shift
    "$@" >"$out"
}

# Bytes under a directory (all files; hard links once).
dir_bytes() { du -sb "$1" | cut -f1; }

# A registry really received an image's bytes: its data directory grew by at
# least that much (the content is new, so it cannot be a mount or a reuse).
check_growth() { # what before-bytes dir expected-bytes
    local grew=$(($(dir_bytes "$3") - $2))
    ((grew >= $4)) || { log "$1: the registry's data grew by $grew bytes, less than the image's $4: not uploaded?"; exit 1; }
}

size_label() { # bytes -> "52.4 MB"
    python3 -c 'import sys; n = int(sys.argv[1]); print(f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB")' "$1"
}

# ---------------------------------------------------------------- 5. image
# skopeo push and pull of a multi-layer image (5 layers of 10 MiB, ~52 MB):
# what a user's `skopeo copy` sees, round trips for each blob included
# (HEAD, POST, PATCH, PUT per layer on push; manifest then blobs on pull).
# The layers are gzip-framed without compression so that skopeo sends them as
# they are (it gzips uncompressed layers on the way to a registry, which would
# measure gzip, not the registry). A new image every run, a new repository
# and an empty skopeo cache for every call (see skopeo_fresh).
section_image() {
    local reg name r repo out before host label
    for reg in berth distribution; do IDLE_RSS=0 start_server "$reg" "img-$reg"; done
    for ((r = 1; r <= RUNS; r++)); do
        rm -rf "$TMP/img"
        read -r IMG_BYTES _ < <(python3 "$LIB/reg.py" mkimage "$TMP/img" "$IMG_LAYERS" "$IMG_LAYER_BYTES")
        label="$IMG_LAYERS-layer image, $(size_label "$IMG_BYTES")"
        ((r > 1)) || log "== image: skopeo push and pull of a $label (new content each run)"
        for reg in berth distribution; do
            name=img-$reg
            host=${URL[$name]#http://}
            repo=bench/img-r$r
            before=$(dir_bytes "$TMP/$name/data")
            sync
            skopeo_fresh
            measured "skopeo push $label $reg #$r" timed "skopeo push to $reg" \
                "${SKOPEO[@]}" copy --dest-tls-verify=false "oci:$TMP/img:v1" "docker://$host/$repo:v1"
            check_skopeo_cache "skopeo push to $reg"
            check_growth "skopeo push to $reg" "$before" "$TMP/$name/data" "$IMG_BYTES"
            record image.push.mbps "skopeo push $label (MB/s)" "$reg" "$(mbps "$IMG_BYTES" "$TIMED_SECS")"
            record image.push.secs "skopeo push $label (s)" "$reg" "$TIMED_SECS"
        done
        for reg in berth distribution; do
            name=img-$reg
            host=${URL[$name]#http://}
            out=$TMP/img-pull
            rm -rf "$out"
            skopeo_fresh
            measured "skopeo pull $label $reg #$r" timed "skopeo pull from $reg" \
                "${SKOPEO[@]}" copy --src-tls-verify=false "docker://$host/bench/img-r$r:v1" "oci:$out:v1"
            check_skopeo_cache "skopeo pull from $reg"
            (($(dir_bytes "$out") >= IMG_BYTES)) || { log "skopeo pull from $reg: $out holds less than the image"; exit 1; }
            record image.pull.mbps "skopeo pull $label, to an OCI layout (MB/s)" "$reg" "$(mbps "$IMG_BYTES" "$TIMED_SECS")"
            record image.pull.secs "skopeo pull $label, to an OCI layout (s)" "$reg" "$TIMED_SECS"
            rm -rf "$out"
        done
    done
    for reg in berth distribution; do stop_server "img-$reg"; done
    rm -rf "$TMP/img"
}

# ---------------------------------------------------------------- 6. uploads
# The server's memory under many simultaneous uploads: CONC_N distinct blobs
# of CONC_BYTES, each a POST then a monolithic PUT on its own connection, all
# CONC_N open at once (reg.py concurrent-uploads: every PUT sends its headers
# and first MiB, then waits for the others before streaming the rest). Each
# run starts a new server, so its VmHWM afterwards is exactly the peak RSS of
# that run (no sampling gaps); and the seconds from the first POST to the
# last 201, the whole batch.
section_uploads() {
    local reg name r n secs together label
    label="$CONC_N concurrent $((CONC_BYTES >> 20)) MiB uploads"
    log "== uploads: server RSS during $label (POST + monolithic PUT each)"
    for ((r = 1; r <= RUNS; r++)); do
        for reg in berth distribution; do
            name=up-$reg
            IDLE_RSS=0 start_server "$reg" "$name"
            sync
            measured "$label $reg #$r" capture "$TMP/up.out" python3 "$LIB/reg.py" \
                concurrent-uploads "${URL[$name]}" "bench/up-r$r-" "$CONC_N" "$CONC_BYTES"
            read -r n secs together <"$TMP/up.out"
            ((together == CONC_N)) ||
                warn "$label $reg #$r: only $together of $CONC_N uploads were in flight together"
            read -r _ RSS_HWM < <(python3 "$LIB/procwatch.py" status "${PID[$name]}")
            record conc.rss "$label: server peak RSS (VmHWM, new server each run) (MiB)" "$reg" "$(mb "$RSS_HWM")"
            record conc.secs "$label: first POST to last 201 (s)" "$reg" "$secs"
            stop_server "$name"
            rm -rf "${TMP:?}/$name"
        done
    done
}

# ---------------------------------------------------------------- 7. copy
# `berth copy` against `skopeo copy` of a single-layer image (1 GiB) from one
# berth instance (A) to another (B), both on loopback with access control
# off. For scale, in the same run: the plain push of that image to A (POST +
# monolithic PUT per blob, reg.py push-layout) and its plain pull from A
# (reg.py pull-image, bodies dropped): a copy streams one into the other, so
# min(push, pull) is about the most a copy can reach. Each copy goes to a new
# B (new data directory), so neither copy finds the other's blob there; the
# image is new every run, and skopeo has an empty cache (skopeo_fresh). The
# rates count the image's bytes (layer, config, manifest) over the wall time
# of the command; the copies' peak RSS is the client process's (ru_maxrss).
copy_to_fresh() { # what tool src-ref dst-repo -> TIMED_SECS TIMED_RSS
    local what=$1 tool=$2 src=$3 repo=$4 dst before digest
    IDLE_RSS=0 start_server berth copy-b
    dst=${URL[copy-b]#http://}
    before=$(dir_bytes "$TMP/copy-b/data")
    sync
    if [[ $tool == berth ]]; then
        measured "$what" timed "$what" env RUST_LOG=warn "$BERTH" copy "$src" "$dst/$repo:latest"
    else
        skopeo_fresh
        measured "$what" timed "$what" "${SKOPEO[@]}" copy --src-tls-verify=false --dest-tls-verify=false \
            "docker://$src" "docker://$dst/$repo:latest"
        check_skopeo_cache "$what"
    fi
    check_growth "$what" "$before" "$TMP/copy-b/data" "$COPY_BYTES"
    digest=$(curl -sS -I -H "Accept: $OCI_MANIFEST" "${URL[copy-b]}/v2/$repo/manifests/latest" |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" {print $2}')
    [[ $digest == "$COPY_DIGEST" ]] ||
        warn "$what: the copy's manifest digest is \"$digest\", not the source's $COPY_DIGEST"
    stop_server copy-b
    rm -rf "${TMP:?}/copy-b"
}

section_copy() {
    local r a src bytes secs label rss_berth have_copy=1
    label="1-layer image of $( ((COPY_MIB >= 1024)) && echo "$((COPY_MIB / 1024)) GiB" || echo "$COPY_MIB MiB")"
    log "== copy: berth copy and skopeo copy of a $label between two berth instances"
    if ! "$BERTH" copy --help >/dev/null 2>&1; then
        have_copy=0
        log "skipped: berth copy not available (\`berth copy --help\` fails); measuring the rest"
    fi
    for ((r = 1; r <= RUNS; r++)); do
        IDLE_RSS=0 start_server berth copy-a
        a=${URL[copy-a]}
        src=${a#http://}/bench/img:r$r
        rm -rf "$TMP/copyimg"
        read -r COPY_BYTES COPY_DIGEST < <(python3 "$LIB/reg.py" mkimage "$TMP/copyimg" 1 $((COPY_MIB << 20)))
        sync
        measured "push $label to A #$r" capture "$TMP/copy.out" \
            python3 "$LIB/reg.py" push-layout "$a" bench/img "r$r" "$TMP/copyimg"
        read -r bytes secs <"$TMP/copy.out"
        record copy.push.mbps "$label: push to A, POST + PUT per blob (MB/s)" berth "$(mbps "$bytes" "$secs")"
        measured "pull $label from A #$r" capture "$TMP/copy.out" \
            python3 "$LIB/reg.py" pull-image "$a" bench/img "r$r"
        read -r bytes secs <"$TMP/copy.out"
        record copy.pull.mbps "$label: pull from A (MB/s)" berth "$(mbps "$bytes" "$secs")"
        rm -rf "$TMP/copyimg"   # the copies read from A, not from here
        if ((have_copy)); then
            copy_to_fresh "berth copy $label A -> B #$r" berth "$src" "bench/img-r$r"
            record copy.berth.mbps "$label: \`berth copy\` A -> B (MB/s)" berth "$(mbps "$COPY_BYTES" "$TIMED_SECS")"
            rss_berth=$TIMED_RSS
        else
            note copy.berth.mbps "$label: \`berth copy\` A -> B (MB/s)" berth "skipped: berth copy not available"
        fi
        copy_to_fresh "skopeo copy $label A -> B #$r" skopeo "$src" "bench/img-r$r"
        record copy.skopeo.mbps "$label: \`skopeo copy\` A -> B (MB/s)" berth "$(mbps "$COPY_BYTES" "$TIMED_SECS")"
        if ((have_copy)); then
            record copy.berth.rss "$label: \`berth copy\` client peak RSS (MiB)" berth "$(mb "$rss_berth")"
        fi
        record copy.skopeo.rss "$label: \`skopeo copy\` client peak RSS (MiB)" berth "$(mb "$TIMED_RSS")"
        stop_server copy-a
        rm -rf "${TMP:?}/copy-a"
    done
}

# ---------------------------------------------------------------- 8. robust
# What one client can take from others. Both registries run with their
# open-file limit at 1024 (prlimit, soft and hard), as under a default
# `ulimit -n`. /v2/ latency for a newcomer (a new connection per request,
# bench/lib/connections.py latency) alone, while 200 connections send a
# request head a byte a second (slowloris), and while 1,100 connections stay
# open and silent; a request unanswered in 5 s counts as 5 s and as failed.
# Then berth's memory under token and password abuse (bench/lib/auth_abuse.py):
# RSS after 600 distinct tokens of 100 scopes each (the most /token grants one
# request) used at the gate, and after 1,000 successful and 1,000 failed
# password checks. Distribution has no token service or user store: "—".
probe_latency() { # reg url what key
    local med p99 failed
    read -r med p99 failed < <(python3 "$LIB/connections.py" latency "$2" "$ROBUST_PROBES")
    record "$4.med" "/v2/ for a newcomer, $3: median (ms)" "$1" "$med"
    record "$4.p99" "/v2/ for a newcomer, $3: p99 (ms)" "$1" "$p99"
    record "$4.failed" "/v2/ for a newcomer, $3: unanswered in 5 s, of $ROBUST_PROBES (count)" "$1" "$failed"
}

under_pressure() { # reg url mode n what key
    local hold_pid
    python3 "$LIB/connections.py" hold "$2" "$3" "$4" "$ROBUST_HOLD" >"$TMP/hold.out" &
    hold_pid=$!
    track "$hold_pid"
    sleep 2
    measured "/v2/ latency, $5, $1" probe_latency "$1" "$2" "$5" "$6"
    wait "$hold_pid" || true
    log "  $5 [$1]: opened / closed by the server / refused: $(cat "$TMP/hold.out")"
}

section_robust() {
    log "== robust: /v2/ under slowloris and idle connections (fd limit 1024); RSS under token and password abuse"
    local reg r name out
    ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    for ((r = 1; r <= RUNS; r++)); do
        for reg in berth distribution; do
            name=robust-$reg
            SERVER_PREFIX=(prlimit --nofile=1024:1024 --)
            IDLE_RSS=0 start_server "$reg" "$name"
            SERVER_PREFIX=(env)
            measured "/v2/ latency, alone, $reg" probe_latency "$reg" "${URL[$name]}" "alone" robust.alone
            under_pressure "$reg" "${URL[$name]}" slowloris 200 "200 slowloris connections" robust.slowloris
            under_pressure "$reg" "${URL[$name]}" idle 1100 "1,100 idle connections" robust.idle
            stop_server "$name"
        done
        AUTH_PW=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
        IDLE_RSS=0 start_server berth robust-auth auth
        out=$TMP/tokens.out
        measured "RSS after $ROBUST_TOKENS tokens" python3 "$LIB/auth_abuse.py" token-cache-rss \
            "${URL[robust-auth]}" "${PID[robust-auth]}" --basic "admin:$AUTH_PW" --tokens "$ROBUST_TOKENS" >"$out"
        record robust.tokens.rss "RSS after $ROBUST_TOKENS distinct 100-scope tokens used at the gate (MiB)" \
            berth "$(mb "$(awk 'END {print $2}' "$out")")"
        stop_server robust-auth
        IDLE_RSS=0 start_server berth robust-auth auth
        out=$TMP/passwords.out
        measured "RSS after password checks" python3 "$LIB/auth_abuse.py" password-rss \
            "${URL[robust-auth]}" "${PID[robust-auth]}" --basic "admin:$AUTH_PW" --checks "$ROBUST_CHECKS" >"$out"
        record robust.passwords.rss "RSS after $ROBUST_CHECKS users created, $ROBUST_CHECKS successful and $ROBUST_CHECKS failed password checks (MiB)" \
            berth "$(mb "$(awk 'END {print $2}' "$out")")"
        stop_server robust-auth
    done
}

# ---------------------------------------------------------------- gc
# The garbage collector at scale (bench/gc.sh, which prints its own table
# too): berth only, distribution's `registry garbage-collect` needing the
# registry stopped or read-only.
section_gc() {
    local rows=1000000 garbage=100000 out secs rate idle peak get push
    if ((QUICK)); then rows=20000 garbage=2000; fi
    log "== gc: one collection of $garbage unreferenced among $rows blob records, with load"
    out=$TMP/gc.out
    GC_BENCH_OUT=$out measured "gc collection" bash "$ROOT/bench/gc.sh" --bin "$BERTH" \
        --rows "$rows" --garbage "$garbage" --secs "$DUR" >&2
    read -r secs rate idle peak get push <"$out"
    record gc.secs "gc: collect $(commas "$garbage") unreferenced among $(commas "$rows") blob records (s)" berth "$secs"
    record gc.rate "gc: reviews per second (links, records, bytes)" berth "$rate"
    record gc.rss "gc: server peak RSS during the collection (MiB; idle before: $idle)" berth "$peak"
    record gc.get "gc: GET manifest req/s during the collection, % of without" berth "$get"
    record gc.push "gc: blob push req/s during the collection, % of without" berth "$push"
    note gc.secs x distribution "offline only (registry garbage-collect, stopped or read-only)"
}

# ---------------------------------------------------------------- 12. web interface
# berth's pages at N_UI repositories (all public) and N_UI tags in one of
# them: seeded on an open registry (BERTH_NEW_REPOSITORIES_PUBLIC), then
# served with access control on, anonymously and signed in as the
# administrator (the session from the sign-in form). Each page is asked by
# wrk over one connection, so its mean latency is the server's time for the
# page; its weight is the HTML's bytes (the style sheet and script are
# fetched once and cached). Distribution serves no web interface: "—".
run_wrk_page() { # out url [cookie]
    if [[ -n ${3:-} ]]; then
        wrk -t1 -c1 -d"${DUR}s" --latency -H "Cookie: $3" "$2" >"$1" 2>&1
    else
        wrk -t1 -c1 -d"${DUR}s" --latency "$2" >"$1" 2>&1
    fi
}

section_ui() {
    local n=$N_UI out secs digest cookie page path who label r rps p99 mean bad bytes
    log "== ui: explore at $(commas "$n") repositories, a repository of $(commas "$n") tags"
    local prefix=("${SERVER_PREFIX[@]}")
    SERVER_PREFIX=(env BERTH_NEW_REPOSITORIES_PUBLIC=true)
    IDLE_RSS=0 start_server berth ui
    SERVER_PREFIX=("${prefix[@]}")
    python3 "$LIB/reg.py" mkrepos "${URL[ui]}" catalog/r 0 "$n" --workers 16 >/dev/null
    read -r _ secs digest < <(python3 "$LIB/reg.py" mktags "${URL[ui]}" big/tags "$n")
    log "  $(commas "$n") repositories and $(commas "$n") tags seeded (tags in $secs s)"
    stop_server ui
    AUTH_PW=${AUTH_PW:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}
    IDLE_RSS=0 start_server berth ui auth
    cookie=$(python3 "$LIB/reg.py" ui-session "${URL[ui]}" admin "$AUTH_PW")
    for page in explore explore-deep explore-search repository repository-deep manifest; do
        case $page in
            explore) path=/ui/ who=anonymous ;;
            explore-deep) path="/ui/?after=catalog%2Fr$(printf '%07d' $((n - 100)))" who=anonymous ;;
            explore-search) path="/ui/?q=r$(printf '%05d' $((n / 200)))" who=anonymous ;;
            repository) path=/ui/repo/big/tags who=admin ;;
            repository-deep) path="/ui/repo/big/tags?before_time=9999999999&before_name=t0000100" who=admin ;;
            manifest) path="/ui/manifest/big/tags@$digest" who=admin ;;
        esac
        local c=""
        [[ $who == admin ]] && c=$cookie
        if [[ -n $c ]]; then
            bytes=$(curl -sS -o "$TMP/ui-$page.html" -w '%{size_download} %{http_code}' -H "Cookie: $c" "${URL[ui]}$path")
        else
            bytes=$(curl -sS -o "$TMP/ui-$page.html" -w '%{size_download} %{http_code}' "${URL[ui]}$path")
        fi
        [[ ${bytes#* } == 200 ]] || { log "ui page $path answered ${bytes#* }"; exit 1; }
        bytes=${bytes% *}
        label="ui: $page page (${path/$digest/<digest>}, $who), $(commas "$n") repos/tags"
        record "ui.$page.bytes" "$label: page weight (KB)" berth "$(python3 -c 'import sys; print(f"{int(sys.argv[1]) / 1000:.1f}")' "$bytes")"
        note "ui.$page.bytes" x distribution "no web interface"
        for ((r = 1; r <= RUNS; r++)); do
            out=$TMP/ui-$page-$r.out
            measured "ui $page page #$r" run_wrk_page "$out" "${URL[ui]}$path" "$c"
            read -r rps p99 mean bad < <(python3 "$LIB/stats.py" wrk "$out")
            record "ui.$page.mean" "$label: server time, mean at 1 connection (ms)" berth "$mean"
            record "ui.$page.p99" "$label: p99 at 1 connection (ms)" berth "$p99"
            ((bad == 0)) || warn "ui $page #$r: $bad error responses or socket errors"
        done
        note "ui.$page.mean" x distribution "no web interface"
        note "ui.$page.p99" x distribution "no web interface"
    done
    stop_server ui
}

# ---------------------------------------------------------------- 13. events
# The outbox's delivery rate: N_EV changes committed while the receiver is
# down (each head's attempt refused and retried within 0.5 s), then the
# receiver comes up (haproxy answering 204, so that it costs nothing); the
# time from then until every written event is delivered (berth's /metrics)
# gives events per second. Two shapes: tags pushed to one repository (one
# chain: one delivery at a time, in order) and N_EV repositories (chains in
# parallel, 32 at once per node). distribution's notifications are queued in
# memory (lost on a restart, no per-repository order): not compared.
events_receiver() { # port -> starts haproxy answering 204 on it
    local cfg=$TMP/receiver-$1.cfg
    cat >"$cfg" <<EOF
global
    maxconn 512
defaults
    mode http
    timeout client 10s
    timeout connect 5s
    timeout server 10s
frontend hook
    bind 127.0.0.1:$1
    http-request return status 204
EOF
    haproxy -f "$cfg" -db >"$TMP/receiver-$1.log" 2>&1 &
    RECEIVER_PID=$!
    track "$RECEIVER_PID"
    python3 "$LIB/reg.py" wait "http://127.0.0.1:$1" 10 >/dev/null 2>&1 || {
        log "the events receiver (haproxy) did not start: $(tail -3 "$TMP/receiver-$1.log")"
        exit 1
    }
}

events_drain() { # url out: waits until every written event is delivered
    python3 - "$1" "$2" <<'PY'
import re, sys, time, urllib.request
url, out = sys.argv[1], sys.argv[2]
def counts():
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    written = int(re.search(r"^berth_events_written_total (\d+)", text, re.M).group(1))
    done = re.search(r'^berth_event_attempts_total\{result="delivered"\} (\d+)', text, re.M)
    return written, int(done.group(1)) if done else 0
start = last_progress = time.monotonic()
last = -1
while True:
    written, delivered = counts()
    if delivered != last:
        last, last_progress = delivered, time.monotonic()
    elif time.monotonic() - last_progress > 60:
        sys.exit(f"events: no delivery for 60 s ({delivered} of {written} delivered)")
    if written and delivered >= written:
        break
    if not written and time.monotonic() - start > 30:
        sys.exit("events: nothing was written: does the endpoint subscribe to what was seeded?")
    if time.monotonic() - start > 900:
        sys.exit(f"events: {delivered} of {written} delivered after 900 s")
    time.sleep(0.02)
secs = time.monotonic() - start
open(out, "w").write(f"{secs:.3f} {written}\n")
PY
}

section_events() {
    local n=$N_EV shape r port cfg out secs written label
    log "== events: delivering a backlog of $(commas "$n") events once the receiver is up"
    for shape in one many; do
        for ((r = 1; r <= RUNS; r++)); do
            port=$(free_port)
            cfg=$TMP/events-$shape-$r.toml
            cat >"$cfg" <<EOF
[[webhook]]
name = "bench"
url = "http://127.0.0.1:$port/hook"
secret = "bench-webhook-secret-0123456789"
actions = ["push", "mount"]
retries = 100
retry_initial_secs = 0.1
retry_max_secs = 0.5
EOF
            local prefix=("${SERVER_PREFIX[@]}")
            SERVER_PREFIX=(env BERTH_CONFIG="$cfg")
            IDLE_RSS=0 start_server berth events
            SERVER_PREFIX=("${prefix[@]}")
            if [[ $shape == one ]]; then
                python3 "$LIB/reg.py" mktags "${URL[events]}" ev/one "$n" >/dev/null
                label="one repository (tag pushes)"
            else
                python3 "$LIB/reg.py" mkrepos "${URL[events]}" ev/r 0 "$n" --workers 16 >/dev/null
                label="$(commas "$n") repositories (mounts)"
            fi
            out=$TMP/events-$shape-$r.out
            events_receiver "$port"
            measured "events $shape #$r" events_drain "${URL[events]}" "$out"
            read -r secs written <"$out"
            record "events.$shape" "events: delivered per second, a backlog of $(commas "$n") changes to $label (one endpoint)" berth \
                "$(python3 -c 'import sys; print(round(int(sys.argv[2]) / float(sys.argv[1])))' "$secs" "$written")"
            kill "$RECEIVER_PID" 2>/dev/null || true
            wait "$RECEIVER_PID" 2>/dev/null || true
            stop_server events
        done
        note "events.$shape" x distribution "notifications queued in memory: lost on a restart, not compared"
    done
}

# ---------------------------------------------------------------- 14. proxy
# A pull-through cache in front of one upstream (distribution 2.8.2, open,
# on loopback): berth (`BERTH_PROXY=up=<upstream>`) and distribution as a
# proxy (`proxy.remoteurl`) side by side. Each run pushes a new blob
# upstream, then: the direct pull from the upstream, a cold pull through
# each cache (it fetches while it serves), a warm one (served locally);
# then CONC clients at once asking each cache for another new blob (one
# upstream fetch for all, in berth).
start_caches() { # prefix upstream-url: <prefix>-berth (BERTH_PROXY=up=<url>) and <prefix>-distribution (proxy.remoteurl)
    local prefix=("${SERVER_PREFIX[@]}")
    SERVER_PREFIX=(env BERTH_PROXY="up=$2")
    IDLE_RSS=0 start_server berth "$1-berth"
    SERVER_PREFIX=("${prefix[@]}")
    DIST_REMOTE=$2 IDLE_RSS=0 start_server distribution "$1-distribution"
}

pull_many() { # url repo clients -> PULL_SECS (wall time until every client has the blob)
    local i start pids=()
    start=$(date +%s.%N)
    for ((i = 0; i < $3; i++)); do
        curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' "$1/v2/$2/blobs/$DIGEST" >"$TMP/many.$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i"; done
    PULL_SECS=$(python3 -c 'import sys, time; print(time.time() - float(sys.argv[1]))' "$start")
    for ((i = 0; i < $3; i++)); do
        [[ $(cat "$TMP/many.$i") == "200 $BLOB_BYTES" ]] ||
            { log "client $i of $2 got: $(cat "$TMP/many.$i")"; exit 1; }
    done
}

section_proxy() {
    local size_label r reg name repo path conc conc_mib direct cold
    size_label=$( ((BLOB_MIB >= 1024)) && echo "$((BLOB_MIB / 1024)) GiB" || echo "$BLOB_MIB MiB")
    if ((QUICK)); then conc=4 conc_mib=16; else conc=20 conc_mib=200; fi
    log "== proxy: a $size_label blob pulled directly and through berth's and distribution's pull-through caches"
    IDLE_RSS=0 start_server distribution px-up
    start_caches px "${URL[px-up]}"
    head -c "${BLOB_MIB}M" /dev/urandom >"$TMP/blob"
    BLOB_BYTES=$(stat -c %s "$TMP/blob")
    for ((r = 1; r <= RUNS; r++)); do
        head -c 64 /dev/urandom | dd of="$TMP/blob" bs=64 count=1 conv=notrunc status=none
        DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
        repo=bench/proxied-r$r
        push_blob "${URL[px-up]}" "$repo"
        sync
        measured "direct pull $size_label #$r" pull_blob "${URL[px-up]}" "$repo"
        direct=$(mbps "$BLOB_BYTES" "$PULL_SECS")
        record proxy.direct "proxy: pull of a $size_label blob directly from the upstream, no cache (MB/s; the upstream is distribution)" distribution "$direct"
        for reg in berth distribution; do
            name=px-$reg
            path=$repo
            [[ $reg == berth ]] && path=up/$repo
            sync
            measured "cold pull through $reg #$r" with_rss "${PID[$name]}" pull_blob "${URL[$name]}" "$path"
            cold=$(mbps "$BLOB_BYTES" "$PULL_SECS")
            record proxy.cold "proxy: cold pull through the cache, fetching from the upstream (MB/s)" "$reg" "$cold"
            record proxy.cold_ratio "proxy: cold pull through the cache / direct pull in the same run (goal for berth: at least 0.90)" "$reg" \
                "$(ratio "$cold" "$direct")"
            record rss.proxy "proxy: cache RSS peak during the cold pull (MiB)" "$reg" "$(mb "$RSS_PEAK")"
            # Both caches store the blob as the cold answer ends; let them.
            sleep 2
            sync
            measured "warm pull through $reg #$r" pull_blob "${URL[$name]}" "$path"
            record proxy.warm "proxy: warm pull through the cache, served locally (MB/s)" "$reg" "$(mbps "$BLOB_BYTES" "$PULL_SECS")"
        done
    done
    head -c "${conc_mib}M" /dev/urandom >"$TMP/blob"
    BLOB_BYTES=$(stat -c %s "$TMP/blob")
    for ((r = 1; r <= RUNS; r++)); do
        head -c 64 /dev/urandom | dd of="$TMP/blob" bs=64 count=1 conv=notrunc status=none
        DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
        repo=bench/many-r$r
        push_blob "${URL[px-up]}" "$repo"
        for reg in berth distribution; do
            name=px-$reg
            path=$repo
            [[ $reg == berth ]] && path=up/$repo
            sync
            measured "$conc cold pulls through $reg #$r" pull_many "${URL[$name]}" "$path" "$conc"
            record proxy.many "proxy: $conc clients at once pulling a cold $conc_mib MiB blob through the cache, all bytes served (MB/s)" "$reg" \
                "$(mbps "$((BLOB_BYTES * conc))" "$PULL_SECS")"
        done
    done
    proxy_links
    rm -f "$TMP/blob"
    for name in px-berth px-distribution px-up; do stop_server "$name"; done
}

# The same cold pull with the upstream across a network link
# (bench/lib/link.py: a relay carrying at most RATE Mbit/s each way, holding
# each byte DELAY ms one way): the direct pull and both caches' fetches go
# through it. On bare loopback the upstream is as fast as memory and the
# three processes (upstream, cache, client) share two cores; no upstream a
# cache serves is like that. BENCH_PROXY_LINKS: "RATE:DELAY ..." (Mbit/s,
# ms one way).
proxy_links() {
    local link rate delay port r reg name path direct cold label
    head -c "${BLOB_MIB}M" /dev/urandom >"$TMP/blob"
    BLOB_BYTES=$(stat -c %s "$TMP/blob")
    for link in ${BENCH_PROXY_LINKS:-1000:5 2500:5}; do
        rate=${link%%:*} delay=${link#*:}
        label="a $rate Mbit/s link, $delay ms one way"
        port=$(free_port)
        python3 "$LIB/link.py" "$port" "${URL[px-up]#http://}" "$rate" "$delay" >"$TMP/link.log" 2>&1 &
        PID[px-link]=$!
        track "${PID[px-link]}"
        URL[px-link]=http://127.0.0.1:$port
        python3 "$LIB/reg.py" wait "${URL[px-link]}" 20 ||
            { log "the link did not start: $(tail -3 "$TMP/link.log")"; exit 1; }
        start_caches px-link "${URL[px-link]}"
        log "== proxy: the upstream across $label"
        for ((r = 1; r <= RUNS; r++)); do
            head -c 64 /dev/urandom | dd of="$TMP/blob" bs=64 count=1 conv=notrunc status=none
            DIGEST=sha256:$(sha256sum "$TMP/blob" | cut -d' ' -f1)
            push_blob "${URL[px-up]}" "bench/link-r$r"
            sync
            measured "direct pull across the link #$r" pull_blob "${URL[px-link]}" "bench/link-r$r"
            direct=$(mbps "$BLOB_BYTES" "$PULL_SECS")
            record "proxy.link$rate.direct" "proxy, upstream across $label: direct pull, no cache (MB/s)" distribution "$direct"
            for reg in berth distribution; do
                name=px-link-$reg
                path=bench/link-r$r
                [[ $reg == berth ]] && path=up/$path
                sync
                measured "cold pull through $reg across the link #$r" pull_blob "${URL[$name]}" "$path"
                cold=$(mbps "$BLOB_BYTES" "$PULL_SECS")
                record "proxy.link$rate.cold" "proxy, upstream across $label: cold pull through the cache (MB/s)" "$reg" "$cold"
                record "proxy.link$rate.ratio" "proxy, upstream across $label: cold pull / direct pull in the same run (goal for berth: at least 0.90)" "$reg" \
                    "$(ratio "$cold" "$direct")"
            done
        done
        stop_server px-link-berth
        stop_server px-link-distribution
        stop_pid "${PID[px-link]}" px-link
    done
}

# ---------------------------------------------------------------- main
main() {
    local rev dirty cpu cmd when elapsed measuring oha_v table
    # The tree is shared and moves: name the commit the binary was built from.
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=""
    [[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] ||
        dirty=" (working tree has uncommitted changes)"
    setup_tools
    T_MEASURE=$(date +%s)
    TMP=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/berth-bench.XXXXXX")
    : >"$TMP/results.tsv"
    : >"$TMP/warnings.txt"
    log "temp dir $TMP; runs=$RUNS duration=${DUR}s blob=${BLOB_MIB} MiB catalog=$N_SMALL/$N_LARGE"
    want load && section_load
    want tls && section_tls
    want auth && section_auth
    want transfer && section_transfer
    want s3 && section_s3
    want catalog && section_catalog
    want catalog-pg && section_catalog_pg
    want cluster && section_cluster
    want image && section_image
    want uploads && section_uploads
    want copy && section_copy
    want robust && section_robust
    want gc && section_gc
    want ui && section_ui
    want events && section_events
    want proxy && section_proxy

    when=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
    cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    cmd="bash bench/run.sh${ARGS[*]:+ ${ARGS[*]}}"
    oha_v=$("$OHA" --version 2>/dev/null | head -1 || true)
    elapsed=$(($(date +%s) - T_START))
    measuring=$(($(date +%s) - T_MEASURE))
    table=$(python3 "$LIB/stats.py" table "$TMP/results.tsv" "$TMP/warnings.txt" "$RUNS" "${MEASURED:-0}" "$NOISE_MAX")
    {
        echo "## $when, berth $rev$dirty"
        echo
        echo "- machine: $(nproc) cores, $cpu, $(free -g | awk '/^Mem:/ {print $2}') GiB, Linux $(uname -r)"
        echo "- peer: $(docker-registry --version 2>/dev/null | awk '{print $NF}') (distribution, filesystem storage, in-memory blob descriptor cache, access log off); load: $(wrk --version 2>&1 | head -1 | awk '{print $1, $2}')${oha_v:+, $oha_v}"
        echo "- command: \`$cmd\` (measurements $((measuring / 60)) min $((measuring % 60)) s, after $((elapsed - measuring)) s of setup and build)"
        echo
        echo "$table"
    } >"$TMP/report.md"
    echo
    cat "$TMP/report.md"
    if ((RECORD)) || [[ $QUICK == 0 && -z $ONLY ]]; then
        local bm=$ROOT/BENCHMARKS.md
        if [[ ! -f $bm ]]; then
            cat >"$bm" <<'EOF'
# Benchmarks

`bash bench/run.sh` measures berth against CNCF distribution 2.8.2 (Debian's
`docker-registry`), both on 127.0.0.1 with filesystem storage in the same temp
dir, in the same run: berth and distribution alternate, each metric is the
median of 3 runs per registry, and the "Noise" line under each table counts
the runs during which processes outside the harness used more than a quarter
of a CPU core. Except in the auth measurements (5. below), neither registry
checks credentials (distribution has no auth configured, berth runs with
`--access-control false`).

What is measured:

1. `GET /v2/<name>/manifests/<tag>` (OCI manifest, `Accept` set) with wrk, and
   `HEAD /v2/<name>/blobs/<digest>` with oha, at 32 and 256 connections,
   10 s each: requests/s and p99 latency.
2. Push of a 1 GiB random blob (`POST` for a session, then `PUT ?digest=` with
   the body, curl) and its pull (curl), in MB/s (10^6 bytes); the push as a
   percentage of `dd bs=1M conv=fdatasync` of the same file on the same disk.
   The first bytes of the blob change every run, so no push is deduplicated.
3. The server's RSS (`VmRSS`, `VmHWM` in /proc): idle after start, peak
   while pushing and while pulling.
4. `GET /v2/_catalog?n=100`, first page and a deep page (`last=` near the
   end), with wrk at 8 connections, after creating 1,000 repositories and
   (berth only; distribution walks its filesystem per request) 100,000.
   Each repository is created by a cross-repository mount of one tiny blob
   (`bench/lib/reg.py mkrepos`: 16 keep-alive clients in 4 processes).
   4b. The same pages from berth on PostgreSQL (`--database-url`, a throwaway
   cluster from `.ci/postgres`, fsync off), at both sizes, and the ratio of
   the mean latencies at 100,000 and at 1,000 repositories (goal: <= 1.5).
   4c. Cluster (`--only cluster`): GET manifest (wrk) and HEAD blob (oha),
   32 and 256 connections, through haproxy round-robin to 3 berth nodes on
   one PostgreSQL sharing one data directory (`tests/cluster/up.sh`,
   `--access-control false`), against the first node directly and behind
   haproxy alone, alternating in one run; the 3-node rate as % of each
   (goal: >= 90 % of one node's). All share the machine's cores.
5. With credentials checked, at 32 connections, 10 s each (wrk): `GET
   /v2/<name>/manifests/<tag>` on berth with access control on, sending
   `Authorization: Bearer <pull token>` (a fresh token before each run), and on
   distribution with `auth.htpasswd` (bcrypt cost 5, `htpasswd -B`), sending
   `Authorization: Basic` (distribution checks bcrypt on every request);
   and, the same as % of the GET manifest rate without credentials (1.). Then
   berth's token service, `GET /token?service=...&scope=repository:<name>:pull`
   for a public repository: anonymously, and with a personal access token as
   the Basic password. Distribution has no token service of its own: "—".
6. Push and pull of a ~52 MB image of 5 layers with `skopeo copy` (`oci:`
   layout to `docker://`, and back into a new `oci:` layout): seconds (wall
   time of the skopeo process) and MB/s. Each layer is a tar of one 10 MiB
   random file, gzip-framed at level 0, so that skopeo sends it as it is
   (it gzips uncompressed layers on the way to a registry, which would
   measure gzip). skopeo remembers in its blob-info cache which repositories
   hold each blob it has seen, and pushes a blob it has seen in another
   repository of the same registry as a cross-repository mount instead of an
   upload; so every run pushes a new image to a new repository, every skopeo
   call has an empty cache of its own (`skopeo_fresh` in `bench/run.sh` says
   how), and the harness checks that the registry's data directory grew by
   the image's size.
7. The server's peak RSS while 100 distinct 10 MiB blobs are uploaded at
   once: each a `POST`, then a monolithic `PUT` on its own connection, every
   `PUT` sending its first MiB and then waiting until all 100 have before
   streaming the rest (`bench/lib/reg.py concurrent-uploads`). Each run
   starts a new server, whose `VmHWM` afterwards is that run's peak; also the
   seconds from the first `POST` to the last `201`.
8. `berth copy` against `skopeo copy` of a 1 GiB single-layer image from one
   berth instance to another (both with `--access-control false`, a new
   destination instance for each copy, a new image each run, skopeo with an
   empty cache): MB/s over the command's wall time, and the client's peak
   RSS (`ru_maxrss`). For scale, the plain push of the image to the source
   (`POST` + monolithic `PUT` per blob) and its plain pull from there
   (`bench/lib/reg.py push-layout`, `pull-image`), and the ratios `berth
   copy` / min(push, pull) and `berth copy` / `skopeo copy`. Distribution
   takes no part: "—".

9. Robustness (`--only robust`): both registries under a 1024 open-file
   limit (prlimit, soft and hard). `GET /v2/` latency for a newcomer (a new
   connection per request; 100 requests; an answer not in 5 s counts as 5 s
   and as failed: `bench/lib/connections.py latency`) alone, while 200
   connections send a request head one byte a second, and while 1,100
   connections stay open and silent (`connections.py hold`, reopening what
   the server closes). Then berth's RSS after 600 distinct tokens of 100
   scopes each used at the gate, and after 1,000 users created, 1,000
   successful and 1,000 failed password checks (`bench/lib/auth_abuse.py`).
   Distribution has no token service or user store: "—".

10. TLS (`--only tls`): `GET /v2/<name>/manifests/<tag>` with wrk at 32
   connections over TLS 1.3, berth (`--tls-cert`/`--tls-key`) and
   distribution (`http.tls`) serving the same ECDSA P-256 certificate from a
   CA made for the run (openssl; wrk keeps its connections, so handshakes
   happen only at the start), and berth over plain HTTP in the same run.

12. Web interface (`--only ui`): 10,000 public repositories (cross-repository
   mounts, as for the catalog) and one repository of 10,000 tags on one
   image (`bench/lib/reg.py mktags`), then berth restarted with access
   control on. Each page asked by wrk over one connection for 10 s: the mean
   latency is the server's time for the page (the goal: under 20 ms); the
   weight is the HTML's bytes (the goal: under 100 KB; the style sheet and
   script come once, cached). Explore first, deep (after the 9,900th name)
   and searched (a name substring matching 100) anonymously; the repository
   page first and deep (a push-time cursor) and a manifest page signed in
   as the administrator (a session from the sign-in form). Distribution
   serves no web interface: "—".

13. Events (`--only events`): a webhook endpoint (actions push and mount,
   retries every 0.1 to 0.5 s) whose receiver is down while 10,000 changes
   are made: tags of one image pushed to one repository (`reg.py mktags`:
   one chain, delivered one at a time in push order), or a blob mounted into
   10,000 repositories (`reg.py mkrepos`: a chain each, 32 delivered at
   once). Then the receiver
   comes up (haproxy answering 204, so that it costs next to nothing) and the
   time until berth's `/metrics` counts every written event delivered gives
   events per second: what berth's outbox delivers, each attempt signed and
   its outcome committed. Distribution's notifications are queued in memory
   (lost on a restart): "—".

14. Pull-through cache (`--only proxy`): an upstream distribution (open, on
   loopback) and in front of it two caches: berth (`BERTH_PROXY=up=<upstream>`,
   repositories `up/...`) and distribution as a proxy (`proxy.remoteurl`).
   Each run pushes a new 1 GiB blob upstream and pulls it (curl, one
   connection) directly from the upstream, then cold through each cache
   (the cache fetches it while it answers), then warm (2 s later: served
   from the cache's own store). The cold pull is also given as a ratio to
   the direct pull of the same run (berth's goal: at least 0.90). Then 20
   clients at once ask each cache for a new, cold 200 MiB blob: MB/s of all
   the bytes served until the last client has its copy (berth fetches it
   from the upstream once and every client reads that one fetch). Last, the
   direct and cold pulls of the 1 GiB blob again with the upstream across a
   network link (`bench/lib/link.py`, a relay on loopback carrying at most
   1,000 and then 2,500 Mbit/s each way and holding bytes 5 ms one way;
   `BENCH_PROXY_LINKS="RATE:DELAY ..."` to change): the direct pull and
   both caches' fetches cross the same link. On bare loopback the upstream
   sends as fast as memory and upstream, cache and client share the two
   cores; the link is the case a cache is for.

`bash bench/run.sh --quick` is the CI smoke run, the last step of `.ci/run`
(64 MiB, 1 s runs, 1 run, 200/2,000 repositories, a 10 MB image, 10
concurrent 1 MiB uploads, a 64 MiB copy; about a minute once berth is built;
appends here only with `--record`). `--only
load|auth|transfer|catalog|image|uploads|copy` runs one section (appends
here only with `--record`); `--perf DIR` records berth with `perf` during its
first run of each load and auth test and the first push.

The numbers come from a shared, noisy 2-core machine on which the load
generator, the server and other people's work compete for the same cores:
compare berth with distribution within one run, not across runs.
EOF
        fi
        { echo; cat "$TMP/report.md"; } >>"$bm"
        log "appended to $bm"
    fi
    log "done in $((elapsed / 60)) min $((elapsed % 60)) s ($((measuring / 60)) min $((measuring % 60)) s of measurements)"
}

main
