#!/usr/bin/env bash
# The web interface's browser suite: starts one `berth serve` (the debug
# binary, access control on, an administrator `admin` with a new password)
# on a free loopback port with a throwaway data directory, waits for
# /readyz, and runs tests/ui/browser.py with .venv's Python (Selenium,
# installed by .ci/install-deps) driving one headless Chromium against it.
# The server is stopped and the data directory removed on exit, pass or
# fail; the server's log is printed when a step fails. Screenshots of the
# pages go to target/ui-screenshots/ (kept by CI as an artifact).
#
#   bash tests/ui/run.sh        exit status 0 when every step passed
#
# Options (environment): BERTH, the binary (default target/debug/berth);
# BERTH_UI_TIMEOUT, seconds the Python suite may take (default 240).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
started=$EPOCHREALTIME
berth=${BERTH:-$root/target/debug/berth}
python=$root/.venv/bin/python

if [ ! -x "$berth" ]; then
  echo "tests/ui/run.sh: $berth is missing; build first: cargo build --bin berth" >&2
  exit 1
fi
if ! "$python" -c "import selenium" >/dev/null 2>&1; then
  echo "tests/ui/run.sh: no Selenium in .venv; install it: bash .ci/install-deps" >&2
  exit 1
fi
for tool in /usr/bin/chromium /usr/bin/chromedriver skopeo; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "tests/ui/run.sh: $tool is missing; install it: bash .ci/install-deps" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-ui.XXXXXX")
server_pid=
suite_pid=
stop() {  # stop PID: SIGTERM, then wait for it
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}
cleanup() {
  local status=$?
  # The suite first (it closes its browser on SIGTERM), then the server.
  stop "$suite_pid"
  stop "$server_pid"
  rm -rf "$work"
  printf 'tests/ui/run.sh: %s in %.1f s\n' \
    "$([ "$status" -eq 0 ] && echo passed || echo FAILED)" \
    "$(awk "BEGIN { print $EPOCHREALTIME - $started }")"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')

BERTH_ADMIN_PASSWORD=$password RUST_LOG=${RUST_LOG:-info} "$berth" serve \
  --listen "127.0.0.1:$port" --data-dir "$work/data" --public-url "$url" \
  >"$work/berth.log" 2>&1 &
server_pid=$!

ready=
deadline=$((SECONDS + 20))
while [ "$SECONDS" -lt "$deadline" ]; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "tests/ui/run.sh: berth serve exited at start:" >&2
    tail -n 40 "$work/berth.log" >&2
    exit 1
  fi
  if python3 -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('$url/readyz', timeout=2).status == 200 else 1)" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "tests/ui/run.sh: berth serve did not answer $url/readyz within 20 s" >&2
  tail -n 40 "$work/berth.log" >&2
  exit 1
fi
echo "tests/ui/run.sh: berth serve on $url (pid $server_pid)"

# In the background with `wait`, so that a signal to this script is handled
# at once (cleanup stops the suite) rather than after the suite ends.
status=0
BERTH=$berth BERTH_UI_URL=$url BERTH_UI_ADMIN_PASSWORD=$password BERTH_UI_WORK=$work \
  BERTH_UI_SCREENSHOTS=$root/target/ui-screenshots \
  timeout --kill-after=10 "${BERTH_UI_TIMEOUT:-240}" "$python" tests/ui/browser.py &
suite_pid=$!
wait "$suite_pid" || status=$?
suite_pid=
if [ "$status" -ne 0 ]; then
  [ "$status" -eq 124 ] && echo "tests/ui/run.sh: the suite ran past ${BERTH_UI_TIMEOUT:-240} s" >&2
  echo "tests/ui/run.sh: the server's log (last 60 lines):" >&2
  tail -n 60 "$work/berth.log" >&2
fi
exit "$status"
