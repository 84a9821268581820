#!/usr/bin/env bash
# Run one real `claude` invocation fully offline against fake_messages_api.py.
#
#   CLAUDE_BIN=/abs/claude [FAKE_API_LOG=F] [FAKE_API_SCRIPT=F] \
#       tests/claude/run-offline.sh CWD -- <claude args...>
#
# - Re-executes itself inside a fresh network namespace (`unshare -n` as root, `unshare -rn`
#   otherwise) where only `lo` exists, so claude can reach nothing but the fake API.
#   Needs `ip` (Debian/Ubuntu package: iproute2) and `unshare` (util-linux).
# - Starts the fake API on 127.0.0.1 (free port) inside that namespace, runs
#   `cd CWD && $CLAUDE_BIN <args> </dev/null`, stops the server, exits with claude's status.
#   claude's stdout/stderr pass through unchanged.
# - HOME, CLAUDE_CONFIG_DIR, TMPDIR etc. are taken from the caller's environment: point them at
#   temp dirs. ANTHROPIC_API_KEY is forced to sk-test and other credentials are unset.
# Optional env: FAKE_API_LOG (JSON-lines request log; default: none), FAKE_API_SCRIPT (reply
#   script, see fake_messages_api.py), PYTHON (default python3), RUN_OFFLINE_TIMEOUT (seconds,
#   default 300; exit 124 on timeout), RUN_OFFLINE_NO_NETNS=1 (skip unshare; loopback only by
#   convention, for hosts without namespaces).
# As root, claude refuses --dangerously-skip-permissions unless IS_SANDBOX=1 is exported.
set -euo pipefail

self=$(readlink -f "${BASH_SOURCE[0]}")
here=$(dirname "$self")

if [ $# -lt 2 ] || [ "$2" != "--" ]; then
    echo "usage: CLAUDE_BIN=... $0 CWD -- <claude args...>" >&2
    exit 2
fi
: "${CLAUDE_BIN:?set CLAUDE_BIN to the claude executable}"

if [ -z "${RUN_OFFLINE_INNER:-}" ] && [ -z "${RUN_OFFLINE_NO_NETNS:-}" ]; then
    command -v unshare >/dev/null || { echo "run-offline.sh: unshare missing (util-linux)" >&2; exit 2; }
    command -v ip >/dev/null || { echo "run-offline.sh: ip missing (apt-get install iproute2)" >&2; exit 2; }
    if [ "$(id -u)" = 0 ]; then ns=(-n); else ns=(-r -n); fi
    RUN_OFFLINE_INNER=1 exec unshare "${ns[@]}" -- "$self" "$@"
fi

cwd=$1
shift 2
if [ ! -d "$cwd" ]; then
    echo "run-offline.sh: no such directory: $cwd" >&2
    exit 2
fi

if [ -n "${RUN_OFFLINE_INNER:-}" ]; then
    ip link set lo up
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/run-offline.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

server_args=(--host 127.0.0.1 --port 0 --port-file "$work/port")
[ -n "${FAKE_API_LOG:-}" ] && server_args+=(--log "$FAKE_API_LOG")
[ -n "${FAKE_API_SCRIPT:-}" ] && server_args+=(--script "$FAKE_API_SCRIPT")
"${PYTHON:-python3}" "$here/fake_messages_api.py" "${server_args[@]}" \
    </dev/null >"$work/server.out" 2>&1 &
server_pid=$!

for _ in $(seq 1 200); do
    [ -s "$work/port" ] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.05
done
if [ ! -s "$work/port" ]; then
    echo "run-offline.sh: fake API did not start:" >&2
    cat "$work/server.out" >&2
    exit 2
fi
port=$(cat "$work/port")

status=0
(
    # errexit is off in here (we are the left side of ||): check every step.
    cd "$cwd" || exit 2
    unset ANTHROPIC_AUTH_TOKEN CLAUDE_CODE_OAUTH_TOKEN CLAUDE_CODE_USE_BEDROCK \
        CLAUDE_CODE_USE_VERTEX ANTHROPIC_MODEL RUN_OFFLINE_INNER
    export ANTHROPIC_BASE_URL="http://127.0.0.1:$port" ANTHROPIC_API_KEY=sk-test \
        DISABLE_TELEMETRY=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
        DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 NO_PROXY='*' \
        HTTPS_PROXY= HTTP_PROXY= https_proxy= http_proxy=
    # RUN_OFFLINE_TTY=1 keeps the caller's stdin: an interactive session in a terminal
    # (tmux) that a test types into.
    if [ -n "${RUN_OFFLINE_TTY:-}" ]; then
        exec timeout --foreground -k 5 "${RUN_OFFLINE_TIMEOUT:-300}" "$CLAUDE_BIN" "$@"
    fi
    exec timeout -k 5 "${RUN_OFFLINE_TIMEOUT:-300}" "$CLAUDE_BIN" "$@" </dev/null
) || status=$?
exit "$status"
