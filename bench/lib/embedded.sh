# An embedded registry for the bench scripts that fill one and measure a
# command on it (bench/backup.sh, bench/migrate.sh). Sourced; uses the
# caller's $bin (the berth binary), $work (its temporary directory) and
# $mib (MiB per image), and BERTH_PASSWORD (admin's password, also the
# client's with BERTH_USERNAME=admin).
#
#   start_embedded DATA   `berth serve` on 127.0.0.1:0 with its data in DATA;
#                         sets server_pid and addr (host:port)
#   push_images FIRST LAST
#                         pushes admin/image<i>:1 for i in FIRST..LAST, each
#                         one layer of $mib MiB of fresh random bytes

start_embedded() {
    BERTH_ADMIN_PASSWORD=$BERTH_PASSWORD RUST_LOG=warn \
        "$bin" serve --listen 127.0.0.1:0 --data-dir "$1" 2>"$work/serve.log" &
    server_pid=$!
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/.* listening on http:\/\/\([0-9.:]*\).*/\1/p' "$work/serve.log")
        [ -n "$addr" ] && break
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$work/serve.log" >&2; exit 1; }
}

push_images() { # first last
    for i in $(seq "$1" "$2"); do
        head -c "$((mib * 1024 * 1024))" /dev/urandom >"$work/layer.bin"
        "$bin" push -q "$addr/admin/image$i:1" "$work/layer.bin" >/dev/null
    done
    rm -f "$work/layer.bin"
}
